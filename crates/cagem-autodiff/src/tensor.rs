//! A matrix on a device: a shape and a reference-counted buffer. Every tensor is 2-D (rows ×
//! cols, row-major); a vector of per-row results is `rows × 1`, a scalar `1 × 1`.

use std::sync::Arc;

use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::{Buffer, Device, Real};

#[derive(Clone)]
pub struct Tensor<T: Real> {
    rows: usize,
    cols: usize,
    buf: Arc<Buffer<T>>,
    /// The same values rounded to bf16, when the op that wrote them also wrote this for a bf16
    /// matrix product to read (dropped by any mutable access).
    bf16: Option<Arc<Bf16Buf>>,
}

impl<T: Real> Tensor<T> {
    pub fn from_buffer(rows: usize, cols: usize, buf: Buffer<T>) -> Self {
        assert_eq!(buf.len(), rows * cols, "tensor: buffer of {} elements for shape {rows}×{cols}", buf.len());
        Tensor { rows, cols, buf: Arc::new(buf), bf16: None }
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
        self.buf.device()
    }

    pub fn buf(&self) -> &Buffer<T> {
        &self.buf
    }

    /// Mutable access to the buffer; copies it first if another tensor shares it.
    pub fn buf_mut(&mut self) -> &mut Buffer<T> {
        self.bf16 = None;
        if Arc::get_mut(&mut self.buf).is_none() {
            self.buf = Arc::new(self.buf.duplicate());
        }
        Arc::get_mut(&mut self.buf).expect("unique after copy")
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
        Self::from_buffer(n, self.cols, self.buf.copy_range(start * self.cols, n * self.cols))
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
        self.buf.to_vec()
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
        Self::from_buffer(self.rows, self.cols, self.buf.duplicate())
    }
}

impl<T: Real> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>[{}×{} on {}]", T::NAME, self.rows, self.cols, self.device().name())
    }
}
