//! The CUDA backend: a device (context, one stream, the embedded PTX kernels, cuBLAS), buffers
//! on it, and launch helpers. Each op module's `mod cuda` holds the launchers of its kernels
//! (`kernels/*.cu`), beside the CPU reference they are tested against.

pub mod blas;
mod buffer;
mod device;
pub(crate) mod error;
pub(crate) mod launch;

pub use buffer::{CudaBuffer, CudaIndices};
pub use device::CudaDevice;
pub use error::{PTX_ARCH, check_capability};

pub mod ptx;
