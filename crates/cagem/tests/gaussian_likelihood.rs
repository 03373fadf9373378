//! The Gaussian likelihood: its density as the model calls it (x constant, one row per example;
//! μ and log σ² one row per example and cluster) equals the closed form, with log σ² clamped like
//! every log-variance, and its gradients match central finite differences (f64).

use cagem_autodiff::{Device, Graph, Tensor};
use cagem_kernels::gaussian::{LN_2PI, clamp_logvar};
use cagem_kernels::rng::HostRng;

const B: usize = 3;
const K: usize = 2;
const D: usize = 4;

/// Σ_r w_r log N(x_{r mod B}; μ_r, diag exp λ_r) and its gradients with respect to μ and λ.
fn density(x: &[f64], mu: &[f64], lv: &[f64], w: &[f64]) -> (Vec<f64>, f64, Vec<f64>, Vec<f64>) {
    let dev = Device::Cpu;
    let mut g = Graph::<f64>::new(&dev);
    let xv = g.constant(Tensor::from_f64(&dev, B, D, x));
    let m = g.leaf(Tensor::from_f64(&dev, K * B, D, mu), true);
    let l = g.leaf(Tensor::from_f64(&dev, K * B, D, lv), true);
    let out = g.diag_gaussian_logpdf(xv, m, l);
    let per_row = g.value(out).to_f64_vec();
    let total = per_row.iter().zip(w).map(|(a, b)| a * b).sum();
    let grads = g.backward_with(out, Tensor::from_f64(&dev, K * B, 1, w));
    let (dm, dl) = (grads.wrt(m).unwrap().to_f64_vec(), grads.wrt(l).unwrap().to_f64_vec());
    (per_row, total, dm, dl)
}

#[test]
fn gaussian_density_is_the_closed_form_and_its_gradients_match_finite_differences() {
    let mut rng = HostRng::new(17, 0);
    let mut randn = |n: usize, s: f64| (0..n).map(|_| s * rng.normal()).collect::<Vec<f64>>();
    let x = randn(B * D, 2.0);
    let mut mu = randn(K * B * D, 1.0);
    let mut lv = randn(K * B * D, 1.0);
    lv[5] = -35.0; // below the clamp: treated as −30, no gradient
    mu[5] = x[5] + 1e-7;
    let w = randn(K * B, 1.0);
    let (per_row, _, dm, dl) = density(&x, &mu, &lv, &w);
    for r in 0..K * B {
        let expect: f64 = (0..D)
            .map(|d| {
                let (xv, m, l) = (x[(r % B) * D + d], mu[r * D + d], clamp_logvar(lv[r * D + d]));
                -0.5 * (LN_2PI + l + (xv - m).powi(2) * (-l).exp())
            })
            .sum();
        assert!((per_row[r] - expect).abs() < 1e-9 * expect.abs().max(1.0), "row {r}: {} vs {expect}", per_row[r]);
    }
    assert_eq!(dl[5], 0.0, "a clamped log-variance has no gradient");
    let h = 1e-6;
    for (which, base, grad) in [("mu", &mu, &dm), ("logvar", &lv, &dl)] {
        for j in 0..base.len() {
            let at = |v: f64| {
                let mut p = base.clone();
                p[j] = v;
                let (m, l) = if which == "mu" { (&p, &lv) } else { (&mu, &p) };
                density(&x, m, l, &w).1
            };
            let numeric = (at(base[j] + h) - at(base[j] - h)) / (2.0 * h);
            let tol = 1e-6 + 1e-5 * grad[j].abs().max(numeric.abs());
            assert!(
                (grad[j] - numeric).abs() <= tol,
                "d/d{which}[{j}]: tape {} vs finite difference {numeric}",
                grad[j]
            );
        }
    }
}
