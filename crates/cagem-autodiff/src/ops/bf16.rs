//! The f32 ↔ bf16 glue of bf16 matrix products: which graphs use them, and rounding a tensor.

use std::any::TypeId;

use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::{Buffer, Real};

/// bf16 products apply to f32 values only (f64 graphs are the gradient checks' reference).
pub(crate) fn is_f32<T: Real>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// The host f32 values of `b` (T is f32: the caller checked [`is_f32`]).
pub(crate) fn as_f32<T: Real>(b: &Buffer<T>) -> &[f32] {
    assert!(is_f32::<T>(), "bf16 products of {} values", T::NAME);
    bytemuck::cast_slice(b.host())
}

pub(crate) fn as_f32_mut<T: Real>(b: &mut Buffer<T>) -> &mut [f32] {
    assert!(is_f32::<T>(), "bf16 products of {} values", T::NAME);
    bytemuck::cast_slice_mut(b.host_mut())
}

/// `b` rounded to bf16 (to nearest even).
pub(crate) fn round<T: Real>(b: &Buffer<T>) -> Bf16Buf {
    Bf16Buf::from_f32(as_f32(b))
}
