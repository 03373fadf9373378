//! Initial values. Dense layers: Glorot (Xavier) uniform, Lasagne's default (the paper's
//! framework); Gaussian heads start near zero, N(0, 1e-3²) weights (docs/design.md §1).

use cagem_kernels::rng::HostRng;

/// U(−a, a) with a = √(6 / (fan_in + fan_out)).
pub fn glorot_uniform(rng: &mut HostRng, fan_in: usize, fan_out: usize, n: usize) -> Vec<f64> {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..n).map(|_| (2.0 * rng.next_f64() - 1.0) * a).collect()
}

/// N(0, std²).
pub fn normal(rng: &mut HostRng, std: f64, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * std).collect()
}
