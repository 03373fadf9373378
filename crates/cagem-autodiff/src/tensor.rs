//! A matrix on a device: a shape and a reference-counted buffer. Every tensor is 2-D (rows ×
//! cols, row-major); a vector of per-row results is `rows × 1`, a scalar `1 × 1`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::{Buffer, Device, Real};

#[derive(Clone)]
pub struct Tensor<T: Real> {
    rows: usize,
    cols: usize,
    /// The values. A tensor made by [`Tensor::from_bf16_only`] has none until first read, when
    /// they are widened from the bf16 copy.
    buf: Arc<OnceLock<Buffer<T>>>,
    /// The same values rounded to bf16, when the op that wrote them also wrote this for a bf16
    /// matrix product to read (dropped by any mutable access).
    bf16: Option<Arc<Bf16Buf>>,
}

/// How many bf16-only tensors have been widened to f32 (see [`widened_count`]).
static WIDENED: AtomicU64 = AtomicU64::new(0);

/// How many bf16-only tensors this process has had to widen because something read their f32
/// values. The model's bf16-only outputs are meant for bf16 products alone; a test checks that
/// a training step widens none.
pub fn widened_count() -> u64 {
    WIDENED.load(Ordering::Relaxed)
}

impl<T: Real> Tensor<T> {
    pub fn from_buffer(rows: usize, cols: usize, buf: Buffer<T>) -> Self {
        assert_eq!(buf.len(), rows * cols, "tensor: buffer of {} elements for shape {rows}×{cols}", buf.len());
        Tensor { rows, cols, buf: Arc::new(OnceLock::from(buf)), bf16: None }
    }

    /// A tensor (on the CPU) whose values exist only rounded to bf16: the output of a kernel
    /// that wrote it only for bf16 matrix products. Reading its f32 values widens them once.
    pub fn from_bf16_only(rows: usize, cols: usize, b: Bf16Buf) -> Self {
        assert_eq!(b.len(), rows * cols, "tensor: bf16 values of {} elements for shape {rows}×{cols}", b.len());
        Tensor { rows, cols, buf: Arc::new(OnceLock::new()), bf16: Some(Arc::new(b)) }
    }

    /// A tensor whose contents are unspecified; the caller overwrites every element.
    pub fn uninit(device: &Device, rows: usize, cols: usize) -> Self {
        Self::from_buffer(rows, cols, Buffer::uninit(device, rows * cols))
    }

    pub fn zeros(device: &Device, rows: usize, cols: usize) -> Self {
        Self::from_buffer(rows, cols, Buffer::zeros(device, rows * cols))
    }

    pub fn full(device: &Device, rows: usize, cols: usize, value: T) -> Self {
        let mut b = Buffer::uninit(device, rows * cols);
        b.fill(value);
        Self::from_buffer(rows, cols, b)
    }

    pub fn from_slice(device: &Device, rows: usize, cols: usize, data: &[T]) -> Self {
        assert_eq!(data.len(), rows * cols, "tensor: {} values for shape {rows}×{cols}", data.len());
        Self::from_buffer(rows, cols, Buffer::from_slice(device, data))
    }

