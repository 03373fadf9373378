//! The Adam update (Kingma & Ba), in place, with bias correction:
//!   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  p ← p − lr·m̂/(√v̂ + ε),
//!   m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), t = 1, 2, … the step number.

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
    p_bf16: Option<&mut [u16]>,
) {
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

pub mod cpu {
    use super::AdamStep;
    use crate::par::for_elems;
    use crate::real::Real;

    pub fn step<T: Real>(h: AdamStep, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], p16: Option<&mut [u16]>) {
        let (lr_t, eps_t) = h.corrected();
        let (b1, b2) = (T::c(h.beta1), T::c(h.beta2));
        let (lr_t, eps_t) = (T::c(lr_t), T::c(eps_t));
        let mp = crate::broadcast::cpu::SendPtr(m.as_mut_ptr());
        let vp = crate::broadcast::cpu::SendPtr(v.as_mut_ptr());
        let hp = p16.map(|h| crate::broadcast::cpu::SendPtr(h.as_mut_ptr()));
        for_elems(p, 4, |start, ps| {
            // SAFETY: m and v have p's length; chunks of p map to disjoint ranges of them.
            let (ms, vs) = unsafe {
                (
                    std::slice::from_raw_parts_mut(mp.get().add(start), ps.len()),
                    std::slice::from_raw_parts_mut(vp.get().add(start), ps.len()),
                )
            };
            let gs = &g[start..start + ps.len()];
            for (((p, &g), m), v) in ps.iter_mut().zip(gs).zip(ms).zip(vs) {
                *m = b1 * *m + (T::one() - b1) * g;
                *v = b2 * *v + (T::one() - b2) * g * g;
                *p = *p - lr_t * *m / (v.sqrt() + eps_t);
            }
            if let Some(hp) = &hp {
                // SAFETY: the bf16 copy has p's length (checked by the caller); this chunk's range
                // is written by this task alone. T is f32 (checked by the caller).
                let hs = unsafe { std::slice::from_raw_parts_mut(hp.get().add(start), ps.len()) };
                crate::bf16::convert_serial(bytemuck::cast_slice(ps), hs);
            }
        });
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
            &eps_t
        );
    }
}
