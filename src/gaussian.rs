//! Log-densities of diagonal Gaussians, summed over each row (one value per sample).
//!
//! diag:   log N(z; μ, diag e^λ) = Σ_d −½ (ln 2π + λ_d + (z_d − μ_d)² e^{−λ_d})
//! normal: log N(z; 0, I)        = Σ_d −½ (ln 2π + z_d²)
//! Backward (g per row): dz = −g·(z − μ)e^{−λ},  dμ = g·(z − μ)e^{−λ},
//!                       dλ = −½ g·(1 − (z − μ)² e^{−λ})
//!
//! Log-variances are clamped to [LOGVAR_MIN, LOGVAR_MAX] (here and in the reparameterisation) so
//! that e^{±λ} cannot overflow; the gradient is zero outside that range, as for any clamp.
//!
//! Broadcasting: z, μ and λ may each have fewer rows than the result, as long as that number
//! divides it; row r then reads row r mod P. (z1 is shared by the K cluster rows of p(z1|y,z2);
//! the q(z1|x) parameters by the importance samples.) Gradients fold back over the repeats.

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

pub const LN_2PI: f64 = 1.837_877_066_409_345_5;
/// Log-variances are clamped to this range before use (e^±30 is far inside f32's range).
pub const LOGVAR_MIN: f64 = -30.0;
pub const LOGVAR_MAX: f64 = 30.0;

#[inline(always)]
pub fn clamp_logvar<T: Real>(lv: T) -> T {
    lv.max(T::c(LOGVAR_MIN)).min(T::c(LOGVAR_MAX))
}

#[inline(always)]
pub fn logvar_in_range<T: Real>(lv: T) -> bool {
    lv >= T::c(LOGVAR_MIN) && lv <= T::c(LOGVAR_MAX)
}

/// out[r] = log N(z[r mod Pz]; μ[r mod Pμ], diag exp λ[r mod Pλ]).
pub fn diag_logdensity<T: Real>(cols: usize, z: &Buffer<T>, mu: &Buffer<T>, lv: &Buffer<T>, out: &mut Buffer<T>) {
    let rows = out.len();
    for (b, n) in [(z, "z"), (mu, "mu"), (lv, "logvar")] {
        crate::check_broadcast(rows, cols, b.len(), n);
    }
    match out {
        Buffer::Host(o) => cpu::diag_logdensity(cols, z.host(), mu.host(), lv.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::diag_logdensity(cols, z.cuda(), mu.cuda(), lv.cuda(), o),
    }
}

/// The gradients of `diag_logdensity` (None: not needed).
pub struct DiagGrads<'a, B: ?Sized> {
    pub dz: Option<GradOut<'a, B>>,
    pub dmu: Option<GradOut<'a, B>>,
    pub dlogvar: Option<GradOut<'a, B>>,
}

pub fn diag_logdensity_backward<T: Real>(
    cols: usize,
    g: &Buffer<T>,
    z: &Buffer<T>,
    mu: &Buffer<T>,
    lv: &Buffer<T>,
    grads: DiagGrads<Buffer<T>>,
) {
    let rows = g.len();
    for (b, n) in [(z, "z"), (mu, "mu"), (lv, "logvar")] {
        crate::check_broadcast(rows, cols, b.len(), n);
    }
    for (out, arg, n) in [(&grads.dz, z, "dz"), (&grads.dmu, mu, "dmu"), (&grads.dlogvar, lv, "dlogvar")] {
        if let Some(o) = out {
            assert_eq!(o.buf.len(), arg.len(), "diag_logdensity_backward: {n} has the wrong length");
        }
    }
    match g {
        Buffer::Host(g) => cpu::diag_logdensity_backward(
            cols,
            g,
            z.host(),
            mu.host(),
            lv.host(),
            DiagGrads {
                dz: grads.dz.map(GradOut::host),
                dmu: grads.dmu.map(GradOut::host),
                dlogvar: grads.dlogvar.map(GradOut::host),
            },
        ),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(g) => cuda::diag_logdensity_backward(
            cols,
            g,
            z.cuda(),
            mu.cuda(),
            lv.cuda(),
            DiagGrads {
                dz: grads.dz.map(GradOut::cuda),
                dmu: grads.dmu.map(GradOut::cuda),
                dlogvar: grads.dlogvar.map(GradOut::cuda),
            },
        ),
    }
}