    /// From f64 values (converted to T).
    pub fn from_f64(device: &Device, rows: usize, cols: usize, data: &[f64]) -> Self {
        let v: Vec<T> = data.iter().map(|&x| T::from_f64(x)).collect();
        Self::from_slice(device, rows, cols, &v)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> Device {
        // bf16-only tensors live on the CPU.
        self.buf.get().map_or(Device::Cpu, |b| b.device())
    }

    pub fn buf(&self) -> &Buffer<T> {
        self.buf.get_or_init(|| self.widen())
    }

    /// The values rounded to bf16 when they exist only so (a bf16-only tensor not yet widened):
    /// a kernel that can read bf16 should then read these, not `buf()`.
    pub fn bf16_only(&self) -> Option<&Arc<Bf16Buf>> {
        if self.buf.get().is_some() { None } else { self.bf16.as_ref() }
    }

    /// The f32 values of a bf16-only tensor (bf16 to f32 is exact).
    fn widen(&self) -> Buffer<T> {
        let b = self.bf16.as_ref().expect("tensor without values");
        WIDENED.fetch_add(1, Ordering::Relaxed);
        let v: Vec<T> = b.iter().map(|&h| cagem_kernels::bf16::widen(h)).collect();
        Buffer::from_slice(&Device::Cpu, &v)
    }

    /// Mutable access to the buffer; copies it first if another tensor shares it.
    pub fn buf_mut(&mut self) -> &mut Buffer<T> {
        self.buf();
        self.bf16 = None;
        if Arc::get_mut(&mut self.buf).is_none() {
            self.buf = Arc::new(OnceLock::from(self.buf().duplicate()));
        }
        Arc::get_mut(&mut self.buf).and_then(OnceLock::get_mut).expect("unique after copy")
    }

    /// True when no other tensor shares this buffer (in-place updates will not copy).
    pub fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.buf).is_some()
    }

    /// The same data viewed with another shape of the same size (no copy).
    pub fn reshape(&self, rows: usize, cols: usize) -> Self {
        assert_eq!(rows * cols, self.len(), "reshape {}×{} to {rows}×{cols}", self.rows, self.cols);
        Tensor { rows, cols, buf: self.buf.clone(), bf16: self.bf16.clone() }
    }

    /// Rows `start .. start + n` as a new tensor on the same device.
    pub fn rows_range(&self, start: usize, n: usize) -> Self {
        assert!(start + n <= self.rows, "rows {start}..{} of a {}-row tensor", start + n, self.rows);
        Self::from_buffer(n, self.cols, self.buf().copy_range(start * self.cols, n * self.cols))
    }

    /// Attaches the values rounded to bf16 (written by the same kernel as the f32 ones).
    pub fn with_bf16(mut self, b: Bf16Buf) -> Self {
        self.set_bf16(b);
        self
    }

    pub fn set_bf16(&mut self, b: Bf16Buf) {
        assert_eq!(b.len(), self.len(), "tensor: bf16 copy of {} values for {} elements", b.len(), self.len());
        self.bf16 = Some(Arc::new(b));
    }

    /// The bf16 copy, if the writer made one.
    pub fn bf16(&self) -> Option<&Arc<Bf16Buf>> {
        self.bf16.as_ref()
    }

    /// The contents on the host (a transfer from a GPU).
    pub fn to_vec(&self) -> Vec<T> {
        self.buf().to_vec()
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec().into_iter().map(|v| v.as_f64()).collect()
    }

    /// The value of a 1×1 tensor.
    pub fn scalar(&self) -> T {
        assert_eq!(self.len(), 1, "scalar() of a {}×{} tensor", self.rows, self.cols);
        self.to_vec()[0]
    }

    /// A copy on another device.
    pub fn to_device(&self, device: &Device) -> Self {
        if &self.device() == device {
            return self.clone();
        }
        Self::from_slice(device, self.rows, self.cols, &self.to_vec())
    }

    /// A copy that shares nothing with `self`.
    pub fn deep_clone(&self) -> Self {
        Self::from_buffer(self.rows, self.cols, self.buf().duplicate())
    }
}

impl<T: Real> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>[{}×{} on {}]", T::NAME, self.rows, self.cols, self.device().name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bf16-only tensor reads as its bf16 values widened (counted), and a mutable access
    /// gives it its own f32 values and drops the bf16 copy.
    #[test]
    fn bf16_only_tensors_widen_on_first_read() {
        let values = [1.0f32, -2.5, 3.0e-3, 7.0e4];
        let mut b = Bf16Buf::uninit(values.len());
        cagem_kernels::bf16::convert_serial(&values, &mut b);
        let rounded: Vec<f32> = b.iter().map(|&h| cagem_kernels::bf16::to_f32(h)).collect();
        let before = widened_count();
        let t = Tensor::<f32>::from_bf16_only(2, 2, b);
        assert_eq!(t.device(), Device::Cpu);
        let shared = t.reshape(4, 1);
        assert_eq!(t.to_vec(), rounded);
        assert_eq!(shared.to_vec(), rounded, "a reshape shares the widened values");
        assert!(widened_count() > before);
        let mut m = t.clone();
        m.buf_mut().host_mut()[0] = 5.0;
        assert!(m.bf16().is_none(), "a mutable access keeps a stale bf16 copy");
        assert_eq!(m.to_vec()[0], 5.0);
        assert_eq!(t.to_vec(), rounded, "a mutable access changed a shared tensor");
    }
}
