//! Batch normalisation over the rows of a `rows × cols` matrix (statistics per column), fused
//! with the ReLU that always follows it in the model's networks.
//!
//! Training mode normalises with the batch's own mean and (biased) variance, returns them for
//! the backward pass, and optionally folds them into running averages (unbiased variance, as
//! PyTorch does). Inference mode normalises with the running averages.
//!
//! Forward:  x̂ = (x − μ)·rstd, rstd = 1/√(σ² + ε);  y = max(0, γ·x̂ + β)  (max only with ReLU)
//! Backward (batch statistics), with g' = g·[γ·x̂ + β > 0]:
//!   dβ = Σᵣ g',  dγ = Σᵣ g'·x̂,  dx = γ·rstd·(g' − dβ/R − x̂·dγ/R)
//! Backward (running statistics): dx = g'·γ·rstd_run, dγ and dβ as above with x̂ from the
//! running statistics.
//!
//! Weighted statistics (the `weights` argument; an ablation of issue 13): row r counts
//! w_r times, with Σᵣ w_r = R (weights of mean 1, the caller's normalisation), so
//!   μ = Σᵣ w_r x_r / R,  σ² = Σᵣ w_r (x_r − μ)² / R,  dx = γ·rstd·(g' − w_r·dβ/R − w_r·x̂·dγ/R)
//! (dβ, dγ unweighted: every row is normalised and contributes to the output). The weights are
//! constants: no gradient flows to them. Running averages take the unbiased weighted variance,
//! σ²/(1 − Σᵣ w_r²/R²). All weights 1 gives exactly the unweighted results.

use crate::bf16::Bf16Buf;
use crate::buffer::{Buffer, GradOut};
use crate::real::Real;
pub use types::{BnAffine, BnGrads, BnOutput, BnStats, RunningStats};

/// Training-mode forward: writes `out`, the batch `mean` and `rstd` (for backward), and updates
/// `running` if given. With `weights` (rows long, non-negative, summing to `rows`; see the
/// module's notes) the batch statistics are weighted per row; None: unweighted.
#[allow(clippy::too_many_arguments)]
pub fn forward_train<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    out: BnOutput<'_, T>,
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    check_train(rows, cols, x, weights, &affine, mean, rstd, &running);
    let (y, y_bf16) = match out {
        BnOutput::Bf16Only(h) => {
            assert_eq!(h.len(), rows * cols, "batchnorm: bf16 output shape");
            return host_forward_train(
                rows,
                cols,
                x,
                weights,
                affine,
                cpu::Output::Bf16Only(&mut h[..]),
                mean,
                rstd,
                running,
            );
        }
        BnOutput::F32(y) => (y, None),
        BnOutput::WithBf16(y, h) => {
            assert_eq!(h.len(), rows * cols, "batchnorm: bf16 output shape");
            (y, Some(&mut h[..]))
        }
    };
    assert_eq!(y.len(), rows * cols, "batchnorm: output shape");
    match y {
        Buffer::Host(y) => host_forward_train(
            rows,
            cols,
            x,
            weights,
            affine,
            cpu::Output::F32 { y, bf16: y_bf16 },
            mean,
            rstd,
            running,
        ),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(y) => {
            assert!(y_bf16.is_none(), "batchnorm: bf16 outputs are CPU-only");
            cuda::forward_train(
                rows,
                cols,
                x.cuda(),
                weights.map(|w| w.cuda()),
                cuda_affine(&affine),
                y,
                mean.cuda_mut(),
                rstd.cuda_mut(),
                running.map(|r| RunningStats { mean: r.mean.cuda_mut(), var: r.var.cuda_mut(), momentum: r.momentum }),
            )
        }
    }
}

/// The checks a training-mode forward makes whatever it writes.
#[allow(clippy::too_many_arguments)]
fn check_train<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: &BnAffine<Buffer<T>>,
    mean: &Buffer<T>,
    rstd: &Buffer<T>,
    running: &Option<RunningStats<Buffer<T>>>,
) {
    check_weights(rows, weights);
    check(rows, cols, x.len(), affine);
    assert!(mean.len() == cols && rstd.len() == cols, "batchnorm: statistics length");
    if let Some(r) = running {
        assert!(r.mean.len() == cols && r.var.len() == cols, "batchnorm: running statistics length");
    }
}

/// A training-mode forward on the CPU into `y` (checked by the caller).
#[allow(clippy::too_many_arguments)]
fn host_forward_train<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    y: cpu::Output<'_, T>,
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    cpu::forward_train(
        rows,
        cols,
        x.host(),
        weights.map(|w| w.host()),
        host_affine(&affine),
        y,
        mean.host_mut(),
        rstd.host_mut(),
        running.map(|r| RunningStats { mean: r.mean.host_mut(), var: r.var.host_mut(), momentum: r.momentum }),
    )
}

