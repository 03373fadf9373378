//! Batch norm's CPU reference: the definition every other implementation is tested against
//! (column sums within a chunk of rows in T, across chunks in f64; row chunks over threads; AVX2 twins
//! of the row loops chosen at run time).

use super::types::{BnAffine, BnGrads, BnStats, RunningStats};
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
            (s1.iter().map(|v| v.as_f64()).collect::<Vec<f64>>(), s2.iter().map(|v| v.as_f64()).collect::<Vec<f64>>())
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
        Output::Bf16Only(h) => {
            rows_rounded(cols, h, |r, yr| affine_row(&x[r * cols..(r + 1) * cols], &scale, &offset, affine.relu, yr))
        }
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
            (sum_g.iter().map(|&s| T::from_f64(s / n)).collect(), sum_gx.iter().map(|&s| T::from_f64(s / n)).collect())
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
