//! Bernoulli log-likelihood from logits, summed over each row:
//!   log p(x | l) = Σ_d x_d·l_d − softplus(l_d),  softplus(l) = max(l, 0) + ln(1 + e^{−|l|})
//! (never through sigmoid then log). Backward: dl = g·(x − σ(l)).
//! The targets x may have fewer rows than the logits (a divisor); row r reads x[r mod P].

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// softplus(l) = ln(1 + e^l) = max(l, 0) + ln(1 + e^{−|l|}), stable for any l.
#[inline(always)]
pub fn softplus<T: Real>(l: T) -> T {
    l.max(T::zero()) + (-l.abs()).vexp().vln_1p()
}

/// σ(l) from e = e^{−|l|}: 1/(1 + e) for l ≥ 0, e/(1 + e) below; stable, and branch-free so
/// that loops vectorise.
#[inline(always)]
pub fn sigmoid<T: Real>(l: T) -> T {
    let e = (-l.abs()).vexp();
    let s = T::one() / (T::one() + e);
    if l >= T::zero() { s } else { e * s }
}

pub fn loglik<T: Real>(cols: usize, logits: &Buffer<T>, x: &Buffer<T>, out: &mut Buffer<T>) {
    assert_eq!(logits.len(), out.len() * cols, "bernoulli loglik: logits shape");
    crate::check_broadcast(out.len(), cols, x.len(), "x");
    match out {
        Buffer::Host(o) => cpu::loglik(cols, logits.host(), x.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::loglik(cols, logits.cuda(), x.cuda(), o),
    }
}

pub fn loglik_backward<T: Real>(
    cols: usize,
    g: &Buffer<T>,
    logits: &Buffer<T>,
    x: &Buffer<T>,
    dlogits: GradOut<Buffer<T>>,
) {
    assert_eq!(logits.len(), g.len() * cols, "bernoulli loglik backward: shape");
    assert_eq!(dlogits.buf.len(), logits.len(), "bernoulli loglik backward: output shape");
    crate::check_broadcast(g.len(), cols, x.len(), "x");
    match &*dlogits.buf {
        Buffer::Host(_) => cpu::loglik_backward(cols, g.host(), logits.host(), x.host(), dlogits.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::loglik_backward(cols, g.cuda(), logits.cuda(), x.cuda(), dlogits.cuda()),
    }
}

pub mod cpu {
    use super::{sigmoid, softplus};
    use crate::buffer::GradOut;
    use crate::par::{for_elems, for_row_chunks};
    use crate::real::Real;
    use crate::wide::widened;

    pub fn loglik<T: Real>(cols: usize, logits: &[T], x: &[T], out: &mut [T]) {
        for_elems(out, cols, |r0, chunk| loglik_rows(cols, logits, x, r0, chunk));
    }

    widened! {
        /// The log-likelihoods of rows r0.. into `out` (one per row).
        fn loglik_rows<T: Real>(cols: usize, logits: &[T], x: &[T], r0: usize, out: &mut [T]) => loglik_rows_body
    }

    #[inline(always)]
    pub(super) fn loglik_rows_body<T: Real>(cols: usize, logits: &[T], x: &[T], r0: usize, out: &mut [T]) {
        let px = x.len() / cols;
        for (i, o) in out.iter_mut().enumerate() {
            let r = r0 + i;
            let lr = &logits[r * cols..(r + 1) * cols];
            let xr = &x[(r % px) * cols..(r % px + 1) * cols];
            *o = crate::fastmath::lane_sum3(lr, xr, lr, |l, x, _| x * l - softplus(l));
        }
    }

    pub fn loglik_backward<T: Real>(cols: usize, g: &[T], logits: &[T], x: &[T], dlogits: GradOut<[T]>) {
        let acc = dlogits.accumulate;
        for_row_chunks(dlogits.buf, cols, |row0, chunk| backward_rows(cols, g, logits, x, acc, row0, chunk));
    }

    widened! {
        /// dlogits of rows row0.. into `out` (whole rows), added to it with `acc`.
        fn backward_rows<T: Real>(cols: usize, g: &[T], logits: &[T], x: &[T], acc: bool, row0: usize, out: &mut [T])
            => backward_rows_body
    }

    #[inline(always)]
    pub(super) fn backward_rows_body<T: Real>(
        cols: usize,
        g: &[T],
        logits: &[T],
        x: &[T],
        acc: bool,
        row0: usize,
        out: &mut [T],
    ) {
        if acc {
            backward_rows_of::<T, true>(cols, g, logits, x, row0, out)
        } else {
            backward_rows_of::<T, false>(cols, g, logits, x, row0, out)
        }
    }

    /// The flag is a constant so the inner loop has nothing to test and vectorises.
    #[inline(always)]
    fn backward_rows_of<T: Real, const ACC: bool>(
        cols: usize,
        g: &[T],
        logits: &[T],
        x: &[T],
        row0: usize,
        out: &mut [T],
    ) {
        let px = x.len() / cols;
        for (i, d) in out.chunks_exact_mut(cols).enumerate() {
            let r = row0 + i;
            let lr = &logits[r * cols..(r + 1) * cols];
            let xr = &x[(r % px) * cols..(r % px + 1) * cols];
            let gr = g[r];
            for ((d, &l), &x) in d.iter_mut().zip(lr).zip(xr) {
                let v = gr * (x - sigmoid(l));
                *d = if ACC { *d + v } else { v };
            }
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, grid_1d, kname, launch, warp_per_row};
    use crate::real::Real;

    pub fn loglik<T: Real>(cols: usize, logits: &CudaBuffer<T>, x: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = x.device().clone();
        let (rows, c, px) = (dim(out.len()), dim(cols), dim(x.len() / cols));
        launch!(
            dev,
            kname::<T>("bern_loglik"),
            warp_per_row(rows),
            &logits.slice,
            &x.slice,
            &mut out.slice,
            &rows,
            &c,
            &px
        );
    }

    pub fn loglik_backward<T: Real>(
        cols: usize,
        g: &CudaBuffer<T>,
        logits: &CudaBuffer<T>,
        x: &CudaBuffer<T>,
        dl: GradOut<CudaBuffer<T>>,
    ) {
        let dev = x.device().clone();
        let (rows, c, px, acc) = (dim(g.len()), dim(cols), dim(x.len() / cols), dl.accumulate as i32);
        launch!(
            dev,
            kname::<T>("bern_backward"),
            grid_1d(logits.len() as u64),
            &g.slice,
            &logits.slice,
            &x.slice,
            &mut dl.buf.slice,
            &rows,
            &c,
            &px,
            &acc
        );
    }
}

#[cfg(test)]
mod tests {
    use super::cpu;
    use crate::buffer::GradOut;

    /// The AVX2 twins (where this CPU has AVX2) give the baseline build's results bit for bit.
    #[test]
    fn wide_kernels_match_the_baseline_bit_for_bit() {
        let mut rng = crate::rng::HostRng::new(7, 0);
        let (rows, cols) = (37, 83);
        let logits: Vec<f32> = (0..rows * cols).map(|_| (rng.next_f64() * 30.0 - 15.0) as f32).collect();
        let x: Vec<f32> = (0..rows * cols).map(|_| if rng.next_f64() < 0.3 { 1.0 } else { 0.0 }).collect();
        let g: Vec<f32> = (0..rows).map(|_| rng.next_f64() as f32).collect();
        let (mut wide, mut narrow) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        cpu::loglik(cols, &logits, &x, &mut wide);
        cpu::loglik_rows_body(cols, &logits, &x, 0, &mut narrow);
        assert_eq!(
            wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            narrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let (mut wide, mut narrow) = (vec![0.5f32; rows * cols], vec![0.5f32; rows * cols]);
        cpu::loglik_backward(cols, &g, &logits, &x, GradOut { buf: &mut wide[..], accumulate: true });
        cpu::backward_rows_body(cols, &g, &logits, &x, true, 0, &mut narrow);
        assert_eq!(
            wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            narrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
