//! Arrays between NumPy and the model: the raw bytes of a C-ordered buffer with its type string
//! and shape in, little-endian bytes out (python/cagem/_arrays.py does the NumPy side).

use cagem::data::npy::NpyArray;
use cagem::{Cagem, Result};
use cagem_autodiff::Tensor;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// An array handed over from Python: `name` (e.g. "X") names it in messages, as a file name
/// does on the command line.
pub struct Incoming<'a> {
    pub name: &'a str,
    pub descr: &'a str,
    pub shape: Vec<usize>,
    pub bytes: &'a [u8],
}

impl Incoming<'_> {
    /// The examples as the model sees them (checked as `--input F.npy` is: shape, dtype, finite
    /// values, [0, 1] for a Bernoulli model; then binarised once or standardised).
    pub fn examples(&self, model: &Cagem<f32>) -> Result<Tensor<f32>> {
        let cfg = &model.cfg;
        let arr = NpyArray::from_le_bytes(self.name, self.descr, self.shape.clone(), self.bytes)?;
        let values = cagem::data::npy::examples_from_array(arr, cfg.height, cfg.width, cfg.likelihood)?;
        let st = model.standardizer();
        Ok(cagem::data::eval_rows(&model.device(), values, cfg.x_dim, cfg.binarizes(), st.as_ref()))
    }
}

/// f64 values as the bytes of a little-endian float64 buffer.
pub fn f64_bytes<'py>(py: Python<'py>, v: &[f64]) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(8 * v.len());
    v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    PyBytes::new(py, &out)
}

/// Integers as the bytes of a little-endian int64 buffer.
pub fn i64_bytes<'py>(py: Python<'py>, v: impl Iterator<Item = i64>) -> Bound<'py, PyBytes> {
    let out: Vec<u8> = v.flat_map(i64::to_le_bytes).collect();
    PyBytes::new(py, &out)
}
