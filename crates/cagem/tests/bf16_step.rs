//! One whole training step with bf16 matrix products against the same step in f64 (and f32):
//! the same model, batches and noise give the loss and every parameter's gradient within
//! tolerances set by bf16's 8-bit significand. Skips (printing why) without oneDNN or a
//! bf16-capable CPU; fails instead under CAGEM_REQUIRE_BF16=1.

mod step;

use cagem::ModelConfig;
use cagem::model::objective::LossWeights;
use cagem::model::{Cagem, NoiseStreams};
use cagem::train::train_step;
use cagem_autodiff::{Adam, Device, Graph, Real, Tensor};
use cagem_kernels::gemm::Precision;
use cagem_kernels::onednn;
use cagem_kernels::rng::HostRng;
use step::{loss_and_grads, rel_l2};

struct StepResult {
    loss: f64,
    grads: Vec<(String, Vec<f64>)>,
}

fn run_step<T: Real>(cfg: &ModelConfig, p: Precision, xu: &[f64], xl: &[f64], yl: &[u32]) -> StepResult {
    let device = Device::Cpu;
    let mut model = Cagem::<T>::new(cfg.clone(), 11, &device);
    let mut g = Graph::<T>::new(&device);
    g.set_precision(p);
    let (loss, grads) = loss_and_grads(&mut model, &mut g, &device, (xu, xl, yl));
    StepResult { loss, grads }
}

fn data(cfg: &ModelConfig, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let mut rng = HostRng::new(seed, 0);
    let mut bits =
        |n: usize| -> Vec<f64> { (0..n * cfg.x_dim).map(|_| if rng.next_f64() < 0.13 { 1.0 } else { 0.0 }).collect() };
    let (xu, xl) = (bits(64), bits(20));
    (xu, xl, (0..20).map(|i| (i % 10) as u32).collect())
}

#[test]
fn bf16_training_step_matches_f64() {
    if onednn::for_test("bf16_training_step_matches_f64").is_none() {
        return;
    }
    // Hidden widths of a few hundred, so that the products' inner dimensions are realistic.
    let cfg = ModelConfig { z1: 16, z2: 8, q_hidden: [256, 128], p_hidden: [128, 256], ..ModelConfig::default() };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let (xu, xl, yl) = data(&cfg, seed);
    let exact = run_step::<f64>(&cfg, Precision::F32, &xu, &xl, &yl);
    let f32 = run_step::<f32>(&cfg, Precision::F32, &xu, &xl, &yl);
    let bf16 = run_step::<f32>(&cfg, Precision::Bf16, &xu, &xl, &yl);
    let rel = |a: f64| (a - exact.loss).abs() / exact.loss.abs();
    eprintln!(
        "loss: f64 {} f32 {} (rel {:.1e}) bf16 {} (rel {:.1e})",
        exact.loss,
        f32.loss,
        rel(f32.loss),
        bf16.loss,
        rel(bf16.loss)
    );
    // bf16 rounding of every product's inputs (u = 2⁻⁸) moves the loss by ≈ 1e-5 relative.
    assert!(rel(bf16.loss) <= 1e-3, "bf16 loss {} against {} (seed {seed})", bf16.loss, exact.loss);
    assert_eq!(bf16.grads.len(), exact.grads.len(), "different parameters received gradients");
    // Gradients of the lower layers are sums with cancellation (batch norm removes the batch mean
    // of what flows back through it), so bf16's rounding shows more there: measured 1e-3..1e-1
    // relative L2 over many seeds, the output heads at ≈ 1e-3. The bounds leave 2.5× room.
    let (mut worst, mut sum) = ((0.0, String::new()), 0.0);
    for ((name, e), ((n32, g32), (n16, g16))) in exact.grads.iter().zip(f32.grads.iter().zip(&bf16.grads)) {
        assert!(name == n32 && name == n16);
        let (e32, e16) = (rel_l2(g32, e), rel_l2(g16, e));
        if e16 > worst.0 {
            worst = (e16, name.clone());
        }
        sum += e16;
        // f32 too loses digits in those sums: up to 2.4e-3 (p_x.l0.bn.beta) measured in 40 seeds.
        assert!(e32 <= 1e-2, "f32 gradient of {name} differs by {e32:.2e} (seed {seed})");
        assert!(e16 <= 0.25, "bf16 gradient of {name} differs by {e16:.2e} (relative L2, seed {seed})");
    }
    let mean = sum / exact.grads.len() as f64;
    eprintln!("bf16 gradients: mean relative L2 {mean:.2e}, worst {} at {:.2e}", worst.1, worst.0);
    assert!(mean <= 0.08, "bf16 gradients differ by {mean:.2e} on average (seed {seed})");
}