/// Inference-mode forward with running statistics, into `out` (f32, or f32 with its bf16 copy;
/// not bf16 alone).
pub fn forward_eval<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    running_mean: &Buffer<T>,
    running_var: &Buffer<T>,
    out: BnOutput<'_, T>,
) {
    let (y, y_bf16) = match out {
        BnOutput::F32(y) => (y, None),
        BnOutput::WithBf16(y, h) => (y, Some(&mut h[..])),
        BnOutput::Bf16Only(_) => panic!("batchnorm: an inference-mode forward writes f32"),
    };
    check(rows, cols, x.len(), &affine);
    if let Some(h) = &y_bf16 {
        assert_eq!(h.len(), rows * cols, "batchnorm: bf16 output shape");
    }
    match y {
        Buffer::Host(y) => cpu::forward_eval(
            rows,
            cols,
            x.host(),
            host_affine(&affine),
            running_mean.host(),
            running_var.host(),
            y,
            y_bf16,
        ),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(y) => {
            assert!(y_bf16.is_none(), "batchnorm: bf16 outputs are CPU-only");
            cuda::forward_eval(rows, cols, x.cuda(), cuda_affine(&affine), running_mean.cuda(), running_var.cuda(), y)
        }
    }
}

/// Backward of either mode. `weights`: those of a forward pass whose batch statistics were
/// weighted (ignored with running statistics, which no row weight enters). `dx_bf16` (CPU only;
/// dx must then be overwritten, not accumulated): dx also rounded to bf16 in the same pass, the
/// gradient the dense layer below reads next; with no `grads.dx`, dx only rounded to bf16 (for a
/// gradient that only bf16 matrix products read).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    rows: usize,
    cols: usize,
    g: &Buffer<T>,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    stats: BnStats<Buffer<T>>,
    grads: BnGrads<Buffer<T>>,
    dx_bf16: Option<&mut Bf16Buf>,
) {
    let dx_bf16 = dx_bf16.map(|h| &mut h[..]);
    check(rows, cols, x.len(), &affine);
    check_weights(rows, weights);
    let weights = if matches!(stats, BnStats::Batch { .. }) { weights } else { None };
    if let Some(h) = &dx_bf16 {
        assert_eq!(h.len(), rows * cols, "batchnorm backward: bf16 dx length");
        assert!(grads.dx.as_ref().is_none_or(|d| !d.accumulate), "batchnorm backward: bf16 dx of an accumulated dx");
    }
    assert_eq!(g.len(), rows * cols, "batchnorm backward: gradient shape");
    let (m, s) = match &stats {
        BnStats::Batch { mean, rstd } => (mean.len(), rstd.len()),
        BnStats::Running { mean, var } => (mean.len(), var.len()),
    };
    assert!(m == cols && s == cols, "batchnorm backward: statistics length");
    for (o, n, what) in [(&grads.dx, rows * cols, "dx"), (&grads.dgamma, cols, "dgamma"), (&grads.dbeta, cols, "dbeta")]
    {
        if let Some(o) = o {
            assert_eq!(o.buf.len(), n, "batchnorm backward: {what} length");
        }
    }
    #[cfg(feature = "cuda")]
    assert!(dx_bf16.is_none() || g.device().is_cpu(), "batchnorm: bf16 outputs are CPU-only");
    match g {
        Buffer::Host(g) => cpu::backward(
            rows,
            cols,
            g,
            x.host(),
            weights.map(|w| w.host()),
            host_affine(&affine),
            match stats {
                BnStats::Batch { mean, rstd } => BnStats::Batch { mean: mean.host(), rstd: rstd.host() },
                BnStats::Running { mean, var } => BnStats::Running { mean: mean.host(), var: var.host() },
            },
            BnGrads {
                dx: grads.dx.map(GradOut::host),
                dgamma: grads.dgamma.map(GradOut::host),
                dbeta: grads.dbeta.map(GradOut::host),
            },
            dx_bf16,
        ),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(g) => cuda::backward(
            rows,
            cols,
            g,
            x.cuda(),
            weights.map(|w| w.cuda()),
            cuda_affine(&affine),
            match stats {
                BnStats::Batch { mean, rstd } => BnStats::Batch { mean: mean.cuda(), rstd: rstd.cuda() },
                BnStats::Running { mean, var } => BnStats::Running { mean: mean.cuda(), var: var.cuda() },
            },
            BnGrads {
                dx: grads.dx.map(GradOut::cuda),
                dgamma: grads.dgamma.map(GradOut::cuda),
                dbeta: grads.dbeta.map(GradOut::cuda),
            },
        ),
    }
}

