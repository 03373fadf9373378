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
//! Weighted statistics (the `_weighted` entry points; an ablation of issue 13): row r counts
//! w_r times, with Σᵣ w_r = R (weights of mean 1, the caller's normalisation), so
//!   μ = Σᵣ w_r x_r / R,  σ² = Σᵣ w_r (x_r − μ)² / R,  dx = γ·rstd·(g' − w_r·dβ/R − w_r·x̂·dγ/R)
//! (dβ, dγ unweighted: every row is normalised and contributes to the output). The weights are
//! constants: no gradient flows to them. Running averages take the unbiased weighted variance,
//! σ²/(1 − Σᵣ w_r²/R²). All weights 1 gives exactly the unweighted results.

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// The per-column affine part and options shared by all batch-norm kernels.
pub struct BnAffine<'a, B: ?Sized> {
    pub gamma: &'a B,
    pub beta: &'a B,
    pub eps: f64,
    pub relu: bool,
}

/// Running averages updated in place by the training-mode forward pass.
pub struct RunningStats<'a, B: ?Sized> {
    pub mean: &'a mut B,
    pub var: &'a mut B,
    pub momentum: f64,
}

/// Training-mode forward: writes `y`, the batch `mean` and `rstd` (for backward), and updates
/// `running` if given.
pub fn forward_train<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    y: &mut Buffer<T>,
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    forward_train_bf16(rows, cols, x, affine, y, None, mean, rstd, running)
}

/// As [`forward_train`], also writing `y` rounded to bf16 into `y_bf16` (CPU only) in the same
/// pass, for the bf16 matrix product that reads it next.
pub fn forward_train_bf16<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    y: &mut Buffer<T>,
    y_bf16: Option<&mut [u16]>,
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    forward_train_weighted(rows, cols, x, None, affine, y, y_bf16, mean, rstd, running)
}

/// As [`forward_train_bf16`], with the batch statistics weighted per row by `weights` (rows
/// long, non-negative, summing to `rows`; see the module's notes). None: unweighted.
pub fn forward_train_weighted<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    y: &mut Buffer<T>,
    y_bf16: Option<&mut [u16]>,
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    check_train(rows, cols, x, weights, &affine, mean, rstd, &running);
    if let Some(h) = &y_bf16 {
        assert_eq!(h.len(), rows * cols, "batchnorm: bf16 output shape");
    }
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

/// As [`forward_train_weighted`], writing y only rounded to bf16 (CPU, f32 only): for an output
/// that only bf16 matrix products read, its f32 copy would be memory traffic nobody uses.
pub fn forward_train_bf16_only<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    y_bf16: &mut [u16],
    mean: &mut Buffer<T>,
    rstd: &mut Buffer<T>,
    running: Option<RunningStats<Buffer<T>>>,
) {
    check_train(rows, cols, x, weights, &affine, mean, rstd, &running);
    assert_eq!(y_bf16.len(), rows * cols, "batchnorm: bf16 output shape");
    host_forward_train(rows, cols, x, weights, affine, cpu::Output::Bf16Only(y_bf16), mean, rstd, running)
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

/// Inference-mode forward with running statistics.
pub fn forward_eval<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    running_mean: &Buffer<T>,
    running_var: &Buffer<T>,
    y: &mut Buffer<T>,
) {
    forward_eval_bf16(rows, cols, x, affine, running_mean, running_var, y, None)
}

/// As [`forward_eval`], also writing `y` rounded to bf16 into `y_bf16` (CPU only) in the same pass.
pub fn forward_eval_bf16<T: Real>(
    rows: usize,
    cols: usize,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    running_mean: &Buffer<T>,
    running_var: &Buffer<T>,
    y: &mut Buffer<T>,
    y_bf16: Option<&mut [u16]>,
) {
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

/// The statistics a backward pass normalises with: the batch's (`rstd` = 1/√(σ²+ε)) or the
/// running ones (`var` = σ², ε added inside).
pub enum BnStats<'a, B: ?Sized> {
    Batch { mean: &'a B, rstd: &'a B },
    Running { mean: &'a B, var: &'a B },
}

/// The gradients a batch-norm backward pass may write (None: not needed).
pub struct BnGrads<'a, B: ?Sized> {
    pub dx: Option<GradOut<'a, B>>,
    pub dgamma: Option<GradOut<'a, B>>,
    pub dbeta: Option<GradOut<'a, B>>,
}

