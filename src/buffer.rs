//! Memory that belongs to a device: host vectors (recycled through a pool) or CUDA allocations.
//!
//! A training step allocates the same few dozen shapes over and over. Fresh multi-megabyte host
//! allocations cost page faults and zeroing on every step, so dropped host buffers go back to a
//! per-type pool keyed by length and are handed out again with whatever they held. Every kernel
//! writes all of its outputs; in debug builds recycled buffers are poisoned with NaN so a kernel
//! that forgets an element fails its tests.

use std::ops::{Deref, DerefMut};

use crate::device::Device;
pub use crate::host_pool::HostPool;
use crate::real::Real;

/// A host vector that returns to its pool when dropped.
pub struct HostBuffer<T: Real> {
    data: Vec<T>,
}

impl<T: Real> HostBuffer<T> {
    /// A buffer of `len` elements whose contents are unspecified (recycled values).
    pub fn uninit(len: usize) -> Self {
        let data = T::host_pool().take(len).unwrap_or_else(|| vec![T::zero(); len]);
        HostBuffer { data }
    }

    pub fn zeros(len: usize) -> Self {
        let mut b = Self::uninit(len);
        b.data.fill(T::zero());
        b
    }

    pub fn from_vec(data: Vec<T>) -> Self {
        HostBuffer { data }
    }

    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.data)
    }
}

impl<T: Real> Drop for HostBuffer<T> {
    fn drop(&mut self) {
        T::host_pool().give(std::mem::take(&mut self.data));
    }
}

impl<T: Real> Deref for HostBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

impl<T: Real> DerefMut for HostBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
}

/// Device memory holding `len` elements of `T`.
pub enum Buffer<T: Real> {
    Host(HostBuffer<T>),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaBuffer<T>),
}

impl<T: Real> Buffer<T> {
    /// A buffer whose contents are unspecified; the caller overwrites every element.
    pub fn uninit(device: &Device, len: usize) -> Self {
        match device {
            Device::Cpu => Buffer::Host(HostBuffer::uninit(len)),
            #[cfg(feature = "cuda")]
            Device::Cuda(dev) => Buffer::Cuda(dev.alloc(len)),
        }
    }

    pub fn zeros(device: &Device, len: usize) -> Self {
        let mut b = Self::uninit(device, len);
        b.fill(T::zero());
        b
    }

    pub fn from_slice(device: &Device, data: &[T]) -> Self {
        match device {
            Device::Cpu => {
                let mut b = HostBuffer::uninit(data.len());
                b.copy_from_slice(data);
                Buffer::Host(b)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(dev) => Buffer::Cuda(dev.upload(data)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::Host(b) => b.len(),
            #[cfg(feature = "cuda")]
            Buffer::Cuda(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> Device {
        match self {
            Buffer::Host(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Buffer::Cuda(b) => Device::Cuda(b.device().clone()),
        }
    }

    /// Copies the contents to a host vector (a device-to-host transfer on the GPU).
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            Buffer::Host(b) => b.to_vec(),
            #[cfg(feature = "cuda")]
            Buffer::Cuda(b) => b.download(),
        }
    }

    /// Overwrites the contents from host memory of the same length.
    pub fn copy_from_host(&mut self, src: &[T]) {
        assert_eq!(self.len(), src.len(), "copy_from_host: length mismatch");
        match self {
            Buffer::Host(b) => b.copy_from_slice(src),
            #[cfg(feature = "cuda")]
            Buffer::Cuda(b) => b.upload_from(src),
        }
    }

    /// A copy of elements `start .. start + len`, on the same device.
    pub fn copy_range(&self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.len(), "copy_range {start}+{len} of a buffer of {}", self.len());
        match self {
            Buffer::Host(b) => {
                let mut out = HostBuffer::uninit(len);
                out.copy_from_slice(&b[start..start + len]);
                Buffer::Host(out)
            }
            #[cfg(feature = "cuda")]
            Buffer::Cuda(b) => Buffer::Cuda(b.copy_range(start, len)),
        }
    }

    /// The contents of `parts` one after another, on `device`. On a GPU these are device-side
    /// copies, so that several small results come back later in one transfer instead of one
    /// blocking transfer each.
    pub fn concat(device: &Device, parts: &[&Buffer<T>]) -> Self {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut out = Self::uninit(device, len);
        let mut at = 0;
        for p in parts {
            assert!(&p.device() == device, "concat: a buffer on {} into one on {}", p.device().name(), device.name());
            match (&mut out, p) {
                (Buffer::Host(o), Buffer::Host(b)) => o[at..at + b.len()].copy_from_slice(b),
                #[cfg(feature = "cuda")]
                (Buffer::Cuda(o), Buffer::Cuda(b)) => b.copy_into(o, at),
                #[cfg(feature = "cuda")]
                _ => unreachable!("devices checked above"),
            }
            at += p.len();
        }
        out
    }

    /// The host slice. Panics if the buffer lives on a GPU: callers dispatch on the device first.
    pub fn host(&self) -> &[T] {
        match self {
            Buffer::Host(b) => b,
            #[cfg(feature = "cuda")]
            Buffer::Cuda(_) => panic!("host access to a CUDA buffer (missing device dispatch)"),
        }
    }

    pub fn host_mut(&mut self) -> &mut [T] {
        match self {
            Buffer::Host(b) => b,
            #[cfg(feature = "cuda")]
            Buffer::Cuda(_) => panic!("host access to a CUDA buffer (missing device dispatch)"),
        }
    }

    #[cfg(feature = "cuda")]
    pub fn cuda(&self) -> &crate::cuda::CudaBuffer<T> {
        match self {
            Buffer::Cuda(b) => b,
            Buffer::Host(_) => panic!("CUDA access to a host buffer (missing device dispatch)"),
        }
    }

    #[cfg(feature = "cuda")]
    pub fn cuda_mut(&mut self) -> &mut crate::cuda::CudaBuffer<T> {
        match self {
            Buffer::Cuda(b) => b,
            Buffer::Host(_) => panic!("CUDA access to a host buffer (missing device dispatch)"),
        }
    }
}

impl<T: Real> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer<{}>[{} on {}]", T::NAME, self.len(), self.device().name())
    }
}

/// Where a backward kernel writes one gradient: overwrite (`accumulate == false`, the first
/// contribution; saves zero-filling) or add to what is there.
pub struct GradOut<'a, B: ?Sized> {
    pub buf: &'a mut B,
    pub accumulate: bool,
}

