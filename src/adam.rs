//! The Adam update (Kingma & Ba), in place, with bias correction:
//!   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  p ← p − lr·m̂/(√v̂ + ε),
//!   m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), t = 1, 2, … the step number,
//! with g scaled by `grad_scale` (global-norm clipping; exactly 1 when off), then clamped to
//! ±`clip` (element-wise clipping; +∞ when off, which leaves every finite g as it is). Beside it, the pass
//! that decides whether a step may happen at all: Σ g² over every gradient (global norm, and
//! non-finite iff some element is NaN or ±∞).

use crate::bf16::Bf16Buf;
use crate::buffer::Buffer;
use crate::real::Real;

/// Hyper-parameters of one Adam step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 1-based step number, for bias correction.
    pub t: u64,
    /// Factor applied to every gradient element (clipping); 1 leaves the update unchanged.
    pub grad_scale: f64,
    /// Bound on every scaled gradient element, g ← clamp(g, −clip, clip); +∞ leaves it unchanged.
    pub clip: f64,
}

impl AdamStep {
    /// The learning rate with both bias corrections folded in, and ε scaled to match:
    /// p −= lr_t·m/(√v + ε_t) with lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε_t = ε·√(1−β₂ᵗ).
    pub fn corrected(&self) -> (f64, f64) {
        let t = self.t.max(1) as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = (1.0 - self.beta2.powi(t)).sqrt();
        (self.lr * c2 / c1, self.eps * c2)
    }
}

pub fn step<T: Real>(h: AdamStep, param: &mut Buffer<T>, grad: &Buffer<T>, m: &mut Buffer<T>, v: &mut Buffer<T>) {
    step_bf16(h, param, grad, m, v, None)
}

/// As [`step`], also writing the updated parameter rounded to bf16 into `p_bf16` in the same pass
/// (CPU, f32 only): the copy the next step's bf16 matrix products read.
pub fn step_bf16<T: Real>(
    h: AdamStep,
    param: &mut Buffer<T>,
    grad: &Buffer<T>,
    m: &mut Buffer<T>,
    v: &mut Buffer<T>,
    p_bf16: Option<&mut Bf16Buf>,
) {
    let p_bf16 = p_bf16.map(|h| &mut h[..]);
    let n = param.len();
    assert!(grad.len() == n && m.len() == n && v.len() == n, "adam: length mismatch");
    assert!(p_bf16.as_ref().is_none_or(|h| h.len() == n && T::NAME == "f32"), "adam: bf16 copy of {n} {}", T::NAME);
    match param {
        Buffer::Host(p) => cpu::step(h, p, grad.host(), m.host_mut(), v.host_mut(), p_bf16),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(p) => {
            assert!(p_bf16.is_none(), "adam: bf16 copies are CPU-only");
            cuda::step(h, p, grad.cuda(), m.cuda_mut(), v.cuda_mut())
        }
    }
}

/// Σ x² over every buffer (all on one device), accumulated in f64 in an order fixed by the sizes
/// alone (not the thread count), so a run's clipping is reproducible. Non-finite iff some
/// element is NaN or ±∞ (squares of finite f32 or f64 gradients of sane size cannot overflow f64).
pub fn sum_squares<T: Real>(bufs: &[&Buffer<T>]) -> f64 {
    match bufs.first() {
        None => 0.0,
        Some(Buffer::Host(_)) => bufs.iter().map(|b| cpu::sum_squares(b.host())).sum(),
        #[cfg(feature = "cuda")]
        Some(Buffer::Cuda(_)) => cuda::sum_squares(&bufs.iter().map(|b| b.cuda()).collect::<Vec<_>>()),
    }
}

pub mod cpu {
    use rayon::prelude::*;

    use super::AdamStep;
    use crate::par::for_elems;
    use crate::real::Real;
    use crate::wide::widened;

