//! The data on the compute device, and batches drawn from it.
//!
//! Training images live on the device as probabilities p = intensity / 255; every batch is a fresh
//! Bernoulli draw (dynamic binarisation) made by the `binarize` kernel from the Philox stream.
//! The test set is binarised once, with a fixed seed, so every evaluation sees the same bits.
//! With a Gaussian likelihood the data are used as they are (standardised if the model says so),
//! and so are Bernoulli data of a model that does not binarise (`ModelConfig::binarize`, grey
//! values as the cross-entropy's targets): batches are plain row gathers.

use std::sync::Arc;

use cagem_autodiff::{Device, Indices, Real, RngStream, Tensor};
use cagem_kernels::binarize::binarize_rows;

use super::{Dataset, Standardizer};
use crate::config::ModelConfig;

/// Seed of the one-off binarisation of the test set (fixed: evaluations are comparable).
pub const TEST_BINARIZATION_SEED: u64 = 0x7e57_5eed;

/// A data set's images on a device.
pub struct DeviceData<T: Real> {
    pub dim: usize,
    pub n_train: usize,
    pub n_test: usize,
    /// Training probabilities (binarised models) or values, n_train × dim.
    pub train: Tensor<T>,
    /// Test images binarised once with TEST_BINARIZATION_SEED (binarised models), or the values
    /// as the model sees them, n_test × dim.
    pub test: Tensor<T>,
    /// Whether batches are Bernoulli draws from `train`; otherwise copies of its rows.
    pub binarize: bool,
}

impl<T: Real> DeviceData<T> {
    /// Binarised Bernoulli data (the bundled sets, as the paper's model sees them).
    pub fn new(device: &Device, data: &Dataset) -> Self {
        Self::for_model(device, data, &ModelConfig::default(), None)
    }

    /// The data as the model of `cfg` sees them: binarised where it binarises
    /// (`ModelConfig::binarizes`), otherwise as they are, standardised by `standardizer` (a
    /// Gaussian model's) where given.
    pub fn for_model(device: &Device, data: &Dataset, cfg: &ModelConfig, standardizer: Option<&Standardizer>) -> Self {
        let dim = data.dim();
        let binarize = cfg.binarizes();
        let mut train_values = data.train_features::<T>();
        if let (false, Some(s)) = (binarize, standardizer) {
            s.apply(&mut train_values);
        }
        let train = Tensor::from_slice(device, data.n_train(), dim, &train_values);
        let test = eval_rows(device, data.test_features::<T>(), dim, binarize, standardizer);
        DeviceData { dim, n_train: data.n_train(), n_test: data.n_test(), train, test, binarize }
    }

    /// Training rows `rows`: a fresh binary draw (binarised models) or a copy.
    pub fn train_batch(&self, rows: &[u32], stream: RngStream) -> Tensor<T> {
        if self.binarize {
            binarize(&self.train.device(), &self.train, rows, stream)
        } else {
            gather(&self.train, rows)
        }
    }

    /// Training rows as evaluated (for commands on the training split): binarised once with
    /// the test set's fixed seed (binarised models) or as they are.
    pub fn train_eval(&self) -> Tensor<T> {
        if self.binarize {
            let all: Vec<u32> = (0..self.n_train as u32).collect();
            binarize(&self.train.device(), &self.train, &all, RngStream::new(TEST_BINARIZATION_SEED, 0))
        } else {
            self.train.clone()
        }
    }

    /// Test rows (already binary).
    pub fn test_batch(&self, start: usize, len: usize) -> Tensor<T> {
        self.test.rows_range(start, len)
    }
}

/// Rows (n × dim values in the data's units) ready for evaluation: binarised once with
/// TEST_BINARIZATION_SEED (`binarize`, `ModelConfig::binarizes`), otherwise as they are,
/// standardised by `standardizer` (a Gaussian model's) where given.
pub fn eval_rows<T: Real>(
    device: &Device,
    mut values: Vec<T>,
    dim: usize,
    binarize: bool,
    standardizer: Option<&Standardizer>,
) -> Tensor<T> {
    let n = values.len() / dim.max(1);
    if binarize {
        let probs = Tensor::from_slice(device, n, dim, &values);
        let all: Vec<u32> = (0..n as u32).collect();
        return self::binarize(device, &probs, &all, RngStream::new(TEST_BINARIZATION_SEED, 0));
    }
    if let Some(s) = standardizer {
        s.apply(&mut values);
    }
    Tensor::from_slice(device, n, dim, &values)
}

/// Copies of `rows` of `table` (the gather kernel with a zero addend).
fn gather<T: Real>(table: &Tensor<T>, rows: &[u32]) -> Tensor<T> {
    let device = table.device();
    let dim = table.cols();
    let idx = Indices::new(&device, rows);
    let zero = Tensor::<T>::zeros(&device, 1, dim);
    let mut out = Tensor::uninit(&device, rows.len(), dim);
    cagem_kernels::gather::gather_add_rows(dim, zero.buf(), table.buf(), &idx, out.buf_mut());
    out
}

/// Bernoulli draw of `rows` of the probability matrix `probs`.
pub fn binarize<T: Real>(device: &Device, probs: &Tensor<T>, rows: &[u32], stream: RngStream) -> Tensor<T> {
    let dim = probs.cols();
    let idx = Arc::new(Indices::new(device, rows));
    let mut out = Tensor::uninit(device, rows.len(), dim);
    binarize_rows(dim, probs.buf(), &idx, stream, out.buf_mut());
    out
}