/// out[r] = log N(z[r]; 0, I).
pub fn std_normal_logdensity<T: Real>(cols: usize, z: &Buffer<T>, out: &mut Buffer<T>) {
    assert_eq!(z.len(), out.len() * cols, "std_normal_logdensity: shape");
    match out {
        Buffer::Host(o) => cpu::std_normal_logdensity(cols, z.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::std_normal_logdensity(cols, z.cuda(), o),
    }
}

/// dz (=|+=) −g[r]·z[r].
pub fn std_normal_logdensity_backward<T: Real>(cols: usize, g: &Buffer<T>, z: &Buffer<T>, dz: GradOut<Buffer<T>>) {
    assert_eq!(z.len(), g.len() * cols, "std_normal_logdensity_backward: shape");
    assert_eq!(dz.buf.len(), z.len(), "std_normal_logdensity_backward: output shape");
    match &*dz.buf {
        Buffer::Host(_) => cpu::std_normal_logdensity_backward(cols, g.host(), z.host(), dz.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::std_normal_logdensity_backward(cols, g.cuda(), z.cuda(), dz.cuda()),
    }
}

pub mod cpu {
    use super::{DiagGrads, LN_2PI, clamp_logvar, logvar_in_range};
    use crate::buffer::GradOut;
    use crate::par::{for_elems, for_row_chunks, for_row_chunks_weighted, rows_per_task};
    use crate::real::Real;
    use rayon::prelude::*;

    pub fn diag_logdensity<T: Real>(cols: usize, z: &[T], mu: &[T], lv: &[T], out: &mut [T]) {
        let (pz, pm, pl) = (z.len() / cols, mu.len() / cols, lv.len() / cols);
        let half = T::c(0.5);
        let ln2pi = T::c(LN_2PI);
        for_elems(out, cols, |r0, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = r0 + i;
                let zr = &z[(r % pz) * cols..(r % pz + 1) * cols];
                let mr = &mu[(r % pm) * cols..(r % pm + 1) * cols];
                let lr = &lv[(r % pl) * cols..(r % pl + 1) * cols];
                let s = crate::fastmath::lane_sum3(zr, mr, lr, |z, m, l| {
                    let l = clamp_logvar(l);
                    let d = z - m;
                    ln2pi + l + d * d * (-l).vexp()
                });
                *o = -half * s;
            }
        });
    }

    /// Folds `contribution(r, c)` into `out` (P rows of `cols`) over the rows r ≡ j (mod P).
    pub(crate) fn fold_into<T: Real>(
        rows: usize,
        cols: usize,
        out: GradOut<[T]>,
        contribution: impl Fn(usize, usize) -> T + Sync,
    ) {
        let p = out.buf.len() / cols;
        let acc = out.accumulate;
        for_row_chunks_weighted(out.buf, cols, cols * (rows / p.max(1)).max(1), |j0, chunk| {
            for (i, o) in chunk.chunks_exact_mut(cols).enumerate() {
                let j = j0 + i;
                for (c, o) in o.iter_mut().enumerate() {
                    let mut s = if acc { *o } else { T::zero() };
                    for r in (j..rows).step_by(p) {
                        s = s + contribution(r, c);
                    }
                    *o = s;
                }
            }
        });
    }

    pub fn diag_logdensity_backward<T: Real>(cols: usize, g: &[T], z: &[T], mu: &[T], lv: &[T], grads: DiagGrads<[T]>) {
        let rows = g.len();
        // Gradients with one row per input row are written in one fused pass (one exp per
        // element for all three); those of a broadcast argument sum over the rows sharing it.
        let split = |o| split_full(o, rows * cols);
        let DiagGrads { dz, dmu, dlogvar } = grads;
        let ((dz_rows, dz_fold), (dmu_rows, dmu_fold), (dlv_rows, dlv_fold)) = (split(dz), split(dmu), split(dlogvar));
        per_row_gradients(cols, g, z, mu, lv, [dz_rows, dmu_rows, dlv_rows]);

        let (pz, pm, pl) = (z.len() / cols, mu.len() / cols, lv.len() / cols);
        // (z − μ)·e^{−λ} and (z − μ)²·e^{−λ} at (r, c).
        let terms = |r: usize, c: usize| {
            let d = z[(r % pz) * cols + c] - mu[(r % pm) * cols + c];
            let l = lv[(r % pl) * cols + c];
            let iv = (-clamp_logvar(l)).vexp();
            (d * iv, d * d * iv, logvar_in_range(l))
        };
        if let Some(dz) = dz_fold {
            fold_into(rows, cols, dz, |r, c| -g[r] * terms(r, c).0);
        }
        if let Some(dmu) = dmu_fold {
            fold_into(rows, cols, dmu, |r, c| g[r] * terms(r, c).0);
        }
        if let Some(dlv) = dlv_fold {
            let half = T::c(0.5);
            fold_into(rows, cols, dlv, |r, c| {
                let (_, q, inside) = terms(r, c);
                if inside { -half * g[r] * (T::one() - q) } else { T::zero() }
            });
        }
    }

    /// A gradient output sorted as (written per row, folded over broadcast rows).
    type GradPair<'a, T> = (Option<GradOut<'a, [T]>>, Option<GradOut<'a, [T]>>);

    /// (o, None) if `o` has `len` elements, else (None, o).
    fn split_full<T>(o: Option<GradOut<'_, [T]>>, len: usize) -> GradPair<'_, T> {
        match o {
            Some(o) if o.buf.len() == len => (Some(o), None),
            o => (None, o),
        }
    }

    /// The gradients wrt z, μ and log σ² (those given, each `rows × cols`) in one pass over the
    /// rows: dz = −g·a, dμ = g·a, dλ = −½·g·(1 − (z − μ)·a) inside the clamp, a = (z − μ)·e^{−λ}.
    fn per_row_gradients<T: Real>(
        cols: usize,
        g: &[T],
        z: &[T],
        mu: &[T],
        lv: &[T],
        outs: [Option<GradOut<'_, [T]>>; 3],
    ) {
        if outs.iter().all(Option::is_none) {
            return;
        }
        let rows = g.len();
        let (pz, pm, pl) = (z.len() / cols, mu.len() / cols, lv.len() / cols);
        let accumulate = outs.each_ref().map(|o| o.as_ref().is_some_and(|o| o.accumulate));
        // One task per chunk of rows, holding its part of every output.
        let per = rows_per_task(rows, 3 * cols);
        let mut tasks: Vec<(usize, [Option<&mut [T]>; 3])> =
            (0..rows.div_ceil(per)).map(|i| (i * per, [None, None, None])).collect();
        for (k, o) in outs.into_iter().enumerate() {
            if let Some(o) = o {
                for (task, chunk) in tasks.iter_mut().zip(o.buf.chunks_mut(per * cols)) {
                    task.1[k] = Some(chunk);
                }
            }
        }
        let store = |out: &mut Option<&mut [T]>, i: usize, acc: bool, v: T| {
            if let Some(o) = out {
                o[i] = if acc { o[i] + v } else { v };
            }
        };
        let half = T::c(0.5);
        let run = |(r0, mut outs): (usize, [Option<&mut [T]>; 3])| {
            for r in r0..(r0 + per).min(rows) {
                let zr = &z[(r % pz) * cols..(r % pz + 1) * cols];
                let mr = &mu[(r % pm) * cols..(r % pm + 1) * cols];
                let lr = &lv[(r % pl) * cols..(r % pl + 1) * cols];
                let gr = g[r];
                let base = (r - r0) * cols;
                for c in 0..cols {
                    let d = zr[c] - mr[c];
                    let a = d * (-clamp_logvar(lr[c])).vexp();
                    store(&mut outs[0], base + c, accumulate[0], -gr * a);
                    store(&mut outs[1], base + c, accumulate[1], gr * a);
                    let dl = if logvar_in_range(lr[c]) { -half * gr * (T::one() - d * a) } else { T::zero() };
                    store(&mut outs[2], base + c, accumulate[2], dl);
                }
            }
        };
        // Like the helpers of `par`: a single task runs inline on the calling thread.
        if tasks.len() == 1 {
            tasks.into_iter().for_each(run);
        } else {
            tasks.into_par_iter().for_each(run);
        }
    }

    pub fn std_normal_logdensity<T: Real>(cols: usize, z: &[T], out: &mut [T]) {
        let ln2pi = T::c(LN_2PI);
        let half = T::c(0.5);
        for_elems(out, cols, |r0, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = r0 + i;
                let zr = &z[r * cols..(r + 1) * cols];
                *o = -half * crate::fastmath::lane_sum3(zr, zr, zr, |v, _, _| ln2pi + v * v);
            }
        });
    }

    pub fn std_normal_logdensity_backward<T: Real>(cols: usize, g: &[T], z: &[T], dz: GradOut<[T]>) {
        let acc = dz.accumulate;
        for_row_chunks(dz.buf, cols, |row0, chunk| {
            for (i, d) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                for (d, &v) in d.iter_mut().zip(&z[r * cols..(r + 1) * cols]) {
                    let v = -g[r] * v;
                    *d = if acc { *d + v } else { v };
                }
            }
        });
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::DiagGrads;
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, grid_1d, kname, launch, warp_per_row};
    use crate::real::Real;

    fn periods<T: Real>(cols: usize, bufs: [&CudaBuffer<T>; 3]) -> [u32; 3] {
        bufs.map(|b| dim(b.len() / cols))
    }

    pub fn diag_logdensity<T: Real>(
        cols: usize,
        z: &CudaBuffer<T>,
        mu: &CudaBuffer<T>,
        lv: &CudaBuffer<T>,
        out: &mut CudaBuffer<T>,
    ) {
        let dev = z.device().clone();
        let (rows, c) = (dim(out.len()), dim(cols));
        let [pz, pm, pl] = periods(cols, [z, mu, lv]);
        launch!(
            dev,
            kname::<T>("diag_logdensity"),
            warp_per_row(rows),
            &z.slice,
            &mu.slice,
            &lv.slice,
            &mut out.slice,
            &rows,
            &c,
            &pz,
            &pm,
            &pl
        );
    }

    pub fn diag_logdensity_backward<T: Real>(
        cols: usize,
        g: &CudaBuffer<T>,
        z: &CudaBuffer<T>,
        mu: &CudaBuffer<T>,
        lv: &CudaBuffer<T>,
        grads: DiagGrads<CudaBuffer<T>>,
    ) {
        let dev = z.device().clone();
        let (rows, c) = (dim(g.len()), dim(cols));
        let [pz, pm, pl] = periods(cols, [z, mu, lv]);
        for (which, out) in [(0i32, grads.dz), (1, grads.dmu), (2, grads.dlogvar)] {
            let Some(out) = out else { continue };
            let (pout, acc) = (dim(out.buf.len() / cols), out.accumulate as i32);
            launch!(
                dev,
                kname::<T>("diag_grad"),
                grid_1d(out.buf.len() as u64),
                &g.slice,
                &z.slice,
                &mu.slice,
                &lv.slice,
                &mut out.buf.slice,
                &rows,
                &c,
                &pz,
                &pm,
                &pl,
                &pout,
                &which,
                &acc
            );
        }
    }

    pub fn std_normal_logdensity<T: Real>(cols: usize, z: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let dev = z.device().clone();
        let (rows, c) = (dim(out.len()), dim(cols));
        launch!(dev, kname::<T>("std_normal"), warp_per_row(rows), &z.slice, &mut out.slice, &rows, &c);
    }

    pub fn std_normal_logdensity_backward<T: Real>(
        cols: usize,
        g: &CudaBuffer<T>,
        z: &CudaBuffer<T>,
        dz: GradOut<CudaBuffer<T>>,
    ) {
        let dev = z.device().clone();
        let (rows, c, acc) = (dim(g.len()), dim(cols), dz.accumulate as i32);
        launch!(
            dev,
            kname::<T>("std_normal_backward"),
            grid_1d(z.len() as u64),
            &g.slice,
            &z.slice,
            &mut dz.buf.slice,
            &rows,
            &c,
            &acc
        );
    }
}
