//! Transposition of small matrices (per-example × per-cluster tables: [B, K] ↔ [K, B]).
//! out[c, r] (=|+=) x[r, c]; its own adjoint, so forward and backward share the kernel.

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

pub fn transpose<T: Real>(rows: usize, cols: usize, x: &Buffer<T>, out: GradOut<Buffer<T>>) {
    assert_eq!(x.len(), rows * cols, "transpose: input shape");
    assert_eq!(out.buf.len(), rows * cols, "transpose: output shape");
    match &*out.buf {
        Buffer::Host(_) => cpu::transpose(rows, cols, x.host(), out.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::transpose(rows, cols, x.cuda(), out.cuda()),
    }
}

pub mod cpu {
    use crate::buffer::GradOut;
    use crate::par::for_row_chunks;
    use crate::real::Real;

    pub fn transpose<T: Real>(rows: usize, cols: usize, x: &[T], out: GradOut<[T]>) {
        let acc = out.accumulate;
        // Output row c gathers column c of x.
        for_row_chunks(out.buf, rows, |c0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(rows.max(1)).enumerate() {
                let c = c0 + i;
                for (r, o) in o.iter_mut().enumerate() {
                    let v = x[r * cols + c];
                    *o = if acc { *o + v } else { v };
                }
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, grid_1d, kname, launch};
    use crate::real::Real;

    pub fn transpose<T: Real>(rows: usize, cols: usize, x: &CudaBuffer<T>, out: GradOut<CudaBuffer<T>>) {
        let dev = x.device().clone();
        let (r, c, acc) = (dim(rows), dim(cols), out.accumulate as i32);
        launch!(dev, kname::<T>("transpose"), grid_1d(x.len() as u64), &x.slice, &mut out.buf.slice, &r, &c, &acc);
    }
}
