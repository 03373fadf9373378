//! Softmax and log-softmax over the columns of each row (the K clusters).
//!
//! Forward (max subtracted): log_softmax(x)_c = x_c − m − ln Σ_j exp(x_j − m), m = max_j x_j.
//! Backward from the forward output y:
//!   softmax:     dx = y ∘ (g − Σ_c g_c·y_c)
//!   log-softmax: dx = g − exp(y)·Σ_c g_c

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// out = softmax(x) per row, or log_softmax with `log`.
pub fn forward<T: Real>(cols: usize, log: bool, x: &Buffer<T>, out: &mut Buffer<T>) {
    assert!(cols > 0 && x.len().is_multiple_of(cols) && x.len() == out.len(), "softmax: shape");
    match out {
        Buffer::Host(o) => cpu::forward(cols, log, x.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::forward(cols, log, x.cuda(), o),
    }
}

/// dx (=|+=) the adjoint of `forward` at output `y` applied to `g`.
pub fn backward<T: Real>(cols: usize, log: bool, g: &Buffer<T>, y: &Buffer<T>, dx: GradOut<Buffer<T>>) {
    assert!(g.len() == y.len() && y.len() == dx.buf.len(), "softmax backward: shape");
    match &*dx.buf {
        Buffer::Host(_) => cpu::backward(cols, log, g.host(), y.host(), dx.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::backward(cols, log, g.cuda(), y.cuda(), dx.cuda()),
    }
}

pub mod cpu {
    use crate::buffer::GradOut;
    use crate::par::for_row_chunks;
    use crate::real::Real;

    pub fn forward<T: Real>(cols: usize, log: bool, x: &[T], out: &mut [T]) {
        for_row_chunks(out, cols, |row0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let xr = &x[(row0 + i) * cols..(row0 + i + 1) * cols];
                let m = xr.iter().copied().fold(T::neg_infinity(), T::max);
                let s: T = xr.iter().map(|&v| (v - m).exp()).sum();
                let ls = s.ln();
                for (o, &v) in o.iter_mut().zip(xr) {
                    *o = if log { v - m - ls } else { (v - m).exp() / s };
                }
            }
        });
    }

    pub fn backward<T: Real>(cols: usize, log: bool, g: &[T], y: &[T], dx: GradOut<[T]>) {
        let acc = dx.accumulate;
        for_row_chunks(dx.buf, cols, |row0, chunk| {
            for (i, d) in chunk.chunks_exact_mut(cols).enumerate() {
                let off = (row0 + i) * cols;
                let (gr, yr) = (&g[off..off + cols], &y[off..off + cols]);
                if log {
                    let sg: T = gr.iter().copied().sum();
                    for ((d, &gv), &yv) in d.iter_mut().zip(gr).zip(yr) {
                        let v = gv - yv.exp() * sg;
                        *d = if acc { *d + v } else { v };
                    }
                } else {
                    let sgy: T = gr.iter().zip(yr).map(|(&a, &b)| a * b).sum();
                    for ((d, &gv), &yv) in d.iter_mut().zip(gr).zip(yr) {
                        let v = yv * (gv - sgy);
                        *d = if acc { *d + v } else { v };
                    }
                }
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, kname, launch, warp_per_row};
    use crate::real::Real;

    pub fn forward<T: Real>(cols: usize, log: bool, x: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = x.device().clone();
        let (rows, c, l) = (dim(x.len() / cols), dim(cols), log as i32);
        launch!(dev, kname::<T>("softmax_forward"), warp_per_row(rows), &x.slice, &mut out.slice, &rows, &c, &l);
    }

    pub fn backward<T: Real>(cols: usize, log: bool, g: &CudaBuffer<T>, y: &CudaBuffer<T>, dx: GradOut<CudaBuffer<T>>) {
        let dev = g.device().clone();
        let (rows, c, l, acc) = (dim(g.len() / cols), dim(cols), log as i32, dx.accumulate as i32);
        launch!(
            dev,
            kname::<T>("softmax_backward"),
            warp_per_row(rows),
            &g.slice,
            &y.slice,
            &mut dx.buf.slice,
            &rows,
            &c,
            &l,
            &acc
        );
    }
}