impl<'a, T: Real> GradOut<'a, Buffer<T>> {
    pub fn new(buf: &'a mut Buffer<T>, accumulate: bool) -> Self {
        GradOut { buf, accumulate }
    }

    /// The host view of this gradient output.
    pub fn host(self) -> GradOut<'a, [T]> {
        GradOut { buf: self.buf.host_mut(), accumulate: self.accumulate }
    }

    #[cfg(feature = "cuda")]
    pub fn cuda(self) -> GradOut<'a, crate::cuda::CudaBuffer<T>> {
        GradOut { buf: self.buf.cuda_mut(), accumulate: self.accumulate }
    }
}

impl<T: Real> GradOut<'_, [T]> {
    /// Writes or adds `v` at `i`.
    #[inline(always)]
    pub fn put(&mut self, i: usize, v: T) {
        if self.accumulate {
            self.buf[i] = self.buf[i] + v;
        } else {
            self.buf[i] = v;
        }
    }
}

/// Row indices (cluster ids, labels, batch rows) on a device.
pub enum Indices {
    Host(Vec<u32>),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaIndices),
}

impl Indices {
    pub fn new(device: &Device, idx: &[u32]) -> Self {
        match device {
            Device::Cpu => Indices::Host(idx.to_vec()),
            #[cfg(feature = "cuda")]
            Device::Cuda(dev) => Indices::Cuda(dev.upload_indices(idx)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Indices::Host(v) => v.len(),
            #[cfg(feature = "cuda")]
            Indices::Cuda(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn host(&self) -> &[u32] {
        match self {
            Indices::Host(v) => v,
            #[cfg(feature = "cuda")]
            Indices::Cuda(_) => panic!("host access to CUDA indices (missing device dispatch)"),
        }
    }

    #[cfg(feature = "cuda")]
    pub fn cuda(&self) -> &crate::cuda::CudaIndices {
        match self {
            Indices::Cuda(v) => v,
            Indices::Host(_) => panic!("CUDA access to host indices (missing device dispatch)"),
        }
    }

    /// The indices as a host vector (a transfer on the GPU).
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Indices::Host(v) => v.clone(),
            #[cfg(feature = "cuda")]
            Indices::Cuda(v) => v.download(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_keeps_every_bit_and_skips_empty_parts() {
        let cpu = Device::Cpu;
        let a = Buffer::from_slice(&cpu, &[1.0f64, -0.0]);
        let e = Buffer::<f64>::uninit(&cpu, 0);
        let b = Buffer::from_slice(&cpu, &[f64::NAN, f64::MIN_POSITIVE / 3.0]);
        let c = Buffer::concat(&cpu, &[&e, &a, &e, &b]).to_vec();
        let want = [1.0f64, -0.0, f64::NAN, f64::MIN_POSITIVE / 3.0];
        assert_eq!(c.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.map(f64::to_bits).to_vec());
        assert!(Buffer::concat(&cpu, &[&e]).is_empty());
    }
}
