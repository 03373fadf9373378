//! Memory on a CUDA device: element buffers and index arrays, each holding its device.

use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use crate::real::Real;

/// Elements on a device. Empty buffers hold a one-element allocation (the driver is never asked
/// for zero bytes); `len` is the logical length.
pub struct CudaBuffer<T> {
    pub(crate) slice: CudaSlice<T>,
    len: usize,
    dev: Arc<CudaDevice>,
}

fn check<R>(r: Result<R, cudarc::driver::DriverError>, what: &str) -> R {
    r.unwrap_or_else(|e| panic!("{}", super::error::async_failure(what, e.0, &super::error::describe(e.0))))
}

impl<T: Real> CudaBuffer<T> {
    pub(crate) fn new(slice: CudaSlice<T>, len: usize, dev: Arc<CudaDevice>) -> Self {
        CudaBuffer { slice, len, dev }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }

    /// Copies to the host (waits for the queued work that writes it).
    pub fn download(&self) -> Vec<T> {
        if self.is_empty() {
            return Vec::new();
        }
        check(self.dev.stream().clone_dtoh(&self.slice.slice(..self.len)), "download")
    }

    pub fn upload_from(&mut self, src: &[T]) {
        assert_eq!(src.len(), self.len(), "upload: length mismatch");
        if !src.is_empty() {
            check(self.dev.stream().memcpy_htod(src, &mut self.slice), "upload");
        }
    }

    /// A device copy of elements `start .. start + len`.
    pub fn copy_range(&self, start: usize, len: usize) -> CudaBuffer<T> {
        let mut out = self.dev.alloc::<T>(len);
        if len > 0 {
            check(self.dev.stream().memcpy_dtod(&self.slice.slice(start..start + len), &mut out.slice), "copy");
        }
        out
    }

    /// Copies all of this buffer into `dst` from element `at` on (queued on the stream).
    pub fn copy_into(&self, dst: &mut CudaBuffer<T>, at: usize) {
        assert!(at + self.len <= dst.len, "copy_into: {} elements at {at} of a buffer of {}", self.len, dst.len);
        if !self.is_empty() {
            let mut view = dst.slice.slice_mut(at..at + self.len);
            check(self.dev.stream().memcpy_dtod(&self.slice.slice(..self.len), &mut view), "copy");
        }
    }

    /// Copies all of `src` (same length) into this buffer.
    pub fn copy_from(&mut self, src: &CudaBuffer<T>) {
        assert_eq!(src.len(), self.len(), "copy: length mismatch");
        if !src.is_empty() {
            check(self.dev.stream().memcpy_dtod(&src.slice.slice(..src.len), &mut self.slice), "copy");
        }
    }
}

/// Row indices on a CUDA device, with their largest value (known at upload) so launchers can
/// check them against the rows they index: the GPU does not bounds-check.
pub struct CudaIndices {
    pub(crate) slice: CudaSlice<u32>,
    len: usize,
    max: Option<u32>,
    dev: Arc<CudaDevice>,
}

impl CudaIndices {
    pub(crate) fn new(slice: CudaSlice<u32>, len: usize, max: Option<u32>, dev: Arc<CudaDevice>) -> Self {
        CudaIndices { slice, len, max, dev }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The largest index (None when empty).
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn download(&self) -> Vec<u32> {
        if self.is_empty() {
            return Vec::new();
        }
        check(self.dev.stream().clone_dtoh(&self.slice.slice(..self.len)), "download")
    }
}

/// Allocation and upload live with the buffers they make, so that the device does not import its
/// buffers and the buffers their device.
impl CudaDevice {
    /// `len` elements with unspecified contents (stream-ordered, from the pool).
    pub fn alloc<T: Real>(self: &Arc<Self>, len: usize) -> CudaBuffer<T> {
        CudaBuffer::new(self.alloc_slice(len), len, self.clone())
    }

    pub fn upload<T: Real>(self: &Arc<Self>, data: &[T]) -> CudaBuffer<T> {
        let mut b = self.alloc::<T>(data.len());
        b.upload_from(data);
        b
    }

    pub fn upload_indices(self: &Arc<Self>, idx: &[u32]) -> CudaIndices {
        let mut s = self.alloc_slice::<u32>(idx.len());
        if !idx.is_empty() {
            check(self.stream().memcpy_htod(idx, &mut s), "upload");
        }
        CudaIndices::new(s, idx.len(), idx.iter().copied().max(), self.clone())
    }

    /// A scratch buffer of at least one f64 (reduction partials).
    pub(crate) fn scratch_f64(self: &Arc<Self>, len: usize) -> CudaBuffer<f64> {
        self.alloc::<f64>(len.max(1))
    }
}
