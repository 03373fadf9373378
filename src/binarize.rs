//! Dynamic binarisation: x[b, d] = 1 if u < p[rows[b], d] else 0, u uniform from the Philox
//! stream (element b·cols + d uses draw b·cols + d). Gathering the batch's rows from the data
//! set and drawing its pixels happen in one pass.

use crate::buffer::{Buffer, Indices};
use crate::real::Real;
use crate::rng::RngStream;

/// Draws a binary batch: row b of `out` is a Bernoulli sample of row `rows[b]` of `probs`.
pub fn binarize_rows<T: Real>(cols: usize, probs: &Buffer<T>, rows: &Indices, stream: RngStream, out: &mut Buffer<T>) {
    assert!(cols > 0, "binarize: zero columns");
    assert_eq!(out.len(), rows.len() * cols, "binarize: output shape");
    assert!(probs.len().is_multiple_of(cols), "binarize: probabilities shape");
    match out {
        Buffer::Host(o) => cpu::binarize_rows(cols, probs.host(), rows.host(), stream, o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::binarize_rows(cols, probs.cuda(), rows.cuda(), stream, o),
    }
}

pub mod cpu {
    use crate::par::for_row_chunks;
    use crate::real::Real;
    use crate::rng::{RngStream, for_each_draw, uniform4};

    pub fn binarize_rows<T: Real>(cols: usize, probs: &[T], rows: &[u32], stream: RngStream, out: &mut [T]) {
        let n = probs.len() / cols;
        for_row_chunks(out, cols, |row0, chunk| {
            for_each_draw(stream, (row0 * cols) as u64, chunk.len(), uniform4, |i, u| {
                let (b, d) = (row0 + i / cols, i % cols);
                let src = rows[b] as usize;
                assert!(src < n, "binarize: row {src} out of range for {n} rows");
                chunk[i] = if u < probs[src * cols + d].as_f64() { T::one() } else { T::zero() };
            });
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::cuda::launch::{dim, grid_1d, kname, launch};
    use crate::cuda::{CudaBuffer, CudaIndices};
    use crate::real::Real;
    use crate::rng::RngStream;

    pub fn binarize_rows<T: Real>(
        cols: usize,
        probs: &CudaBuffer<T>,
        rows: &CudaIndices,
        stream: RngStream,
        out: &mut CudaBuffer<T>,
    ) {
        let dev = probs.device().clone();
        let n = probs.len() / cols;
        assert!(rows.max().is_none_or(|m| (m as usize) < n), "binarize: a row index is out of range for {n} rows");
        let (r, c, seed, st) = (dim(rows.len()), dim(cols), stream.seed, stream.stream);
        let blocks = (out.len() as u64).div_ceil(4);
        launch!(
            dev,
            kname::<T>("binarize"),
            grid_1d(blocks),
            &probs.slice,
            &rows.slice,
            &mut out.slice,
            &r,
            &c,
            &seed,
            &st
        );
    }
}