/// Backward of either mode.
pub fn backward<T: Real>(
    rows: usize,
    cols: usize,
    g: &Buffer<T>,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    stats: BnStats<Buffer<T>>,
    grads: BnGrads<Buffer<T>>,
) {
    backward_bf16(rows, cols, g, x, affine, stats, grads, None)
}

/// As [`backward`], also writing dx rounded to bf16 into `dx_bf16` in the same pass (CPU only;
/// dx must then be overwritten, not accumulated): the gradient the dense layer below reads next.
pub fn backward_bf16<T: Real>(
    rows: usize,
    cols: usize,
    g: &Buffer<T>,
    x: &Buffer<T>,
    affine: BnAffine<Buffer<T>>,
    stats: BnStats<Buffer<T>>,
    grads: BnGrads<Buffer<T>>,
    dx_bf16: Option<&mut [u16]>,
) {
    backward_weighted(rows, cols, g, x, None, affine, stats, grads, dx_bf16)
}

/// As [`backward_bf16`], for a forward pass whose batch statistics were weighted by `weights`
/// (the same weights; ignored with running statistics, which no row weight enters). With
/// `dx_bf16` and no `grads.dx`, dx is written only rounded to bf16 (for a gradient that only
/// bf16 matrix products read).
pub fn backward_weighted<T: Real>(
    rows: usize,
    cols: usize,
    g: &Buffer<T>,
    x: &Buffer<T>,
    weights: Option<&Buffer<T>>,
    affine: BnAffine<Buffer<T>>,
    stats: BnStats<Buffer<T>>,
    grads: BnGrads<Buffer<T>>,
    dx_bf16: Option<&mut [u16]>,
) {
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

pub mod cpu {
    use super::{BnAffine, BnGrads, BnStats, RunningStats};
    use crate::buffer::GradOut;
    use crate::par::{for_row_chunks, map_reduce_rows};
    use crate::real::Real;
    use crate::wide::widened;

    /// Per-column sums over rows of two quantities computed from each element, accumulated in T
    /// within a chunk of rows (so the loops vectorise) and in f64 across chunks.
    fn column_sums2<T: Real>(
        rows: usize,
        cols: usize,
        per_row: impl Fn(usize, &mut [T], &mut [T]) + Sync + Send,
    ) -> (Vec<f64>, Vec<f64>) {
        map_reduce_rows(
            rows,
            cols,
            |a, b| {
                let (mut s1, mut s2) = (vec![T::zero(); cols], vec![T::zero(); cols]);
                for r in a..b {
                    per_row(r, &mut s1, &mut s2);
                }
                (
                    s1.iter().map(|v| v.as_f64()).collect::<Vec<f64>>(),
                    s2.iter().map(|v| v.as_f64()).collect::<Vec<f64>>(),
                )
            },
            |(mut a1, mut a2), (b1, b2)| {
                a1.iter_mut().zip(&b1).for_each(|(a, b)| *a += b);
                a2.iter_mut().zip(&b2).for_each(|(a, b)| *a += b);
                (a1, a2)
            },
        )
    }

    /// A bf16 output shared by row tasks, each of which writes only its own rows.
    struct Out16(*mut u16);
    // SAFETY: tasks write disjoint row ranges of one live &mut [u16] (see write_rows).
    unsafe impl Sync for Out16 {}
    unsafe impl Send for Out16 {}

    impl Out16 {
        /// Rounds `rows` (f32 values: the callers assert T is f32) to bf16 at element `start`.
        ///
        /// # Safety
        /// `start + rows.len()` is within the output, and no other task writes that range.
        unsafe fn write_rows<T: Real>(&self, start: usize, rows: &[T]) {
            // SAFETY: as the caller promises.
            let h = unsafe { std::slice::from_raw_parts_mut(self.0.add(start), rows.len()) };
            crate::bf16::convert_serial(bytemuck::cast_slice(rows), h);
        }
    }

    // The per-row loops below are compiled twice (crate::wide): for the baseline and for AVX2.

    widened! {
        /// One row of y = max(0?, x·scale + shift).
        pub(super) fn affine_row<T: Real>(xr: &[T], scale: &[T], shift: &[T], relu: bool, yr: &mut [T]) => affine_row_body
    }

    #[inline(always)]
    pub(super) fn affine_row_body<T: Real>(xr: &[T], scale: &[T], shift: &[T], relu: bool, yr: &mut [T]) {
        if relu {
            for (((y, &x), &a), &b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                *y = (x * a + b).max(T::zero());
            }
        } else {
            for (((y, &x), &a), &b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                *y = x * a + b;
            }
        }
    }

    /// y = max(0?, x·scale + shift) per column; with `y16`, also y rounded to bf16, each task's
    /// rows while they are still in L2 (no second pass over y from memory).
    fn apply_affine<T: Real>(
        cols: usize,
        x: &[T],
        scale: &[T],
        shift: &[T],
        relu: bool,
        y: &mut [T],
        y16: Option<&mut [u16]>,
    ) {
        let out16 = y16.map(|h| Out16(h.as_mut_ptr()));
        let out16 = &out16;
        for_row_chunks(y, cols, |row0, chunk| {
            let xs = &x[row0 * cols..row0 * cols + chunk.len()];
            for (yr, xr) in chunk.chunks_exact_mut(cols).zip(xs.chunks_exact(cols)) {
                affine_row(xr, scale, shift, relu, yr);
            }
            if let Some(o) = out16 {
                // SAFETY: this task's rows of the bf16 output (length checked by the caller).
                unsafe { o.write_rows(row0 * cols, chunk) };
            }
        });
    }

    /// Where a training-mode forward writes y.
    pub enum Output<'a, T> {
        /// y, and optionally y rounded to bf16 as well.
        F32 { y: &'a mut [T], bf16: Option<&'a mut [u16]> },
        /// Only y rounded to bf16.
        Bf16Only(&'a mut [u16]),
    }

    /// Writes every row of `h` (rows of `cols`) only rounded to bf16: `row(r, out)` computes row
    /// r into a scratch row (in L1), which is rounded from there. T is f32 (callers assert it).
    fn rows_rounded<T: Real>(cols: usize, h: &mut [u16], row: impl Fn(usize, &mut [T]) + Sync + Send) {
        for_row_chunks(h, cols, |row0, chunk| {
            let mut scratch = vec![T::zero(); cols];
            for (i, hr) in chunk.chunks_exact_mut(cols).enumerate() {
                row(row0 + i, &mut scratch);
                crate::bf16::convert_serial(bytemuck::cast_slice(&scratch), hr);
            }
        });
    }

    widened! {
        /// Σ w·d and Σ w·d² of one row into the column sums, d = x − shift (w: the row's
        /// weight, None for 1).
        pub(super) fn stats_row<T: Real>(xr: &[T], shift: &[T], w: Option<T>, s1: &mut [T], s2: &mut [T]) => stats_row_body
    }

    #[inline(always)]
    pub(super) fn stats_row_body<T: Real>(xr: &[T], shift: &[T], w: Option<T>, s1: &mut [T], s2: &mut [T]) {
        match w {
            None => {
                for (((a, b), &v), &sh) in s1.iter_mut().zip(s2.iter_mut()).zip(xr).zip(shift) {
                    let d = v - sh;
                    *a = *a + d;
                    *b = *b + d * d;
                }
            }
            Some(wr) => {
                for (((a, b), &v), &sh) in s1.iter_mut().zip(s2.iter_mut()).zip(xr).zip(shift) {
                    let d = v - sh;
                    let wd = wr * d;
                    *a = *a + wd;
                    *b = *b + wd * d;
                }
            }
        }
    }

    /// `weights`: row weights summing to `rows` (checked by the caller), or None.
    pub fn forward_train<T: Real>(
        rows: usize,
        cols: usize,
        x: &[T],
        weights: Option<&[T]>,
        affine: BnAffine<[T]>,
        y: Output<'_, T>,
        mean: &mut [T],
        rstd: &mut [T],
        running: Option<RunningStats<[T]>>,
    ) {
        let bf16 = matches!(y, Output::Bf16Only(_) | Output::F32 { bf16: Some(_), .. });
        assert!(!bf16 || T::NAME == "f32", "batchnorm: bf16 outputs of {} values", T::NAME);
        // One pass of shifted sums: d = x − x[first row] keeps Σd² − (Σd)²/n accurate when the
        // mean is large against the spread.
        let shift = &x[..cols];
        let (s1, s2) = column_sums2(rows, cols, |r, s1: &mut [T], s2: &mut [T]| {
            stats_row(&x[r * cols..(r + 1) * cols], shift, weights.map(|w| w[r]), s1, s2)
        });
        let n = rows as f64;
        let mut scale = vec![T::zero(); cols];
        let mut offset = vec![T::zero(); cols];
        let mut var = vec![0.0f64; cols];
        for j in 0..cols {
            let m1 = s1[j] / n;
            let mu = shift[j].as_f64() + m1;
            let v = (s2[j] / n - m1 * m1).max(0.0);
            let r = 1.0 / (v + affine.eps).sqrt();
            mean[j] = T::from_f64(mu);
            rstd[j] = T::from_f64(r);
            var[j] = v;
            let a = affine.gamma[j].as_f64() * r;
            scale[j] = T::from_f64(a);
            offset[j] = T::from_f64(affine.beta[j].as_f64() - mu * a);
        }
        match y {
            Output::F32 { y, bf16 } => apply_affine(cols, x, &scale, &offset, affine.relu, y, bf16),
            Output::Bf16Only(h) => rows_rounded(cols, h, |r, yr| {
                affine_row(&x[r * cols..(r + 1) * cols], &scale, &offset, affine.relu, yr)
            }),
        }
        if let Some(run) = running {
            let m = run.momentum;
            let bessel = match weights {
                None if rows > 1 => n / (n - 1.0),
                None => 1.0,
                Some(w) => unbiased_weighted(n, w),
            };
            for j in 0..cols {
                let rm = run.mean[j].as_f64();
                let rv = run.var[j].as_f64();
                run.mean[j] = T::from_f64((1.0 - m) * rm + m * mean[j].as_f64());
                run.var[j] = T::from_f64((1.0 - m) * rv + m * var[j] * bessel);
            }
        }
    }

    /// The factor that makes a weighted variance unbiased, 1/(1 − Σw²/n²) for weights summing
    /// to n (n/(n − 1) for equal weights); 1 where a single row carries all the weight.
    fn unbiased_weighted<T: Real>(n: f64, w: &[T]) -> f64 {
        let sum_sq: f64 = w.iter().map(|v| v.as_f64() * v.as_f64()).sum();
        let f = 1.0 - sum_sq / (n * n);
        if f > 1e-12 { 1.0 / f } else { 1.0 }
    }

    pub fn forward_eval<T: Real>(
        _rows: usize,
        cols: usize,
        x: &[T],
        affine: BnAffine<[T]>,
        running_mean: &[T],
        running_var: &[T],
        y: &mut [T],
        y16: Option<&mut [u16]>,
    ) {
        assert!(y16.is_none() || T::NAME == "f32", "batchnorm: bf16 outputs of {} values", T::NAME);
        let (scale, offset) = eval_affine(cols, &affine, running_mean, running_var);
        apply_affine(cols, x, &scale, &offset, affine.relu, y, y16);
    }

    /// (scale, shift) such that y = x·scale + shift with running statistics.
    fn eval_affine<T: Real>(cols: usize, affine: &BnAffine<[T]>, rm: &[T], rv: &[T]) -> (Vec<T>, Vec<T>) {
        (0..cols)
            .map(|j| {
                let a = affine.gamma[j].as_f64() / (rv[j].as_f64() + affine.eps).sqrt();
                (T::from_f64(a), T::from_f64(affine.beta[j].as_f64() - rm[j].as_f64() * a))
            })
            .unzip()
    }

    /// Per-column vectors of the backward pass, all `cols` long.
    pub(super) struct Cols<'a, T> {
        pub(super) scale: &'a [T],
        pub(super) offset: &'a [T],
        pub(super) mean: &'a [T],
        pub(super) r: &'a [T],
    }

    /// g masked by the forward's ReLU, whose pre-activation was x·scale + offset.
    #[inline(always)]
    fn masked<T: Real, const RELU: bool>(g: T, x: T, scale: T, offset: T) -> T {
        if RELU && x * scale + offset < T::zero() { T::zero() } else { g }
    }

    widened! {
        /// Σg' and Σg'·x̂ of one row into the column sums.
        pub(super) fn sums_row<T: Real>(gr: &[T], xr: &[T], c: &Cols<T>, relu: bool, sg: &mut [T], sgx: &mut [T]) => sums_row_body
    }

    #[inline(always)]
    pub(super) fn sums_row_body<T: Real>(gr: &[T], xr: &[T], c: &Cols<T>, relu: bool, sg: &mut [T], sgx: &mut [T]) {
        if relu { sums_row_of::<T, true>(gr, xr, c, sg, sgx) } else { sums_row_of::<T, false>(gr, xr, c, sg, sgx) }
    }

    /// The flags are constants so that the loop tests nothing per element and vectorises.
    #[inline(always)]
    fn sums_row_of<T: Real, const RELU: bool>(gr: &[T], xr: &[T], c: &Cols<T>, sg: &mut [T], sgx: &mut [T]) {
        let n = gr.len();
        let (xr, sc, of, mu, r, sg, sgx) =
            (&xr[..n], &c.scale[..n], &c.offset[..n], &c.mean[..n], &c.r[..n], &mut sg[..n], &mut sgx[..n]);
        for j in 0..n {
            let gp = masked::<T, RELU>(gr[j], xr[j], sc[j], of[j]);
            sg[j] = sg[j] + gp;
            sgx[j] = sgx[j] + gp * ((xr[j] - mu[j]) * r[j]);
        }
    }

    widened! {
        /// dx = scale·(g' − w·mean(g') − w·x̂·mean(g'x̂)) for one row of weight w (1 unweighted:
        /// the products by 1 are exact, so the unweighted result is bit for bit the plain
        /// formula), written or (`acc`) added.
        #[allow(clippy::too_many_arguments)]
        pub(super) fn dx_row<T: Real>(dr: &mut [T], gr: &[T], xr: &[T], w: T, c: &Cols<T>, mean_g: &[T], mean_gx: &[T], relu: bool, acc: bool)
            => dx_row_body
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn dx_row_body<T: Real>(
        dr: &mut [T],
        gr: &[T],
        xr: &[T],
        w: T,
        c: &Cols<T>,
        mean_g: &[T],
        mean_gx: &[T],
        relu: bool,
        acc: bool,
    ) {
        match (relu, acc) {
            (true, true) => dx_row_of::<T, true, true>(dr, gr, xr, w, c, mean_g, mean_gx),
            (true, false) => dx_row_of::<T, true, false>(dr, gr, xr, w, c, mean_g, mean_gx),
            (false, true) => dx_row_of::<T, false, true>(dr, gr, xr, w, c, mean_g, mean_gx),
            (false, false) => dx_row_of::<T, false, false>(dr, gr, xr, w, c, mean_g, mean_gx),
        }
    }

    #[inline(always)]
    fn dx_row_of<T: Real, const RELU: bool, const ACC: bool>(
        dr: &mut [T],
        gr: &[T],
        xr: &[T],
        w: T,
        c: &Cols<T>,
        mean_g: &[T],
        mean_gx: &[T],
    ) {
        let n = dr.len();
        let (gr, xr, sc, of, mu, r, mg, mgx) =
            (&gr[..n], &xr[..n], &c.scale[..n], &c.offset[..n], &c.mean[..n], &c.r[..n], &mean_g[..n], &mean_gx[..n]);
        for j in 0..n {
            let gp = masked::<T, RELU>(gr[j], xr[j], sc[j], of[j]);
            let xhat = (xr[j] - mu[j]) * r[j];
            let v = sc[j] * (gp - w * mg[j] - w * xhat * mgx[j]);
            dr[j] = if ACC { dr[j] + v } else { v };
        }
    }

    pub fn backward<T: Real>(
        rows: usize,
        cols: usize,
        g: &[T],
        x: &[T],
        weights: Option<&[T]>,
        affine: BnAffine<[T]>,
        stats: BnStats<[T]>,
        grads: BnGrads<[T]>,
        dx16: Option<&mut [u16]>,
    ) {
        assert!(dx16.is_none() || T::NAME == "f32", "batchnorm: bf16 outputs of {} values", T::NAME);
        // Per column: x̂ = (x − mean)·r, and the forward's y = x·scale + offset (for the mask).
        let (mean, r): (Vec<T>, Vec<T>) = match stats {
            BnStats::Batch { mean, rstd } => (mean.to_vec(), rstd.to_vec()),
            BnStats::Running { mean, var } => {
                (mean.to_vec(), var.iter().map(|v| T::from_f64(1.0 / (v.as_f64() + affine.eps).sqrt())).collect())
            }
        };
        let batch_stats = matches!(stats, BnStats::Batch { .. });
        let scale: Vec<T> = (0..cols).map(|j| T::from_f64(affine.gamma[j].as_f64() * r[j].as_f64())).collect();
        let offset: Vec<T> =
            (0..cols).map(|j| T::from_f64(affine.beta[j].as_f64() - mean[j].as_f64() * scale[j].as_f64())).collect();
        let c = Cols { scale: &scale, offset: &offset, mean: &mean, r: &r };
        let relu = affine.relu;

        // Pass 1: dβ = Σ g', dγ = Σ g'·x̂ (needed for dx in batch mode, or when asked for).
        let dx_wanted = grads.dx.is_some() || dx16.is_some();
        let need_sums = grads.dgamma.is_some() || grads.dbeta.is_some() || (batch_stats && dx_wanted);
        let (sum_g, sum_gx) = if need_sums {
            column_sums2(rows, cols, |row, sg: &mut [T], sgx: &mut [T]| {
                let (gr, xr) = (&g[row * cols..(row + 1) * cols], &x[row * cols..(row + 1) * cols]);
                sums_row(gr, xr, &c, relu, sg, sgx)
            })
        } else {
            (Vec::new(), Vec::new())
        };
        if let Some(mut db) = grads.dbeta {
            for j in 0..cols {
                db.put(j, T::from_f64(sum_g[j]));
            }
        }
        if let Some(mut dg) = grads.dgamma {
            for j in 0..cols {
                dg.put(j, T::from_f64(sum_gx[j]));
            }
        }

        // Pass 2: dx (the means vanish with running statistics).
        let n = rows as f64;
        let means = || -> (Vec<T>, Vec<T>) {
            if batch_stats {
                (
                    sum_g.iter().map(|&s| T::from_f64(s / n)).collect(),
                    sum_gx.iter().map(|&s| T::from_f64(s / n)).collect(),
                )
            } else {
                (vec![T::zero(); cols], vec![T::zero(); cols])
            }
        };
        match (grads.dx, dx16) {
            (Some(dx), dx16) => {
                let (mean_g, mean_gx) = means();
                dx_f32(cols, g, x, weights, relu, &c, &mean_g, &mean_gx, dx, dx16)
            }
            (None, Some(h)) => {
                let (mean_g, mean_gx) = means();
                rows_rounded(cols, h, |r, dr| {
                    let (gr, xr) = (&g[r * cols..(r + 1) * cols], &x[r * cols..(r + 1) * cols]);
                    let w = weights.map_or(T::one(), |w| w[r]);
                    dx_row(dr, gr, xr, w, &c, &mean_g, &mean_gx, relu, false)
                });
            }
            (None, None) => {}
        }
    }

    /// Pass 2 into an f32 dx (and its bf16 copy with `dx16`).
    #[allow(clippy::too_many_arguments)]
    fn dx_f32<T: Real>(
        cols: usize,
        g: &[T],
        x: &[T],
        weights: Option<&[T]>,
        relu: bool,
        c: &Cols<T>,
        mean_g: &[T],
        mean_gx: &[T],
        dx: GradOut<[T]>,
        dx16: Option<&mut [u16]>,
    ) {
        let acc = dx.accumulate;
        let out16 = dx16.map(|h| Out16(h.as_mut_ptr()));
        let out16 = &out16;
        for_row_chunks(dx.buf, cols, |row0, chunk| {
            let off = row0 * cols;
            let gs = &g[off..off + chunk.len()];
            let xs = &x[off..off + chunk.len()];
            let rows_here = chunk.chunks_exact_mut(cols).zip(gs.chunks_exact(cols)).zip(xs.chunks_exact(cols));
            for (i, ((dr, gr), xr)) in rows_here.enumerate() {
                let w = weights.map_or(T::one(), |w| w[row0 + i]);
                dx_row(dr, gr, xr, w, c, mean_g, mean_gx, relu, acc);
            }
            if let Some(o) = out16 {
                // SAFETY: this task's rows of the bf16 output (length checked by the caller).
                unsafe { o.write_rows(row0 * cols, chunk) };
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::{BnAffine, BnGrads, BnStats, RunningStats};
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{BN_ROWS_PER_BLOCK, column_blocks, dim, grid_1d, kname, launch};
    use crate::real::Real;

    fn row_blocks(rows: usize) -> u32 {
        let b = (dim(rows)).div_ceil(BN_ROWS_PER_BLOCK);
        assert!(b <= 65_535, "batch norm over {rows} rows exceeds the grid of kernels/batchnorm.cu");
        b
    }

    /// The row weights as a kernel argument: the buffer and 1, or a one-element stand-in and 0.
    fn weight_arg<'a, T: Real>(
        weights: Option<&'a CudaBuffer<T>>,
        stand_in: &'a CudaBuffer<T>,
    ) -> (&'a CudaBuffer<T>, i32) {
        match weights {
            Some(w) => (w, 1),
            None => (stand_in, 0),
        }
    }

    pub fn forward_train<T: Real>(
        rows: usize,
        cols: usize,
        x: &CudaBuffer<T>,
        weights: Option<&CudaBuffer<T>>,
        affine: BnAffine<CudaBuffer<T>>,
        y: &mut CudaBuffer<T>,
        mean: &mut CudaBuffer<T>,
        rstd: &mut CudaBuffer<T>,
        running: Option<RunningStats<CudaBuffer<T>>>,
    ) {
        let dev = x.device().clone();
        let (r, c, rb) = (dim(rows), dim(cols), row_blocks(rows));
        let stand_in = dev.alloc::<T>(1);
        let (w, weighted) = weight_arg(weights, &stand_in);
        let (mut p1, mut p2) = (dev.scratch_f64(rb as usize * cols), dev.scratch_f64(rb as usize * cols));
        launch!(
            dev,
            kname::<T>("bn_moments"),
            column_blocks(c, rb),
            &x.slice,
            &w.slice,
            &weighted,
            &mut p1.slice,
            &mut p2.slice,
            &r,
            &c
        );
        let (mut scale, mut offset) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
        let (mut dummy_m, mut dummy_v) = (dev.alloc::<T>(1), dev.alloc::<T>(1));
        let (update, momentum) = (running.is_some() as i32, running.as_ref().map_or(0.0, |r| r.momentum));
        let (run_mean, run_var) = match running {
            Some(r) => (&mut r.mean.slice, &mut r.var.slice),
            None => (&mut dummy_m.slice, &mut dummy_v.slice),
        };
        launch!(
            dev,
            kname::<T>("bn_finalize"),
            grid_1d(cols as u64),
            &p1.slice,
            &p2.slice,
            &rb,
            &x.slice,
            &w.slice,
            &weighted,
            &affine.gamma.slice,
            &affine.beta.slice,
            &mut mean.slice,
            &mut rstd.slice,
            &mut scale.slice,
            &mut offset.slice,
            run_mean,
            run_var,
            &r,
            &c,
            &affine.eps,
            &momentum,
            &update
        );
        apply(x, &scale, &offset, y, rows, cols, affine.relu);
    }

    /// y = max(0?, x·scale + offset) with per-column scale and offset.
    fn apply<T: Real>(
        x: &CudaBuffer<T>,
        scale: &CudaBuffer<T>,
        offset: &CudaBuffer<T>,
        y: &mut CudaBuffer<T>,
        rows: usize,
        cols: usize,
        relu: bool,
    ) {
        let dev = x.device().clone();
        let (r, c, relu) = (dim(rows), dim(cols), relu as i32);
        launch!(
            dev,
            kname::<T>("bn_apply"),
            grid_1d((rows * cols) as u64),
            &x.slice,
            &scale.slice,
            &offset.slice,
            &mut y.slice,
            &r,
            &c,
            &relu
        );
    }

    pub fn forward_eval<T: Real>(
        rows: usize,
        cols: usize,
        x: &CudaBuffer<T>,
        affine: BnAffine<CudaBuffer<T>>,
        running_mean: &CudaBuffer<T>,
        running_var: &CudaBuffer<T>,
        y: &mut CudaBuffer<T>,
    ) {
        let dev = x.device().clone();
        let c = dim(cols);
        let (mut scale, mut offset) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
        launch!(
            dev,
            kname::<T>("bn_eval_affine"),
            grid_1d(cols as u64),
            &affine.gamma.slice,
            &affine.beta.slice,
            &running_mean.slice,
            &running_var.slice,
            &mut scale.slice,
            &mut offset.slice,
            &c,
            &affine.eps
        );
        apply(x, &scale, &offset, y, rows, cols, affine.relu);
    }

    pub fn backward<T: Real>(
        rows: usize,
        cols: usize,
        g: &CudaBuffer<T>,
        x: &CudaBuffer<T>,
        weights: Option<&CudaBuffer<T>>,
        affine: BnAffine<CudaBuffer<T>>,
        stats: BnStats<CudaBuffer<T>>,
        grads: BnGrads<CudaBuffer<T>>,
    ) {
        let dev = x.device().clone();
        let stand_in = dev.alloc::<T>(1);
        let (w, weighted) = weight_arg(weights, &stand_in);
        let (r, c, relu) = (dim(rows), dim(cols), affine.relu as i32);
        let (mean, stat, running) = match stats {
            BnStats::Batch { mean, rstd } => (mean, rstd, 0i32),
            BnStats::Running { mean, var } => (mean, var, 1i32),
        };
        let batch = 1 - running;
        let (mut scale, mut offset, mut rr) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols), dev.alloc::<T>(cols));
        launch!(
            dev,
            kname::<T>("bn_backward_affine"),
            grid_1d(cols as u64),
            &affine.gamma.slice,
            &affine.beta.slice,
            &mean.slice,
            &stat.slice,
            &mut scale.slice,
            &mut offset.slice,
            &mut rr.slice,
            &c,
            &affine.eps,
            &running
        );
        let (mut mean_g, mut mean_gx) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
        let need_sums = grads.dgamma.is_some() || grads.dbeta.is_some() || (batch == 1 && grads.dx.is_some());
        if need_sums {
            let rb = row_blocks(rows);
            let (mut pg, mut pgx) = (dev.scratch_f64(rb as usize * cols), dev.scratch_f64(rb as usize * cols));
            launch!(
                dev,
                kname::<T>("bn_backward_sums"),
                column_blocks(c, rb),
                &g.slice,
                &x.slice,
                &scale.slice,
                &offset.slice,
                &mean.slice,
                &rr.slice,
                &mut pg.slice,
                &mut pgx.slice,
                &r,
                &c,
                &relu
            );
            let (mut dummy_g, mut dummy_b) = (dev.alloc::<T>(1), dev.alloc::<T>(1));
            let (want_g, acc_g) = grads.dgamma.as_ref().map_or((0, 0), |o| (1, o.accumulate as i32));
            let (want_b, acc_b) = grads.dbeta.as_ref().map_or((0, 0), |o| (1, o.accumulate as i32));
            let dgamma = match grads.dgamma {
                Some(o) => &mut o.buf.slice,
                None => &mut dummy_g.slice,
            };
            let dbeta = match grads.dbeta {
                Some(o) => &mut o.buf.slice,
                None => &mut dummy_b.slice,
            };
            launch!(
                dev,
                kname::<T>("bn_backward_finalize"),
                grid_1d(cols as u64),
                &pg.slice,
                &pgx.slice,
                &rb,
                dgamma,
                dbeta,
                &mut mean_g.slice,
                &mut mean_gx.slice,
                &r,
                &c,
                &want_g,
                &acc_g,
                &want_b,
                &acc_b,
                &batch
            );
        } else {
            crate::elementwise::cuda::fill(&mut mean_g, T::zero());
            crate::elementwise::cuda::fill(&mut mean_gx, T::zero());
        }
        if let Some(dx) = grads.dx {
            let acc = dx.accumulate as i32;
            launch!(
                dev,
                kname::<T>("bn_backward_dx"),
                grid_1d((rows * cols) as u64),
                &g.slice,
                &x.slice,
                &scale.slice,
                &offset.slice,
                &mean.slice,
                &rr.slice,
                &w.slice,
                &weighted,
                &mean_g.slice,
                &mean_gx.slice,
                &mut dx.buf.slice,
                &r,
                &c,
                &relu,
                &acc
            );
        }
    }
}

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
