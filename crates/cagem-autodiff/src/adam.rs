//! Adam over a parameter store, with per-parameter moment buffers on the parameters' device.

use cagem_kernels::Real;
use cagem_kernels::adam::{AdamStep, step_bf16, sum_squares};
use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::gemm::Precision;

use crate::graph::Gradients;
use crate::param::{ParamId, ParamStore};
use crate::tensor::Tensor;

/// Adam's state: the step count and first/second moments per parameter.
pub struct Adam<T: Real> {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far (skipped steps do not count).
    pub t: u64,
    /// Global gradient-norm clipping: gradients are scaled by min(1, c/‖g‖) (off: None).
    pub clip_norm: Option<f64>,
    /// Element-wise clipping after the norm's: every gradient element to ±V (off: None).
    pub clip_value: Option<f64>,
    moments: Vec<Option<(Tensor<T>, Tensor<T>)>>,
}

/// What one `Adam::step` did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// False when some gradient element was NaN or ±∞: then nothing was touched (parameters,
    /// moments, step count).
    pub applied: bool,
    /// The global L2 norm of the gradients before clipping (non-finite when skipped).
    pub grad_norm: f64,
}

impl<T: Real> Adam<T> {
    /// The usual defaults: β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new() -> Self {
        Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, clip_norm: None, clip_value: None, moments: Vec::new() }
    }

    /// One update of every parameter that has a gradient, with learning rate `lr`, if every
    /// gradient is finite (one f64 pass over them decides, and gives the norm for clipping).
    /// Under bf16 `precision` (f32 on the CPU only) each updated parameter is also written rounded
    /// to bf16, so that the next step's products need not round the weights in a pass of their own.
    pub fn step(
        &mut self,
        store: &mut ParamStore<T>,
        grads: &Gradients<T>,
        lr: f64,
        precision: Precision,
    ) -> StepOutcome {
        let bf16_weights = precision == Precision::Bf16;
        let mut updates: Vec<(ParamId, &Tensor<T>)> = grads.params().collect();
        updates.sort_by_key(|(id, _)| *id);
        let bufs: Vec<_> = updates.iter().map(|(_, g)| g.buf()).collect();
        let grad_norm = sum_squares(&bufs).sqrt();
        if !grad_norm.is_finite() {
            return StepOutcome { applied: false, grad_norm };
        }
        let grad_scale = match self.clip_norm {
            Some(c) if grad_norm > c => c / grad_norm,
            _ => 1.0,
        };
        self.t += 1;
        let h = AdamStep {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            t: self.t,
            grad_scale,
            clip: self.clip_value.unwrap_or(f64::INFINITY),
        };
        if self.moments.len() < store.len() {
            self.moments.resize_with(store.len(), || None);
        }
        for (id, g) in updates {
            let p = store.get_mut(id);
            assert_eq!(p.shape(), g.shape(), "adam: gradient shape of parameter {}", id.0);
            let (m, v) = self.moments[id.0].get_or_insert_with(|| {
                let d = p.device();
                (Tensor::zeros(&d, p.rows(), p.cols()), Tensor::zeros(&d, p.rows(), p.cols()))
            });
            let mut p16 = (bf16_weights && crate::ops::bf16::is_f32::<T>() && p.device().is_cpu())
                .then(|| Bf16Buf::uninit(p.len()));
            step_bf16(h, p.buf_mut(), g.buf(), m.buf_mut(), v.buf_mut(), p16.as_mut());
            if let Some(b) = p16 {
                p.set_bf16(b); // after the update: buf_mut() drops any older copy
            }
        }
        StepOutcome { applied: true, grad_norm }
    }

    /// The moment tensors of a parameter, if it has been updated (for checkpoints).
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor<T>, &Tensor<T>)> {
        self.moments.get(id.0).and_then(|m| m.as_ref()).map(|(a, b)| (a, b))
    }

    /// Restores a parameter's moments (from a checkpoint).
    pub fn set_moments(&mut self, id: ParamId, m: Tensor<T>, v: Tensor<T>) {
        if self.moments.len() <= id.0 {
            self.moments.resize_with(id.0 + 1, || None);
        }
        self.moments[id.0] = Some((m, v));
    }
}

impl<T: Real> Default for Adam<T> {
    fn default() -> Self {
        Self::new()
    }
}
