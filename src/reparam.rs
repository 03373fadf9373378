//! Gaussian reparameterisation with in-kernel noise: z = μ + exp(λ/2)·ε, ε ~ N(0, I) drawn from
//! the Philox stream (element r·cols + c uses draw r·cols + c, see `rng`).
//! Backward: dμ = g, dλ = ½·g·(z − μ)  (= ½·g·σ·ε, so ε is never stored).
//! μ and λ may have fewer rows than z (a divisor; row r reads row r mod P): one q(z1|x) per
//! test image serves all of its importance samples. λ is clamped as in `gaussian`.

use crate::buffer::{Buffer, GradOut};
use crate::real::Real;
use crate::rng::RngStream;

pub fn forward<T: Real>(cols: usize, mu: &Buffer<T>, lv: &Buffer<T>, stream: RngStream, z: &mut Buffer<T>) {
    assert!(cols > 0 && z.len().is_multiple_of(cols), "reparameterize: output is not whole rows of {cols}");
    let rows = z.len() / cols;
    crate::check_broadcast(rows, cols, mu.len(), "mu");
    crate::check_broadcast(rows, cols, lv.len(), "logvar");
    match z {
        Buffer::Host(z) => cpu::forward(cols, mu.host(), lv.host(), stream, z),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(z) => cuda::forward(cols, mu.cuda(), lv.cuda(), stream, z),
    }
}

pub fn backward<T: Real>(
    cols: usize,
    g: &Buffer<T>,
    z: &Buffer<T>,
    mu: &Buffer<T>,
    lv: &Buffer<T>,
    dmu: Option<GradOut<Buffer<T>>>,
    dlv: Option<GradOut<Buffer<T>>>,
) {
    assert_eq!(g.len(), z.len(), "reparam backward: shape");
    assert!(cols > 0 && z.len().is_multiple_of(cols), "reparam backward: not whole rows of {cols}");
    let rows = z.len() / cols;
    crate::check_broadcast(rows, cols, mu.len(), "mu");
    crate::check_broadcast(rows, cols, lv.len(), "logvar");
    if let Some(d) = &dmu {
        assert_eq!(d.buf.len(), mu.len(), "reparam backward: dmu length");
    }
    if let Some(d) = &dlv {
        assert_eq!(d.buf.len(), lv.len(), "reparam backward: dlogvar length");
    }
    match g {
        Buffer::Host(g) => {
            cpu::backward(cols, g, z.host(), mu.host(), lv.host(), dmu.map(GradOut::host), dlv.map(GradOut::host))
        }
        #[cfg(feature = "cuda")]
        Buffer::Cuda(g) => {
            cuda::backward(cols, g, z.cuda(), mu.cuda(), lv.cuda(), dmu.map(GradOut::cuda), dlv.map(GradOut::cuda))
        }
    }
}

pub mod cpu {
    use crate::buffer::GradOut;
    use crate::gaussian::cpu::fold_into as fold_rows_into;
    use crate::gaussian::{clamp_logvar, logvar_in_range};
    use crate::par::for_row_chunks;
    use crate::real::Real;
    use crate::rng::{RngStream, for_each_draw, normal4};

    pub fn forward<T: Real>(cols: usize, mu: &[T], lv: &[T], stream: RngStream, z: &mut [T]) {
        let (pm, pl) = (mu.len() / cols, lv.len() / cols);
        let half = T::c(0.5);
        for_row_chunks(z, cols, |row0, chunk| {
            // The noise first, then z row by row (no index arithmetic per element).
            let start = (row0 * cols) as u64;
            for_each_draw(stream, start, chunk.len(), normal4, |i, eps| chunk[i] = T::from_f64(eps));
            for (i, zr) in chunk.chunks_exact_mut(cols).enumerate() {
                let r = row0 + i;
                let (mr, lr) = (&mu[(r % pm) * cols..(r % pm + 1) * cols], &lv[(r % pl) * cols..(r % pl + 1) * cols]);
                for ((z, &m), &l) in zr.iter_mut().zip(mr).zip(lr) {
                    *z = m + (half * clamp_logvar(l)).vexp() * *z;
                }
            }
        });
    }

    pub fn backward<T: Real>(
        cols: usize,
        g: &[T],
        z: &[T],
        mu: &[T],
        lv: &[T],
        dmu: Option<GradOut<[T]>>,
        dlv: Option<GradOut<[T]>>,
    ) {
        let rows = g.len() / cols;
        let (pm, pl) = (mu.len() / cols, lv.len() / cols);
        if let Some(dmu) = dmu {
            fold_rows_into(rows, cols, dmu, |r, c| g[r * cols + c]);
        }
        if let Some(dlv) = dlv {
            let half = T::c(0.5);
            fold_rows_into(rows, cols, dlv, |r, c| {
                if logvar_in_range(lv[(r % pl) * cols + c]) {
                    half * g[r * cols + c] * (z[r * cols + c] - mu[(r % pm) * cols + c])
                } else {
                    T::zero()
                }
            });
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{dim, grid_1d, kname, launch};
    use crate::real::Real;
    use crate::rng::RngStream;

    pub fn forward<T: Real>(
        cols: usize,
        mu: &CudaBuffer<T>,
        lv: &CudaBuffer<T>,
        stream: RngStream,
        z: &mut CudaBuffer<T>,
    ) {
        let dev = mu.device().clone();
        let (rows, c, pm, pl) = (dim(z.len() / cols), dim(cols), dim(mu.len() / cols), dim(lv.len() / cols));
        let (seed, st) = (stream.seed, stream.stream);
        let blocks = (z.len() as u64).div_ceil(4);
        launch!(
            dev,
            kname::<T>("reparam_forward"),
            grid_1d(blocks),
            &mu.slice,
            &lv.slice,
            &mut z.slice,
            &rows,
            &c,
            &pm,
            &pl,
            &seed,
            &st
        );
    }

    pub fn backward<T: Real>(
        cols: usize,
        g: &CudaBuffer<T>,
        z: &CudaBuffer<T>,
        mu: &CudaBuffer<T>,
        lv: &CudaBuffer<T>,
        dmu: Option<GradOut<CudaBuffer<T>>>,
        dlv: Option<GradOut<CudaBuffer<T>>>,
    ) {
        let dev = z.device().clone();
        let (rows, c, pm, pl) = (dim(z.len() / cols), dim(cols), dim(mu.len() / cols), dim(lv.len() / cols));
        for (which, out) in [(0i32, dmu), (1, dlv)] {
            let Some(out) = out else { continue };
            let (pout, acc) = (dim(out.buf.len() / cols), out.accumulate as i32);
            launch!(
                dev,
                kname::<T>("reparam_grad"),
                grid_1d(out.buf.len() as u64),
                &g.slice,
                &z.slice,
                &mu.slice,
                &lv.slice,
                &mut out.buf.slice,
                &rows,
                &c,
                &pm,
                &pl,
                &pout,
                &which,
                &acc
            );
        }
    }
}
