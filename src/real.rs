//! The element types every kernel is written for: `f32` (training, the GPU) and `f64` (gradient
//! checks, where f32 rounding would drown the finite differences).

use std::fmt::{Debug, Display};
use std::iter::Sum;

use num_traits::Float;

use crate::host_pool::HostPool;

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

    /// e^x in a form loops can vectorise (f32: `fastmath`, within 2 ulp; f64: std).
    fn vexp(self) -> Self;

    /// ln(1 + x) for x ≥ 0, likewise.
    fn vln_1p(self) -> Self;
}

/// What the CUDA backend needs of an element type: device representation, and its cuBLAS
/// product (sgemm for f32, dgemm for f64).
#[cfg(feature = "cuda")]
pub trait CudaElement: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Unpin + Sized {
    fn cublas_gemm(
        blas: &cudarc::cublas::CudaBlas,
        cfg: cudarc::cublas::GemmConfig<Self>,
        a: &cudarc::driver::CudaSlice<Self>,
        b: &cudarc::driver::CudaSlice<Self>,
        c: &mut cudarc::driver::CudaSlice<Self>,
    ) -> Result<(), cudarc::cublas::result::CublasError>;
}

#[cfg(feature = "cuda")]
macro_rules! cuda_element {
    ($t:ty) => {
        impl CudaElement for $t {
            fn cublas_gemm(
                blas: &cudarc::cublas::CudaBlas,
                cfg: cudarc::cublas::GemmConfig<Self>,
                a: &cudarc::driver::CudaSlice<Self>,
                b: &cudarc::driver::CudaSlice<Self>,
                c: &mut cudarc::driver::CudaSlice<Self>,
            ) -> Result<(), cudarc::cublas::result::CublasError> {
                use cudarc::cublas::Gemm;
                // SAFETY: the caller sized the buffers for this configuration.
                unsafe { blas.gemm(cfg, a, b, c) }
            }
        }
    };
}
#[cfg(feature = "cuda")]
cuda_element!(f32);
#[cfg(feature = "cuda")]
cuda_element!(f64);

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
    #[inline(always)]
    fn vexp(self) -> Self {
        crate::fastmath::exp_f32(self)
    }
    #[inline(always)]
    fn vln_1p(self) -> Self {
        crate::fastmath::ln_1p_f32(self)
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
    #[inline(always)]
    fn vexp(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn vln_1p(self) -> Self {
        self.ln_1p()
    }
}
