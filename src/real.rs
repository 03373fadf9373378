//! The element types every kernel is written for: `f32` (training, the GPU) and `f64` (gradient
//! checks, where f32 rounding would drown the finite differences).

use std::fmt::{Debug, Display};
use std::iter::Sum;

use num_traits::Float;

use crate::buffer::HostPool;

/// A floating-point element type the kernels support.
pub trait Real: Float + Sum + Default + Debug + Display + Send + Sync + bytemuck::Pod + 'static + CudaElement {
    /// "f32" or "f64": the suffix of this type's CUDA kernel instantiations and its dtype name.
    const NAME: &'static str;

    fn from_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;

    /// Shorthand for a constant.
    #[inline(always)]
    fn c(v: f64) -> Self {
        Self::from_f64(v)
    }

    /// The process-wide pool of host buffers of this type.
    fn host_pool() -> &'static HostPool<Self>;
}

#[cfg(feature = "cuda")]
pub trait CudaElement: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Unpin {}
#[cfg(feature = "cuda")]
impl<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Unpin> CudaElement for T {}

/// Without the `cuda` feature there is nothing extra to ask of an element type.
#[cfg(not(feature = "cuda"))]
pub trait CudaElement {}
#[cfg(not(feature = "cuda"))]
impl<T> CudaElement for T {}

static POOL_F32: HostPool<f32> = HostPool::new();
static POOL_F64: HostPool<f64> = HostPool::new();

impl Real for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn host_pool() -> &'static HostPool<Self> {
        &POOL_F32
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
    fn host_pool() -> &'static HostPool<Self> {
        &POOL_F64
    }
}
