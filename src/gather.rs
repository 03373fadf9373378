//! Indexed rows and entries: how the cluster variable y enters the networks without one-hot
//! products (docs/design.md §1, "Cost"), and how per-cluster log-probabilities are read off.
//!
//! - `gather_add_rows`:  out[r] = a[r mod P] + table[idx[r]]   (first layer: W_c·c + W_y[:, y])
//! - `scatter_add_rows`: dtable[k] (=|+=) Σ_{r : idx[r] = k} g[r]   (its adjoint in `table`)
//! - `pick`:             out[r] = x[r, idx[r]]                  (log p(y = k | ·) of row r)
//! - `pick_backward`:    dx[r, c] (=|+=) g[r]·[c = idx[r]]

use crate::bf16::Bf16Buf;
use crate::buffer::{Buffer, GradOut, Indices};
use crate::real::Real;

pub fn gather_add_rows<T: Real>(cols: usize, a: &Buffer<T>, table: &Buffer<T>, idx: &Indices, out: &mut Buffer<T>) {
    let rows = idx.len();
    assert_eq!(out.len(), rows * cols, "gather_add_rows: output shape");
    assert!(
        a.len().is_multiple_of(cols) && !a.is_empty() && rows.is_multiple_of(a.len() / cols),
        "gather_add_rows: a rows must divide output rows"
    );
    assert!(table.len().is_multiple_of(cols), "gather_add_rows: table shape");
    match out {
        Buffer::Host(o) => cpu::gather_add_rows(cols, a.host(), table.host(), idx.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::gather_add_rows(cols, a.cuda(), table.cuda(), idx.cuda(), o),
    }
}

pub fn scatter_add_rows<T: Real>(cols: usize, g: &Buffer<T>, idx: &Indices, dtable: GradOut<Buffer<T>>) {
    assert_eq!(g.len(), idx.len() * cols, "scatter_add_rows: gradient shape");
    match &*dtable.buf {
        Buffer::Host(_) => cpu::scatter_add_rows(cols, g.host(), idx.host(), dtable.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::scatter_add_rows(cols, g.cuda(), idx.cuda(), dtable.cuda()),
    }
}

/// As [`scatter_add_rows`] from a gradient that exists only rounded to bf16 (CPU only; sums in T).
pub fn scatter_add_rows_bf16<T: Real>(cols: usize, g: &Bf16Buf, idx: &Indices, dtable: GradOut<Buffer<T>>) {
    assert_eq!(g.len(), idx.len() * cols, "scatter_add_rows: gradient shape");
    cpu::scatter_add_rows_of(cols, g, crate::bf16::widen::<T>, idx.host(), dtable.host())
}

pub fn pick<T: Real>(cols: usize, x: &Buffer<T>, idx: &Indices, out: &mut Buffer<T>) {
    assert_eq!(x.len(), idx.len() * cols, "pick: input shape");
    assert_eq!(out.len(), idx.len(), "pick: output shape");
    match out {
        Buffer::Host(o) => cpu::pick(cols, x.host(), idx.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::pick(cols, x.cuda(), idx.cuda(), o),
    }
}

pub fn pick_backward<T: Real>(cols: usize, g: &Buffer<T>, idx: &Indices, dx: GradOut<Buffer<T>>) {
    assert_eq!(g.len(), idx.len(), "pick_backward: gradient shape");
    assert_eq!(dx.buf.len(), idx.len() * cols, "pick_backward: output shape");
    match &*dx.buf {
        Buffer::Host(_) => cpu::pick_backward(cols, g.host(), idx.host(), dx.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::pick_backward(cols, g.cuda(), idx.cuda(), dx.cuda()),
    }
}

pub mod cpu {
    use crate::broadcast::cpu::SendPtr;
    use crate::buffer::GradOut;
    use crate::par::{for_col_ranges, for_row_chunks};
    use crate::real::Real;

    pub fn gather_add_rows<T: Real>(cols: usize, a: &[T], table: &[T], idx: &[u32], out: &mut [T]) {
        let p = a.len() / cols;
        let k = table.len() / cols;
        for_row_chunks(out, cols, |row0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                let t = idx[r] as usize;
                assert!(t < k, "gather_add_rows: index {t} out of range for {k} table rows");
                let arow = &a[(r % p) * cols..(r % p + 1) * cols];
                let trow = &table[t * cols..(t + 1) * cols];
                o.iter_mut().zip(arow).zip(trow).for_each(|((o, &x), &w)| *o = x + w);
            }
        });
    }

    pub fn scatter_add_rows<T: Real>(cols: usize, g: &[T], idx: &[u32], dtable: GradOut<[T]>) {
        scatter_add_rows_of(cols, g, |v| v, idx, dtable)
    }

    /// Over a gradient stored as S, read as T by `value`.
    pub fn scatter_add_rows_of<T: Real, S: Copy + Sync>(
        cols: usize,
        g: &[S],
        value: impl Fn(S) -> T + Sync + Send,
        idx: &[u32],
        dtable: GradOut<[T]>,
    ) {
        let k = dtable.buf.len() / cols;
        let rows = idx.len();
        let acc = dtable.accumulate;
        let out = SendPtr(dtable.buf.as_mut_ptr());
        for_col_ranges(rows, cols, |c0, c1| {
            // SAFETY: each task touches only columns c0..c1 of every table row.
            let row = |t: usize| unsafe { std::slice::from_raw_parts_mut(out.get().add(t * cols + c0), c1 - c0) };
            if !acc {
                (0..k).for_each(|t| row(t).fill(T::zero()));
            }
            for (r, &t) in idx.iter().enumerate() {
                let t = t as usize;
                assert!(t < k, "scatter_add_rows: index {t} out of range for {k} table rows");
                row(t).iter_mut().zip(&g[r * cols + c0..r * cols + c1]).for_each(|(o, &v)| *o = *o + value(v));
            }
        });
    }

    pub fn pick<T: Real>(cols: usize, x: &[T], idx: &[u32], out: &mut [T]) {
        for (r, o) in out.iter_mut().enumerate() {
            let c = idx[r] as usize;
            assert!(c < cols, "pick: index {c} out of range for {cols} columns");
            *o = x[r * cols + c];
        }
    }

    pub fn pick_backward<T: Real>(cols: usize, g: &[T], idx: &[u32], dx: GradOut<[T]>) {
        let acc = dx.accumulate;
        for_row_chunks(dx.buf, cols, |row0, chunk| {
            for (i, d) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                if !acc {
                    d.fill(T::zero());
                }
                let c = idx[r] as usize;
                d[c] = d[c] + g[r];
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::launch::{column_blocks, dim, grid_1d, kname, launch};
    use crate::cuda::{CudaBuffer, CudaIndices};
    use crate::real::Real;

    /// The GPU does not bounds-check: refuse indices beyond `n` before launching.
    fn in_range(idx: &CudaIndices, n: usize, what: &str) {
        assert!(idx.max().is_none_or(|m| (m as usize) < n), "{what}: index {:?} out of range for {n}", idx.max());
    }

    pub fn gather_add_rows<T: Real>(
        cols: usize,
        a: &CudaBuffer<T>,
        table: &CudaBuffer<T>,
        idx: &CudaIndices,
        out: &mut CudaBuffer<T>,
    ) {
        let dev = a.device().clone();
        let (rows, c, pa) = (dim(idx.len()), dim(cols), dim(a.len() / cols));
        in_range(idx, table.len() / cols, "gather_add_rows");
        launch!(
            dev,
            kname::<T>("gather_add_rows"),
            grid_1d(out.len() as u64),
            &a.slice,
            &table.slice,
            &idx.slice,
            &mut out.slice,
            &rows,
            &c,
            &pa
        );
    }

    pub fn scatter_add_rows<T: Real>(
        cols: usize,
        g: &CudaBuffer<T>,
        idx: &CudaIndices,
        dtable: GradOut<CudaBuffer<T>>,
    ) {
        let dev = g.device().clone();
        let (rows, c, k, acc) = (dim(idx.len()), dim(cols), dim(dtable.buf.len() / cols), dtable.accumulate as i32);
        in_range(idx, dtable.buf.len() / cols, "scatter_add_rows");
        launch!(
            dev,
            kname::<T>("scatter_add_rows"),
            column_blocks(c, k),
            &g.slice,
            &idx.slice,
            &mut dtable.buf.slice,
            &rows,
            &c,
            &k,
            &acc
        );
    }

    pub fn pick<T: Real>(cols: usize, x: &CudaBuffer<T>, idx: &CudaIndices, out: &mut CudaBuffer<T>) {
        let dev = x.device().clone();
        let (rows, c) = (dim(idx.len()), dim(cols));
        in_range(idx, cols, "pick");
        launch!(dev, kname::<T>("pick"), grid_1d(rows as u64), &x.slice, &idx.slice, &mut out.slice, &rows, &c);
    }

    pub fn pick_backward<T: Real>(cols: usize, g: &CudaBuffer<T>, idx: &CudaIndices, dx: GradOut<CudaBuffer<T>>) {
        let dev = g.device().clone();
        let (rows, c, acc) = (dim(idx.len()), dim(cols), dx.accumulate as i32);
        in_range(idx, cols, "pick_backward");
        launch!(
            dev,
            kname::<T>("pick_backward"),
            grid_1d(dx.buf.len() as u64),
            &g.slice,
            &idx.slice,
            &mut dx.buf.slice,
            &rows,
            &c,
            &acc
        );
    }
}
