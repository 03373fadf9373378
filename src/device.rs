//! Where tensors live and kernels run: the CPU (rayon) or one CUDA GPU.

use std::fmt;
#[cfg(feature = "cuda")]
use std::sync::Arc;

pub use crate::device_error::DeviceError;

/// A compute device. Cloning is cheap (the CUDA variant is reference-counted).
#[derive(Clone)]
pub enum Device {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(Arc<crate::cuda::CudaDevice>),
}

impl Device {
    /// Opens a device by name: `cpu`, `cuda` (GPU 0) or `cuda:N`.
    pub fn open(name: &str) -> Result<Device, DeviceError> {
        let name = name.trim().to_ascii_lowercase();
        if name == "cpu" {
            return Ok(Device::Cpu);
        }
        let ordinal = if name == "cuda" || name == "gpu" {
            0
        } else if let Some(n) = name.strip_prefix("cuda:") {
            n.parse::<usize>().map_err(|_| DeviceError::Unknown(name.clone()))?
        } else {
            return Err(DeviceError::Unknown(name));
        };
        Self::open_cuda(ordinal)
    }

    #[cfg(feature = "cuda")]
    fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
        crate::cuda::CudaDevice::open(ordinal).map(Device::Cuda)
    }

    #[cfg(not(feature = "cuda"))]
    fn open_cuda(_ordinal: usize) -> Result<Device, DeviceError> {
        Err(DeviceError::CudaNotCompiled)
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// A short human-readable name ("cpu", "cuda:0 (NVIDIA H100 …)").
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.name(),
        }
    }

    /// The most device memory in use at once since the last reset, in bytes (None on the CPU).
    pub fn peak_memory(&self) -> Option<u64> {
        match self {
            Device::Cpu => None,
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => Some(d.peak_memory()),
        }
    }

    pub fn reset_peak_memory(&self) {
        match self {
            Device::Cpu => {}
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.reset_peak_memory(),
        }
    }

    /// Lets f32 matrix products use TF32 tensor cores (GPU only; ~1e-3 relative error).
    pub fn set_tf32(&self, on: bool) -> Result<(), DeviceError> {
        match self {
            Device::Cpu if on => Err(DeviceError::Unsupported(
                "--tf32 needs --device cuda (TF32 is a mode of the GPU's tensor cores)".into(),
            )),
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                d.set_tf32(on);
                Ok(())
            }
        }
    }

    /// Waits until all queued work on the device has finished (no-op on the CPU).
    pub fn synchronize(&self) {
        match self {
            Device::Cpu => {}
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.synchronize(),
        }
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            #[cfg(feature = "cuda")]
            (Device::Cuda(a), Device::Cuda(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "cuda")]
            _ => false,
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The convention of cagem's GPU tests: the GPU to test on, or None after printing why there is
/// none, so the test can return early (skip). With CAGEM_REQUIRE_GPU=1 (how the tests run on a
/// GPU machine) a missing GPU, or a build without the `cuda` feature, panics instead.
pub fn gpu_for_test(test: &str) -> Option<Device> {
    let required = std::env::var("CAGEM_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match Device::open("cuda") {
        Ok(d) => Some(d),
        Err(e) if required => panic!("{test}: CAGEM_REQUIRE_GPU=1 but no GPU is usable: {e}"),
        Err(e) => {
            eprintln!("skipping {test}: no GPU ({e})");
            None
        }
    }
}