/// One dense layer's forward and both backward products in bf16 against f64, element by element
/// within the rounding bound (inputs rounded to bf16: |err| ≤ 2·2⁻⁸·Σ|a||b| plus f32 sums): checks
/// which operand goes where in the backward products.
#[test]
fn bf16_linear_layer_against_f64() {
    if onednn::for_test("bf16_linear_layer_against_f64").is_none() {
        return;
    }
    let dev = Device::Cpu;
    let (m, k, n) = (37, 53, 29);
    let mut rng = HostRng::new(17, 0);
    let mut normal = |len: usize| -> Vec<f64> { (0..len).map(|_| rng.normal()).collect() };
    let (x, w, seed_g) = (normal(m * k), normal(k * n), normal(m * n));
    let run = |p: Precision| -> [Vec<f64>; 3] {
        let mut g = Graph::<f32>::new(&dev);
        g.set_precision(p);
        let xv = g.leaf(Tensor::from_f64(&dev, m, k, &x), true);
        let wv = g.leaf(Tensor::from_f64(&dev, k, n, &w), true);
        let y = g.matmul(xv, wv);
        let grads = g.backward_with(y, Tensor::from_f64(&dev, m, n, &seed_g));
        [g.value(y).to_f64_vec(), grads.wrt(xv).unwrap().to_f64_vec(), grads.wrt(wv).unwrap().to_f64_vec()]
    };
    let [y, dx, dw] = run(Precision::Bf16);
    let u = 2.0 * 2f64.powi(-8) + 2f64.powi(-16) + (m.max(n).max(k) as f64 + 2.0) * 2f64.powi(-23);
    // got[i, j] against Σ_p A(i, p)·B(p, j) for a rows × cols result.
    let check = |what: &str,
                 (rows, cols, inner): (usize, usize, usize),
                 a: &dyn Fn(usize, usize) -> f64,
                 b: &dyn Fn(usize, usize) -> f64,
                 got: &[f64]| {
        for i in 0..rows {
            for j in 0..cols {
                let (mut want, mut mag) = (0.0, 0.0);
                for p in 0..inner {
                    want += a(i, p) * b(p, j);
                    mag += (a(i, p) * b(p, j)).abs();
                }
                let err = (got[i * cols + j] - want).abs();
                assert!(
                    err <= u * mag + 1e-6 * want.abs(),
                    "{what}[{i},{j}]: {} against {want} (bound {})",
                    got[i * cols + j],
                    u * mag
                );
            }
        }
    };
    check("y = x·W", (m, n, k), &|i, p| x[i * k + p], &|p, j| w[p * n + j], &y);
    check("dx = g·Wᵀ", (m, k, n), &|i, p| seed_g[i * n + p], &|p, j| w[j * n + p], &dx);
    check("dW = xᵀ·g", (k, n, m), &|i, p| x[p * k + i], &|p, j| seed_g[p * n + j], &dw);
}

/// `train_step` uses the model's precision, and a bf16 step stays close to an f32 one.
#[test]
fn train_step_runs_in_the_models_precision() {
    if onednn::for_test("train_step_runs_in_the_models_precision").is_none() {
        return;
    }
    let cfg = ModelConfig { z1: 8, z2: 4, q_hidden: [96, 48], p_hidden: [48, 96], ..ModelConfig::default() };
    let (xu, xl, yl) = data(&cfg, 3);
    let dev = Device::Cpu;
    let widened_before = cagem_autodiff::tensor::widened_count();
    let losses = [Precision::F32, Precision::Bf16].map(|p| {
        let mut model = Cagem::<f32>::new(cfg.clone(), 11, &dev);
        model.set_precision(p);
        let mut adam = Adam::new();
        let mut noise = NoiseStreams::new(5);
        let (u, l) = (Tensor::from_f64(&dev, 64, cfg.x_dim, &xu), Tensor::from_f64(&dev, 20, cfg.x_dim, &xl));
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(
                train_step(&mut model, &mut adam, &u, Some((&l, &yl)), LossWeights::paper(0.6, 3.0), 1e-3, &mut noise)
                    .unwrap()
                    .loss,
            );
        }
        // Under bf16, Adam leaves every updated weight with its bf16 copy, exactly its rounding.
        for (_, e) in model.store.iter().filter(|(_, e)| e.trainable) {
            match (p, e.value.bf16()) {
                (Precision::F32, b) => assert!(b.is_none(), "{}: a bf16 copy in an f32 run", e.name),
                (_, None) => panic!("{}: no bf16 copy after a bf16 step", e.name),
                (_, Some(b)) => {
                    let want: Vec<u16> = e.value.to_vec().iter().map(|&x| cagem_kernels::bf16::from_f32(x)).collect();
                    assert_eq!(&b[..], &want[..], "{}: stale bf16 copy", e.name);
                }
            }
        }
        out
    });
    // Batch norm writes its outputs and dx only in bf16 for the products that read them; nothing
    // else may read them as f32 (that would widen them: a hidden pass, and rounded values).
    let widened = cagem_autodiff::tensor::widened_count() - widened_before;
    assert_eq!(widened, 0, "a bf16 training step read {widened} bf16-only tensors as f32");
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!(a != b, "the bf16 step gave the f32 loss bit for bit: bf16 products did not run");
        assert!((a - b).abs() <= 1e-2 * a.abs(), "f32 loss {a}, bf16 loss {b}");
    }
}
