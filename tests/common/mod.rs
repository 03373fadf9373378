//! Shared helpers for the kernel tests: fresh random inputs and tolerant comparisons.
#![allow(dead_code)]

use cagem_kernels::rng::HostRng;
use cagem_kernels::{Buffer, Device, GradOut, Real};

/// A seed that changes every run unless CAGEM_TEST_SEED pins it.
pub fn fresh_seed() -> u64 {
    if let Ok(s) = std::env::var("CAGEM_TEST_SEED") {
        return s.parse().expect("CAGEM_TEST_SEED must be an integer");
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

pub struct Gen {
    pub rng: HostRng,
    pub seed: u64,
}

impl Gen {
    pub fn new() -> Self {
        let seed = fresh_seed();
        Gen { rng: HostRng::new(seed, 11), seed }
    }

    pub fn normal(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.rng.normal() * scale).collect()
    }

    pub fn uniform(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rng.next_f64()).collect()
    }

    pub fn indices(&mut self, n: usize, below: usize) -> Vec<u32> {
        (0..n).map(|_| self.rng.below(below as u64) as u32).collect()
    }
}

pub fn buf<T: Real>(v: &[f64]) -> Buffer<T> {
    let t: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    Buffer::from_slice(&Device::Cpu, &t)
}

/// A buffer poisoned with NaN, so unwritten outputs show.
pub fn poisoned<T: Real>(n: usize) -> Buffer<T> {
    let mut b = Buffer::uninit(&Device::Cpu, n);
    b.fill(T::nan());
    b
}

pub fn vals<T: Real>(b: &Buffer<T>) -> Vec<f64> {
    b.to_vec().into_iter().map(|v| v.as_f64()).collect()
}

pub fn out<T: Real>(b: &mut Buffer<T>, accumulate: bool) -> GradOut<'_, Buffer<T>> {
    GradOut::new(b, accumulate)
}

/// Asserts |got − want| ≤ atol + rtol·|want| elementwise (NaN never passes).
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64, seed: u64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        assert!(ok, "{what}[{i}]: got {g:.9e}, want {w:.9e} (seed {seed})");
    }
}

#[allow(unused_imports)]
pub use cagem_kernels::device::gpu_for_test as gpu_or_skip;

/// Relative L2 distance ‖got − want‖ / ‖want‖, and whether every element is as finite as its
/// reference (so an unwritten NaN-poisoned element fails).
pub fn rel_l2(got: &[f64], want: &[f64]) -> (f64, bool) {
    assert_eq!(got.len(), want.len());
    let (mut d, mut w) = (0.0, 0.0);
    let mut finite_ok = true;
    for (&g, &r) in got.iter().zip(want) {
        finite_ok &= g.is_finite() == r.is_finite();
        if r.is_finite() && g.is_finite() {
            d += (g - r) * (g - r);
            w += r * r;
        }
    }
    (if w > 0.0 { (d / w).sqrt() } else { d.sqrt() }, finite_ok)
}