fn check<T: Real>(rows: usize, cols: usize, len: usize, a: &BnAffine<Buffer<T>>) {
    assert_eq!(len, rows * cols, "batchnorm: input has {len} elements, expected {rows}×{cols}");
    assert_eq!(a.gamma.len(), cols, "batchnorm: gamma length");
    assert_eq!(a.beta.len(), cols, "batchnorm: beta length");
    assert!(rows > 0, "batchnorm over zero rows");
}

/// Weights are one per row; on the host, also that they sum to `rows` (on a GPU they are
/// the caller's promise: checking would cost a copy back).
fn check_weights<T: Real>(rows: usize, weights: Option<&Buffer<T>>) {
    let Some(w) = weights else { return };
    assert_eq!(w.len(), rows, "batchnorm: {} row weights for {rows} rows", w.len());
    if w.device().is_cpu() {
        let sum: f64 = w.host().iter().map(|v| v.as_f64()).sum();
        assert!(
            (sum - rows as f64).abs() <= 1e-3 * rows as f64,
            "batchnorm: row weights sum to {sum}, expected {rows} (weights of mean 1)"
        );
    }
}

fn host_affine<'a, T: Real>(a: &BnAffine<'a, Buffer<T>>) -> BnAffine<'a, [T]> {
    BnAffine { gamma: a.gamma.host(), beta: a.beta.host(), eps: a.eps, relu: a.relu }
}

#[cfg(feature = "cuda")]
fn cuda_affine<'a, T: Real>(a: &BnAffine<'a, Buffer<T>>) -> BnAffine<'a, crate::cuda::CudaBuffer<T>> {
    BnAffine { gamma: a.gamma.cuda(), beta: a.beta.cuda(), eps: a.eps, relu: a.relu }
}

pub mod cpu;
mod types;

#[cfg(feature = "cuda")]
mod cuda;

#[cfg(test)]
mod tests {
    use super::cpu::*;

    /// The AVX2 twins of the row loops (where this CPU has AVX2) give the baseline's bits.
    #[test]
    fn wide_row_loops_match_the_baseline_bit_for_bit() {
        let mut rng = crate::rng::HostRng::new(3, 0);
        let n = 203;
        let mut v = |s: f64| -> Vec<f32> { (0..n).map(|_| ((rng.next_f64() - 0.4) * s) as f32).collect() };
        let (x, g, scale, offset, mean, r) = (v(4.0), v(2.0), v(1.0), v(1.0), v(0.5), v(3.0));
        let (mg, mgx, shift) = (v(0.3), v(0.3), v(1.0));
        let c = Cols { scale: &scale, offset: &offset, mean: &mean, r: &r };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for relu in [false, true] {
            let (mut a, mut b) = (vec![0.0f32; n], vec![0.0f32; n]);
            affine_row(&x, &scale, &offset, relu, &mut a);
            affine_row_body(&x, &scale, &offset, relu, &mut b);
            assert_eq!(bits(&a), bits(&b), "affine_row, relu {relu}");
            let (mut a1, mut a2, mut b1, mut b2) = (g.clone(), x.clone(), g.clone(), x.clone());
            sums_row(&g, &x, &c, relu, &mut a1, &mut a2);
            sums_row_body(&g, &x, &c, relu, &mut b1, &mut b2);
            assert_eq!((bits(&a1), bits(&a2)), (bits(&b1), bits(&b2)), "sums_row, relu {relu}");
            for acc in [false, true] {
                let (mut a, mut b) = (g.clone(), g.clone());
                dx_row(&mut a, &g, &x, 0.7, &c, &mg, &mgx, relu, acc);
                dx_row_body(&mut b, &g, &x, 0.7, &c, &mg, &mgx, relu, acc);
                assert_eq!(bits(&a), bits(&b), "dx_row, relu {relu}, acc {acc}");
            }
        }
        for w in [None, Some(1.3f32)] {
            let (mut a1, mut a2, mut b1, mut b2) = (g.clone(), x.clone(), g.clone(), x.clone());
            stats_row(&x, &shift, w, &mut a1, &mut a2);
            stats_row_body(&x, &shift, w, &mut b1, &mut b2);
            assert_eq!((bits(&a1), bits(&a2)), (bits(&b1), bits(&b2)), "stats_row, weight {w:?}");
        }
    }
}
