//! Per-feature standardisation (`--standardize`): x' = (x − mean) / std with the training set's
//! statistics. They are stored in the model (non-trainable parameters "input.mean" and
//! "input.std", saved in the checkpoint), so every command applies the same transform. A density
//! of x' is one of x after adding the log-Jacobian −Σ_d log std_d.

use cagem_autodiff::Real;

/// Features whose standard deviation is below this are left unscaled (constant features).
pub const MIN_STD: f64 = 1e-6;

#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    /// The statistics of `values` (n × dim, row-major), accumulated in f64.
    pub fn fit<T: Real>(values: &[T], dim: usize) -> Self {
        let n = (values.len() / dim.max(1)).max(1) as f64;
        let (mut sum, mut sum_sq) = (vec![0.0; dim], vec![0.0; dim]);
        for row in values.chunks_exact(dim) {
            for (j, v) in row.iter().enumerate() {
                let v = v.as_f64();
                sum[j] += v;
                sum_sq[j] += v * v;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n - m * m).max(0.0).sqrt();
                if sd < MIN_STD { 1.0 } else { sd }
            })
            .collect();
        Standardizer { mean, std }
    }

    /// Standardises rows in place.
    pub fn apply<T: Real>(&self, values: &mut [T]) {
        let d = self.mean.len();
        for row in values.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = T::from_f64((v.as_f64() - self.mean[j]) / self.std[j]);
            }
        }
    }

    /// Back to the data's units, in place.
    pub fn invert(&self, values: &mut [f64]) {
        let d = self.mean.len();
        for row in values.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = *v * self.std[j] + self.mean[j];
            }
        }
    }

    /// log |dx'/dx| = −Σ_d log std_d, added to a log-density of x' to give one of x.
    pub fn log_jacobian(&self) -> f64 {
        -self.std.iter().map(|s| s.ln()).sum::<f64>()
    }
}
