//! log Σ exp over one axis of a matrix, with the maximum subtracted: over the K clusters, and
//! over importance samples (chunks of samples are combined by logsumexp, never by averaging).
//!
//! Forward:  lse = m + ln Σ exp(x − m), m = max x  (−∞ if every entry is −∞)
//! Backward: dx = g·exp(x − lse)

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// Which axis a reduction runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Along each row, over its columns: one result per row.
    AlongRow,
    /// Down each column, over its rows: one result per column.
    DownColumn,
}

impl Axis {
    /// Number of results for a `rows × cols` input.
    pub fn out_len(self, rows: usize, cols: usize) -> usize {
        match self {
            Axis::AlongRow => rows,
            Axis::DownColumn => cols,
        }
    }
}

pub fn forward<T: Real>(rows: usize, cols: usize, axis: Axis, x: &Buffer<T>, out: &mut Buffer<T>) {
    assert_eq!(x.len(), rows * cols, "logsumexp: input shape");
    assert_eq!(out.len(), axis.out_len(rows, cols), "logsumexp: output shape");
    match out {
        Buffer::Host(o) => cpu::forward(rows, cols, axis, x.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::forward(rows, cols, axis, x.cuda(), o),
    }
}

pub fn backward<T: Real>(
    rows: usize,
    cols: usize,
    axis: Axis,
    g: &Buffer<T>,
    x: &Buffer<T>,
    lse: &Buffer<T>,
    dx: GradOut<Buffer<T>>,
) {
    assert_eq!(dx.buf.len(), rows * cols, "logsumexp backward: shape");
    assert_eq!(x.len(), rows * cols, "logsumexp backward: input shape");
    assert_eq!(lse.len(), axis.out_len(rows, cols), "logsumexp backward: lse shape");
    assert_eq!(g.len(), axis.out_len(rows, cols), "logsumexp backward: gradient shape");
    match &*dx.buf {
        Buffer::Host(_) => cpu::backward(rows, cols, axis, g.host(), x.host(), lse.host(), dx.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::backward(rows, cols, axis, g.cuda(), x.cuda(), lse.cuda(), dx.cuda()),
    }
}

pub mod cpu {
    use super::Axis;
    use crate::buffer::GradOut;
    use crate::par::{for_elems, for_row_chunks};
    use crate::real::Real;

    /// The stable log Σ exp of a sequence given as an iterator factory.
    #[inline]
    fn lse<T: Real, I: Iterator<Item = T>>(it: impl Fn() -> I) -> T {
        let m = it().fold(T::neg_infinity(), T::max);
        if m == T::neg_infinity() {
            return m;
        }
        let s: T = it().map(|v| (v - m).exp()).sum();
        m + s.ln()
    }

    pub fn forward<T: Real>(rows: usize, cols: usize, axis: Axis, x: &[T], out: &mut [T]) {
        match axis {
            Axis::AlongRow => for_elems(out, cols, |r0, chunk| {
                for (i, o) in chunk.iter_mut().enumerate() {
                    let row = &x[(r0 + i) * cols..(r0 + i + 1) * cols];
                    *o = lse(|| row.iter().copied());
                }
            }),
            Axis::DownColumn => for_elems(out, rows, |c0, chunk| {
                for (i, o) in chunk.iter_mut().enumerate() {
                    let c = c0 + i;
                    *o = lse(|| (0..rows).map(|r| x[r * cols + c]));
                }
            }),
        }
    }

    #[inline(always)]
    fn grad<T: Real>(g: T, x: T, lse: T) -> T {
        if lse == T::neg_infinity() { T::zero() } else { g * (x - lse).exp() }
    }

    pub fn backward<T: Real>(rows: usize, cols: usize, axis: Axis, g: &[T], x: &[T], lse: &[T], dx: GradOut<[T]>) {
        let _ = rows;
        let acc = dx.accumulate;
        for_row_chunks(dx.buf, cols, |row0, chunk| {
            for (i, d) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                for (c, d) in d.iter_mut().enumerate() {
                    let j = if axis == Axis::AlongRow { r } else { c };
                    let v = grad(g[j], x[r * cols + c], lse[j]);
                    *d = if acc { *d + v } else { v };
                }
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::Axis;
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, grid_1d, kname, launch, warp_per_row};
    use crate::real::Real;

    pub fn forward<T: Real>(rows: usize, cols: usize, axis: Axis, x: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = x.device().clone();
        let (r, c) = (dim(rows), dim(cols));
        match axis {
            Axis::AlongRow => launch!(dev, kname::<T>("lse_rows"), warp_per_row(r), &x.slice, &mut out.slice, &r, &c),
            Axis::DownColumn => {
                launch!(dev, kname::<T>("lse_cols"), grid_1d(cols as u64), &x.slice, &mut out.slice, &r, &c)
            }
        }
    }

    pub fn backward<T: Real>(
        rows: usize,
        cols: usize,
        axis: Axis,
        g: &CudaBuffer<T>,
        x: &CudaBuffer<T>,
        lse: &CudaBuffer<T>,
        dx: GradOut<CudaBuffer<T>>,
    ) {
        let dev = x.device().clone();
        let (r, c, along, acc) = (dim(rows), dim(cols), (axis == Axis::AlongRow) as i32, dx.accumulate as i32);
        launch!(
            dev,
            kname::<T>("lse_backward"),
            grid_1d(x.len() as u64),
            &g.slice,
            &x.slice,
            &lse.slice,
            &mut dx.buf.slice,
            &r,
            &c,
            &along,
            &acc
        );
    }
}
