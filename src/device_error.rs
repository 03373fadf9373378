//! Why a device could not be opened (its own file: the CUDA backend reports it without importing
//! the `Device` that holds the backend).

use std::fmt;

/// Why a device could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is neither `cpu` nor `cuda[:N]`.
    Unknown(String),
    /// `cuda` was asked for but this binary was built without the `cuda` feature.
    CudaNotCompiled,
    /// The CUDA driver library (libcuda) or cuBLAS could not be loaded.
    NoDriver(String),
    /// The driver loaded but reported no usable GPU, or initialisation failed.
    Cuda(String),
    /// A setting the device does not have.
    Unsupported(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Unknown(s) => {
                write!(f, "unknown device '{s}': expected 'cpu' or 'cuda' (or 'cuda:N')")
            }
            DeviceError::CudaNotCompiled => write!(
                f,
                "this cagem binary was built without CUDA support; rebuild with \
                 `cargo build --release --features cuda` (needs nvcc, see scripts/install-nvcc.sh)"
            ),
            DeviceError::NoDriver(s) => write!(f, "no CUDA driver available: {s}"),
            DeviceError::Cuda(s) => write!(f, "CUDA initialisation failed: {s}"),
            DeviceError::Unsupported(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for DeviceError {}
