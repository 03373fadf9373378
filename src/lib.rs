//! # cagem-kernels
//!
//! The numerical kernels of cagem, one module per op family. Each module holds a plain CPU
//! reference (`cpu::…`, parallel with rayon) and, with the `cuda` feature, the launcher of its
//! hand-written CUDA twin (`kernels/*.cu`, compiled to PTX at build time). The top-level function
//! of each module dispatches on the device of its output buffer.
//!
//! Conventions: matrices are row-major and contiguous; per-row results are vectors; backward
//! kernels write through [`GradOut`], which either overwrites or accumulates, so gradient buffers
//! never need zero-filling first.

pub mod adam;
pub mod batchnorm;
pub mod bernoulli;
pub mod bf16;
pub mod binarize;
pub mod broadcast;
pub mod buffer;
pub mod device;
pub mod device_error;
pub mod elementwise;
pub mod fastmath;
pub mod gather;
pub mod gaussian;
pub mod gemm;
pub mod gemm_shape;
pub mod host_pool;
pub mod logsumexp;
pub mod onednn;
pub mod par;
pub mod real;
pub mod reparam;
pub mod rng;
pub mod softmax;
pub mod transpose;
pub mod wide;

#[cfg(feature = "cuda")]
pub mod cuda;

pub use buffer::{Buffer, GradOut, HostBuffer, Indices};
pub use device::{Device, DeviceError};
pub use real::Real;
pub use rng::RngStream;

/// Panics unless an argument of `len` elements is `P × cols` with P dividing `rows`.
pub(crate) fn check_broadcast(rows: usize, cols: usize, len: usize, what: &str) {
    assert!(cols > 0 && len.is_multiple_of(cols), "{what}: {len} elements is not a whole number of rows of {cols}");
    let p = len / cols;
    assert!(p > 0 && rows.is_multiple_of(p), "{what}: {p} rows do not divide the {rows} result rows");
}
