//! Repeating rows and folding them back: the broadcasts of the model.
//!
//! The exact sum over the cluster variable y runs the y-conditioned networks on K·B rows laid
//! out cluster-major (row k·B + b is example b under cluster k). Per-example tensors (x, z1, the
//! y-independent part of a first layer) are repeated with period B; a bias is a period-1 repeat.
//!
//! - `tile_rows`:  out[r] (=|+=) s·src[r mod P]
//! - `add_tiled`:  out[r] = a[r] + b[r mod P]
//! - `fold_rows`:  out[j] (=|+=) Σ_{r ≡ j (mod P)} g[r]   (the adjoint of tile_rows; P = 1 gives
//!   column sums, e.g. a bias gradient)
//! - `row_sums`:   out[r] = Σ_c x[r, c];  `tile_cols` is its adjoint: out[r, c] (=|+=) g[r]

use crate::bf16::Bf16Buf;
use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// out (=|+=) s·src[r mod P] for every row r of out; `src` holds P rows of `cols`.
pub fn tile_rows<T: Real>(cols: usize, src: &Buffer<T>, s: T, out: GradOut<Buffer<T>>) {
    check_period(cols, src.len(), out.buf.len(), "tile_rows");
    match &*out.buf {
        Buffer::Host(_) => cpu::tile_rows(cols, src.host(), s, out.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::tile_rows(cols, src.cuda(), s, out.cuda()),
    }
}

/// out[r] = a[r] + b[r mod P].
pub fn add_tiled<T: Real>(cols: usize, a: &Buffer<T>, b: &Buffer<T>, out: &mut Buffer<T>) {
    check_period(cols, b.len(), a.len(), "add_tiled");
    assert_eq!(a.len(), out.len(), "add_tiled: output length");
    match out {
        Buffer::Host(o) => cpu::add_tiled(cols, a.host(), b.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::add_tiled(cols, a.cuda(), b.cuda(), o),
    }
}

/// out[j] (=|+=) Σ_{r ≡ j mod P} g[r], with P = out rows.
pub fn fold_rows<T: Real>(cols: usize, g: &Buffer<T>, out: GradOut<Buffer<T>>) {
    check_period(cols, out.buf.len(), g.len(), "fold_rows");
    match &*out.buf {
        Buffer::Host(_) => cpu::fold_rows(cols, g.host(), out.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::fold_rows(cols, g.cuda(), out.cuda()),
    }
}

/// As [`fold_rows`] from a gradient that exists only rounded to bf16 (CPU only; sums in T).
pub fn fold_rows_bf16<T: Real>(cols: usize, g: &Bf16Buf, out: GradOut<Buffer<T>>) {
    check_period(cols, out.buf.len(), g.len(), "fold_rows");
    cpu::fold_rows_of(cols, g, crate::bf16::widen::<T>, out.host())
}

/// out[r] = Σ_c x[r, c].
pub fn row_sums<T: Real>(cols: usize, x: &Buffer<T>, out: &mut Buffer<T>) {
    assert_eq!(x.len(), out.len() * cols, "row_sums: shape");
    match out {
        Buffer::Host(o) => cpu::row_sums(cols, x.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::row_sums(cols, x.cuda(), o),
    }
}

/// out[r, c] (=|+=) s·g[r].
pub fn tile_cols<T: Real>(cols: usize, g: &Buffer<T>, s: T, out: GradOut<Buffer<T>>) {
    assert_eq!(out.buf.len(), g.len() * cols, "tile_cols: shape");
    match &*out.buf {
        Buffer::Host(_) => cpu::tile_cols(cols, g.host(), s, out.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::tile_cols(cols, g.cuda(), s, out.cuda()),
    }
}

fn check_period(cols: usize, small: usize, big: usize, what: &str) {
    assert!(cols > 0, "{what}: zero columns");
    assert!(small.is_multiple_of(cols) && big.is_multiple_of(cols), "{what}: lengths not multiples of {cols} columns");
    let (p, r) = (small / cols, big / cols);
    assert!(p > 0 && r % p == 0, "{what}: {r} rows are not a whole number of repeats of {p} rows");
}

pub mod cpu {
    use crate::buffer::GradOut;
    use crate::par::{for_col_ranges, for_elems, for_row_chunks};
    use crate::real::Real;

    pub fn tile_rows<T: Real>(cols: usize, src: &[T], s: T, out: GradOut<[T]>) {
        let p = src.len() / cols;
        let acc = out.accumulate;
        for_row_chunks(out.buf, cols, |row0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let j = (row0 + i) % p;
                let srow = &src[j * cols..(j + 1) * cols];
                if acc {
                    o.iter_mut().zip(srow).for_each(|(o, &v)| *o = *o + s * v);
                } else {
                    o.iter_mut().zip(srow).for_each(|(o, &v)| *o = s * v);
                }
            }
        });
    }

    pub fn add_tiled<T: Real>(cols: usize, a: &[T], b: &[T], out: &mut [T]) {
        let p = b.len() / cols;
        for_row_chunks(out, cols, |row0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                let (arow, brow) = (&a[r * cols..(r + 1) * cols], &b[(r % p) * cols..(r % p + 1) * cols]);
                o.iter_mut().zip(arow).zip(brow).for_each(|((o, &x), &y)| *o = x + y);
            }
        });
    }

    pub fn fold_rows<T: Real>(cols: usize, g: &[T], out: GradOut<[T]>) {
        fold_rows_of(cols, g, |v| v, out)
    }

    /// Over a gradient stored as S, read as T by `value`.
    pub fn fold_rows_of<T: Real, S: Copy + Sync>(
        cols: usize,
        g: &[S],
        value: impl Fn(S) -> T + Sync + Send,
        out: GradOut<[T]>,
    ) {
        let p = out.buf.len() / cols;
        let rows = g.len() / cols;
        let acc = out.accumulate;
        if p * 4 >= rows {
            // Few repeats: parallel over output rows, each summing its own repeats.
            for_row_chunks(out.buf, cols, |row0, chunk| {
                for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                    let j = row0 + i;
                    if !acc {
                        o.fill(T::zero());
                    }
                    for r in (j..rows).step_by(p) {
                        o.iter_mut().zip(&g[r * cols..(r + 1) * cols]).for_each(|(o, &v)| *o = *o + value(v));
                    }
                }
            });
        } else {
            // Many repeats of few rows (a bias): parallel over column ranges.
            let out_ptr = SendPtr(out.buf.as_mut_ptr());
            for_col_ranges(rows, cols, |c0, c1| {
                let w = c1 - c0;
                let mut sums = vec![T::zero(); p * w];
                for r in 0..rows {
                    let s = &mut sums[(r % p) * w..(r % p + 1) * w];
                    s.iter_mut().zip(&g[r * cols + c0..r * cols + c1]).for_each(|(s, &v)| *s = *s + value(v));
                }
                for j in 0..p {
                    for c in 0..w {
                        // SAFETY: column ranges are disjoint across tasks.
                        unsafe {
                            let d = out_ptr.get().add(j * cols + c0 + c);
                            *d = if acc { *d + sums[j * w + c] } else { sums[j * w + c] };
                        }
                    }
                }
            });
        }
    }

    pub fn row_sums<T: Real>(cols: usize, x: &[T], out: &mut [T]) {
        for_elems(out, cols, |r0, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = r0 + i;
                *o = x[r * cols..(r + 1) * cols].iter().copied().sum();
            }
        });
    }

    pub fn tile_cols<T: Real>(cols: usize, g: &[T], s: T, out: GradOut<[T]>) {
        let acc = out.accumulate;
        for_row_chunks(out.buf, cols, |row0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let v = s * g[row0 + i];
                if acc {
                    o.iter_mut().for_each(|o| *o = *o + v);
                } else {
                    o.fill(v);
                }
            }
        });
    }

    /// A raw pointer that may cross threads; users guarantee disjoint access.
    #[derive(Clone, Copy)]
    pub(crate) struct SendPtr<T>(pub *mut T);
    unsafe impl<T> Send for SendPtr<T> {}
    unsafe impl<T> Sync for SendPtr<T> {}
    impl<T> SendPtr<T> {
        #[inline(always)]
        pub fn get(self) -> *mut T {
            self.0
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{column_blocks, dim, grid_1d, kname, launch, warp_per_row};
    use crate::real::Real;

    pub fn tile_rows<T: Real>(cols: usize, src: &CudaBuffer<T>, s: T, out: GradOut<CudaBuffer<T>>) {
        let dev = src.device().clone();
        let (rows, c, p, acc) = (dim(out.buf.len() / cols), dim(cols), dim(src.len() / cols), out.accumulate as i32);
        launch!(
            dev,
            kname::<T>("tile_rows"),
            grid_1d(out.buf.len() as u64),
            &src.slice,
            &s,
            &mut out.buf.slice,
            &rows,
            &c,
            &p,
            &acc
        );
    }

    pub fn add_tiled<T: Real>(cols: usize, a: &CudaBuffer<T>, b: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = a.device().clone();
        let (rows, c, p) = (dim(a.len() / cols), dim(cols), dim(b.len() / cols));
        launch!(
            dev,
            kname::<T>("add_tiled"),
            grid_1d(a.len() as u64),
            &a.slice,
            &b.slice,
            &mut out.slice,
            &rows,
            &c,
            &p
        );
    }

    pub fn fold_rows<T: Real>(cols: usize, g: &CudaBuffer<T>, out: GradOut<CudaBuffer<T>>) {
        let dev = g.device().clone();
        let (rows, c, p, acc) = (dim(g.len() / cols), dim(cols), dim(out.buf.len() / cols), out.accumulate as i32);
        launch!(dev, kname::<T>("fold_rows"), column_blocks(c, p), &g.slice, &mut out.buf.slice, &rows, &c, &p, &acc);
    }

    pub fn row_sums<T: Real>(cols: usize, x: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = x.device().clone();
        let (rows, c) = (dim(out.len()), dim(cols));
        launch!(dev, kname::<T>("row_sums"), warp_per_row(rows), &x.slice, &mut out.slice, &rows, &c);
    }

    pub fn tile_cols<T: Real>(cols: usize, g: &CudaBuffer<T>, s: T, out: GradOut<CudaBuffer<T>>) {
        let dev = g.device().clone();
        let (rows, c, acc) = (dim(g.len()), dim(cols), out.accumulate as i32);
        launch!(
            dev,
            kname::<T>("tile_cols"),
            grid_1d(out.buf.len() as u64),
            &g.slice,
            &s,
            &mut out.buf.slice,
            &rows,
            &c,
            &acc
        );
    }
}
