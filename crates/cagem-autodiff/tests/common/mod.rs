//! Finite-difference gradient checking for graph ops, in f64.

use cagem_autodiff::{Device, Graph, Tensor, Var};
use cagem_kernels::rng::HostRng;

/// A seed that changes every run (fresh random inputs) unless CAGEM_TEST_SEED pins it.
pub fn fresh_seed() -> u64 {
    if let Ok(s) = std::env::var("CAGEM_TEST_SEED") {
        return s.parse().expect("CAGEM_TEST_SEED must be an integer");
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

pub fn rng() -> (HostRng, u64) {
    let seed = fresh_seed();
    (HostRng::new(seed, 7), seed)
}

pub fn randn(rng: &mut HostRng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// One input of a checked function: its shape, values and whether to differentiate it.
pub struct Input {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f64>,
    pub wants_grad: bool,
}

impl Input {
    pub fn new(rows: usize, cols: usize, values: Vec<f64>) -> Self {
        assert_eq!(values.len(), rows * cols);
        Input { rows, cols, values, wants_grad: true }
    }

    pub fn random(rng: &mut HostRng, rows: usize, cols: usize) -> Self {
        Self::new(rows, cols, randn(rng, rows * cols, 1.0))
    }

    pub fn constant(mut self) -> Self {
        self.wants_grad = false;
        self
    }
}

/// Evaluates Σ w ∘ f(inputs) for fixed random weights w.
fn weighted_output(f: &dyn Fn(&mut Graph<f64>, &[Var]) -> Var, inputs: &[Input], weights: &[f64]) -> f64 {
    let dev = Device::Cpu;
    let mut g = Graph::<f64>::new(&dev);
    let vars: Vec<Var> =
        inputs.iter().map(|i| g.leaf(Tensor::from_slice(&dev, i.rows, i.cols, &i.values), false)).collect();
    let out = f(&mut g, &vars);
    g.value(out).to_f64_vec().iter().zip(weights).map(|(o, w)| o * w).sum()
}

/// Checks the tape's gradients of Σ w ∘ f(inputs) against central differences, for every
/// element of every input that wants a gradient. Panics with the worst mismatch.
pub fn check_gradients(name: &str, seed: u64, inputs: Vec<Input>, f: impl Fn(&mut Graph<f64>, &[Var]) -> Var) {
    let dev = Device::Cpu;
    let mut g = Graph::<f64>::new(&dev);
    let vars: Vec<Var> =
        inputs.iter().map(|i| g.leaf(Tensor::from_slice(&dev, i.rows, i.cols, &i.values), i.wants_grad)).collect();
    let out = f(&mut g, &vars);
    let (r, c) = g.shape(out);
    let mut wrng = HostRng::new(seed, 99);
    let weights = randn(&mut wrng, r * c, 1.0);
    let grads = g.backward_with(out, Tensor::from_slice(&dev, r, c, &weights));

    let h = 1e-6;
    let mut inputs = inputs;
    for k in 0..inputs.len() {
        if !inputs[k].wants_grad {
            continue;
        }
        let analytic = grads.wrt(vars[k]).map(|t| t.to_f64_vec()).unwrap_or_else(|| vec![0.0; inputs[k].values.len()]);
        for j in 0..inputs[k].values.len() {
            let x0 = inputs[k].values[j];
            inputs[k].values[j] = x0 + h;
            let fp = weighted_output(&f, &inputs, &weights);
            inputs[k].values[j] = x0 - h;
            let fm = weighted_output(&f, &inputs, &weights);
            inputs[k].values[j] = x0;
            let numeric = (fp - fm) / (2.0 * h);
            let a = analytic[j];
            let tol = 1e-6 + 1e-5 * a.abs().max(numeric.abs());
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: d/d input{k}[{j}]: tape {a:.10e} vs finite difference {numeric:.10e} (seed {seed})"
            );
        }
    }
}
