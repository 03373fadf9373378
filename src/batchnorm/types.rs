//! The arguments every batch-norm entry point shares, in their own file so that the dispatcher
//! (mod.rs), the CPU reference and the CUDA launchers all import them without importing each other.

use crate::bf16::Bf16Buf;
use crate::buffer::{Buffer, GradOut};
use crate::real::Real;

/// The per-column affine part and options shared by all batch-norm kernels.
pub struct BnAffine<'a, B: ?Sized> {
    pub gamma: &'a B,
    pub beta: &'a B,
    pub eps: f64,
    pub relu: bool,
}

/// Running averages updated in place by the training-mode forward pass.
pub struct RunningStats<'a, B: ?Sized> {
    pub mean: &'a mut B,
    pub var: &'a mut B,
    pub momentum: f64,
}

/// The statistics a backward pass normalises with: the batch's (`rstd` = 1/√(σ²+ε)) or the
/// running ones (`var` = σ², ε added inside).
pub enum BnStats<'a, B: ?Sized> {
    Batch { mean: &'a B, rstd: &'a B },
    Running { mean: &'a B, var: &'a B },
}

/// The gradients a batch-norm backward pass may write (None: not needed).
pub struct BnGrads<'a, B: ?Sized> {
    pub dx: Option<GradOut<'a, B>>,
    pub dgamma: Option<GradOut<'a, B>>,
    pub dbeta: Option<GradOut<'a, B>>,
}

/// Where a forward pass writes y: f32 only; f32 and its bf16 rounding in the same pass (CPU, for
/// the bf16 matrix product that reads it next); or only the bf16 rounding (CPU, f32 only: for an
/// output that only bf16 matrix products read, its f32 copy would be memory traffic nobody uses).
pub enum BnOutput<'a, T: Real> {
    F32(&'a mut Buffer<T>),
    WithBf16(&'a mut Buffer<T>, &'a mut Bf16Buf),
    Bf16Only(&'a mut Bf16Buf),
}
