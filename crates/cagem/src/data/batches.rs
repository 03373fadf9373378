//! The data on the compute device, and batches drawn from it.
//!
//! Training images live on the device as probabilities p = intensity / 255; every batch is a fresh
//! Bernoulli draw (dynamic binarisation) made by the `binarize` kernel from the Philox stream.
//! The test set is binarised once, with a fixed seed, so every evaluation sees the same bits.

use std::sync::Arc;

use cagem_autodiff::{Device, Indices, Real, RngStream, Tensor};
use cagem_kernels::binarize::binarize_rows;

use super::Dataset;

/// Seed of the one-off binarisation of the test set (fixed: evaluations are comparable).
pub const TEST_BINARIZATION_SEED: u64 = 0x7e57_5eed;

/// Converts 8-bit intensities to probabilities.
pub fn probabilities<T: Real>(pixels: &[u8]) -> Vec<T> {
    pixels.iter().map(|&p| T::from_f64(p as f64 / 255.0)).collect()
}

/// A data set's images on a device.
pub struct DeviceData<T: Real> {
    pub dim: usize,
    pub n_train: usize,
    pub n_test: usize,
    /// Training probabilities, n_train × dim.
    pub train: Tensor<T>,
    /// Test images binarised once with TEST_BINARIZATION_SEED, n_test × dim.
    pub test: Tensor<T>,
}

impl<T: Real> DeviceData<T> {
    pub fn new(device: &Device, data: &Dataset) -> Self {
        let dim = data.dim();
        let train = Tensor::from_slice(device, data.n_train(), dim, &probabilities::<T>(&data.train_images));
        let test_probs = Tensor::from_slice(device, data.n_test(), dim, &probabilities::<T>(&data.test_images));
        let all: Vec<u32> = (0..data.n_test() as u32).collect();
        let test = binarize(device, &test_probs, &all, RngStream::new(TEST_BINARIZATION_SEED, 0));
        DeviceData { dim, n_train: data.n_train(), n_test: data.n_test(), train, test }
    }

    /// A fresh binary draw of training rows `rows`.
    pub fn train_batch(&self, rows: &[u32], stream: RngStream) -> Tensor<T> {
        binarize(&self.train.device(), &self.train, rows, stream)
    }

    /// Test rows (already binary).
    pub fn test_batch(&self, start: usize, len: usize) -> Tensor<T> {
        self.test.rows_range(start, len)
    }
}

/// Bernoulli draw of `rows` of the probability matrix `probs`.
pub fn binarize<T: Real>(device: &Device, probs: &Tensor<T>, rows: &[u32], stream: RngStream) -> Tensor<T> {
    let dim = probs.cols();
    let idx = Arc::new(Indices::new(device, rows));
    let mut out = Tensor::uninit(device, rows.len(), dim);
    binarize_rows(dim, probs.buf(), &idx, stream, out.buf_mut());
    out
}
