//! A tiny CaGeM and batches for model-level tests.
#![allow(dead_code)]

use cagem::ModelConfig;
use cagem_autodiff::{Device, Tensor};
use cagem_kernels::rng::HostRng;

pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        x_dim: 6,
        height: 2,
        width: 3,
        z1: 3,
        z2: 2,
        clusters: 3,
        q_hidden: [5, 4],
        p_hidden: [4, 5],
        ..ModelConfig::default()
    }
}

/// `n` random binary images of `dim` pixels.
pub fn binary_batch(rng: &mut HostRng, n: usize, dim: usize) -> Tensor<f64> {
    let v: Vec<f64> = (0..n * dim).map(|_| if rng.next_f64() < 0.4 { 1.0 } else { 0.0 }).collect();
    Tensor::from_f64(&Device::Cpu, n, dim, &v)
}