    /// Elements per parallel task of `sum_squares` (fixed, so the summation order is too).
    const SUM_CHUNK: usize = 1 << 15;

    widened! {
        /// Σ x² of one chunk in f64, in eight interleaved partial sums (a fixed order).
        pub(super) fn chunk_sum_squares<T: Real>(c: &[T]) -> f64 => chunk_sum_squares_body
    }

    #[inline(always)]
    pub(super) fn chunk_sum_squares_body<T: Real>(c: &[T]) -> f64 {
        let mut acc = [0.0f64; 8];
        let mut it = c.chunks_exact(8);
        for l in &mut it {
            for (a, v) in acc.iter_mut().zip(l) {
                let v = v.as_f64();
                *a += v * v;
            }
        }
        let tail: f64 = it.remainder().iter().map(|v| v.as_f64() * v.as_f64()).sum();
        acc.iter().sum::<f64>() + tail
    }

    pub fn sum_squares<T: Real>(x: &[T]) -> f64 {
        let chunk = chunk_sum_squares::<T>;
        if x.len() <= SUM_CHUNK {
            return chunk(x);
        }
        let parts: Vec<f64> = x.par_chunks(SUM_CHUNK).map(chunk).collect();
        parts.iter().sum()
    }

    pub fn step<T: Real>(h: AdamStep, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], p16: Option<&mut [u16]>) {
        let (lr_t, eps_t) = h.corrected();
        let (b1, b2) = (T::c(h.beta1), T::c(h.beta2));
        let scale = T::c(h.grad_scale);
        let clip = T::c(h.clip);
        let (lr_t, eps_t) = (T::c(lr_t), T::c(eps_t));
        let mp = crate::broadcast::cpu::SendPtr(m.as_mut_ptr());
        let vp = crate::broadcast::cpu::SendPtr(v.as_mut_ptr());
        let hp = p16.map(|h| crate::broadcast::cpu::SendPtr(h.as_mut_ptr()));
        let k = Coeffs { b1, b2, scale, clip, lr_t, eps_t };
        for_elems(p, 4, |start, ps| {
            // SAFETY: m and v have p's length; chunks of p map to disjoint ranges of them.
            let (ms, vs) = unsafe {
                (
                    std::slice::from_raw_parts_mut(mp.get().add(start), ps.len()),
                    std::slice::from_raw_parts_mut(vp.get().add(start), ps.len()),
                )
            };
            let gs = &g[start..start + ps.len()];
            // SAFETY: the bf16 copy has p's length (checked by the caller); this chunk's range
            // is written by this task alone. T is f32 (checked by the caller).
            let mut hs = hp.as_ref().map(|hp| unsafe { std::slice::from_raw_parts_mut(hp.get().add(start), ps.len()) });
            // Blocks small enough that the updated weights are still in L1 when rounded.
            for (i, ((pb, gb), (mb, vb))) in ps
                .chunks_mut(BLOCK)
                .zip(gs.chunks(BLOCK))
                .zip(ms.chunks_mut(BLOCK).zip(vs.chunks_mut(BLOCK)))
                .enumerate()
            {
                update(&k, pb, gb, mb, vb);
                if let Some(hs) = hs.as_deref_mut() {
                    let at = i * BLOCK;
                    crate::bf16::convert_serial(bytemuck::cast_slice(pb), &mut hs[at..at + pb.len()]);
                }
            }
        });
    }

    /// Elements updated (and rounded) at a time.
    const BLOCK: usize = 2048;

    /// The step's constants.
    pub(super) struct Coeffs<T> {
        pub(super) b1: T,
        pub(super) b2: T,
        pub(super) scale: T,
        pub(super) clip: T,
        pub(super) lr_t: T,
        pub(super) eps_t: T,
    }

    widened! {
        /// One block of the update (compiled twice, crate::wide).
        pub(super) fn update<T: Real>(k: &Coeffs<T>, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) => update_body
    }

    #[inline(always)]
    pub(super) fn update_body<T: Real>(k: &Coeffs<T>, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) {
        let Coeffs { b1, b2, scale, clip, lr_t, eps_t } = *k;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
            let g = g * scale;
            // Comparisons, not min/max: with clip = +∞ every finite g passes bit for bit.
            let g = if g > clip {
                clip
            } else if g < -clip {
                -clip
            } else {
                g
            };
            *m = b1 * *m + (T::one() - b1) * g;
            *v = b2 * *v + (T::one() - b2) * g * g;
            *p = *p - lr_t * *m / (v.sqrt() + eps_t);
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::AdamStep;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{grid_1d, kname, launch};
    use crate::real::Real;

    pub fn step<T: Real>(
        h: AdamStep,
        p: &mut CudaBuffer<T>,
        g: &CudaBuffer<T>,
        m: &mut CudaBuffer<T>,
        v: &mut CudaBuffer<T>,
    ) {
        let dev = g.device().clone();
        let (lr_t, eps_t) = h.corrected();
        let (n, b1, b2, lr_t, eps_t) = (p.len() as u64, T::c(h.beta1), T::c(h.beta2), T::c(lr_t), T::c(eps_t));
        let scale = T::c(h.grad_scale);
        let clip = T::c(h.clip);
        launch!(
            dev,
            kname::<T>("adam"),
            grid_1d(n),
            &mut p.slice,
            &g.slice,
            &mut m.slice,
            &mut v.slice,
            &n,
            &b1,
            &b2,
            &lr_t,
            &eps_t,
            &scale,
            &clip
        );
    }

    /// One kernel per buffer writes its blocks' partial sums side by side in one scratch buffer;
    /// a single download and an in-order sum on the host finish it (deterministic, no atomics).
    pub fn sum_squares<T: Real>(bufs: &[&CudaBuffer<T>]) -> f64 {
        let dev = bufs[0].device().clone();
        let blocks: Vec<u64> = bufs.iter().map(|b| grid_1d(b.len() as u64).grid_dim.0 as u64).collect();
        let mut partials = dev.scratch_f64(blocks.iter().sum::<u64>() as usize);
        let mut offset = 0u64;
        for (b, nb) in bufs.iter().zip(&blocks) {
            let n = b.len() as u64;
            launch!(dev, kname::<T>("sum_squares"), grid_1d(n), &b.slice, &n, &mut partials.slice, &offset);
            offset += nb;
        }
        partials.download().iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::cpu::{Coeffs, chunk_sum_squares, chunk_sum_squares_body, update, update_body};

    /// The AVX2 twins of the update and of Σg² (where this CPU has AVX2) give the baseline's bits.
    #[test]
    fn wide_loops_match_the_baseline_bit_for_bit() {
        let mut rng = crate::rng::HostRng::new(5, 0);
        let mut v = |s: f64, off: f64| -> Vec<f32> { (0..1001).map(|_| ((rng.next_f64() - off) * s) as f32).collect() };
        let (p, g, m, sq) = (v(2.0, 0.5), v(1e-2, 0.5), v(1e-2, 0.5), v(1e-4, 0.0));
        let k = Coeffs { b1: 0.9f32, b2: 0.999, scale: 0.5, clip: 3e-3, lr_t: 1e-3, eps_t: 1e-8 };
        let (mut pa, mut ma, mut va) = (p.clone(), m.clone(), sq.clone());
        let (mut pb, mut mb, mut vb) = (p, m, sq);
        update(&k, &mut pa, &g, &mut ma, &mut va);
        update_body(&k, &mut pb, &g, &mut mb, &mut vb);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!((bits(&pa), bits(&ma), bits(&va)), (bits(&pb), bits(&mb), bits(&vb)));
        assert_eq!(chunk_sum_squares(&g).to_bits(), chunk_sum_squares_body(&g).to_bits(), "sum of squares");
    }
}
