//! Every differentiable op's backward against central finite differences (f64), on fresh random
//! inputs and awkward shapes: one row, odd sizes, K = 1, broadcast periods.

mod common;

use std::sync::Arc;

use cagem_autodiff::{Axis, BnMode, Device, Indices, RngStream, Tensor};
use common::{Input, check_gradients, randn, rng};

#[test]
fn linear_multi_term_with_bias() {
    for (rows, a, b, out) in [(5, 3, 2, 4), (1, 7, 1, 3), (9, 1, 5, 1)] {
        let (mut r, seed) = rng();
        let inputs = vec![
            Input::random(&mut r, rows, a),
            Input::random(&mut r, a, out),
            Input::random(&mut r, rows, b),
            Input::random(&mut r, b, out),
            Input::random(&mut r, 1, out),
        ];
        check_gradients("linear", seed, inputs, |g, v| g.linear(&[(v[0], v[1]), (v[2], v[3])], Some(v[4])));
    }
}

#[test]
fn matmul_without_bias_and_constant_input() {
    let (mut r, seed) = rng();
    let inputs = vec![Input::random(&mut r, 6, 5).constant(), Input::random(&mut r, 5, 3)];
    check_gradients("matmul", seed, inputs, |g, v| g.matmul(v[0], v[1]));
}

#[test]
fn batch_norm_training_mode() {
    for (rows, cols, relu) in [(8, 5, true), (7, 3, false), (2, 1, true), (1, 4, false), (33, 6, true)] {
        let (mut r, seed) = rng();
        let inputs = vec![
            Input::new(rows, cols, randn(&mut r, rows * cols, 2.0).iter().map(|v| v + 1.5).collect()),
            Input::new(1, cols, randn(&mut r, cols, 1.0).iter().map(|v| v + 1.0).collect()),
            Input::random(&mut r, 1, cols),
        ];
        check_gradients("batch_norm train", seed, inputs, move |g, v| {
            g.batch_norm(v[0], v[1], v[2], BnMode::Train { running: None, momentum: 0.1, weights: None }, 1e-5, relu)
        });
    }
}

#[test]
fn batch_norm_training_mode_with_row_weights() {
    for (rows, cols, relu) in [(8, 5, true), (7, 3, false), (2, 1, true), (1, 4, false), (33, 6, true)] {
        let (mut r, seed) = rng();
        // Constant weights of mean 1 (no gradient flows to them).
        let raw: Vec<f64> = randn(&mut r, rows, 1.0).iter().map(|v| v.abs() + 0.1).collect();
        let sum: f64 = raw.iter().sum();
        let w: Vec<f64> = raw.iter().map(|v| v * rows as f64 / sum).collect();
        let weights = Tensor::from_f64(&Device::Cpu, rows, 1, &w);
        let inputs = vec![
            Input::new(rows, cols, randn(&mut r, rows * cols, 2.0).iter().map(|v| v + 1.5).collect()),
            Input::new(1, cols, randn(&mut r, cols, 1.0).iter().map(|v| v + 1.0).collect()),
            Input::random(&mut r, 1, cols),
        ];
        check_gradients("batch_norm train, weighted rows", seed, inputs, move |g, v| {
            let mode = BnMode::Train { running: None, momentum: 0.1, weights: Some(&weights) };
            g.batch_norm(v[0], v[1], v[2], mode, 1e-5, relu)
        });
    }
}

#[test]
fn batch_norm_inference_mode() {
    for (rows, cols, relu) in [(6, 5, true), (1, 3, false)] {
        let (mut r, seed) = rng();
        let dev = Device::Cpu;
        let mean = Tensor::from_f64(&dev, 1, cols, &randn(&mut r, cols, 1.0));
        let var =
            Tensor::from_f64(&dev, 1, cols, &randn(&mut r, cols, 1.0).iter().map(|v| v * v + 0.5).collect::<Vec<_>>());
        let inputs =
            vec![Input::random(&mut r, rows, cols), Input::random(&mut r, 1, cols), Input::random(&mut r, 1, cols)];
        check_gradients("batch_norm eval", seed, inputs, move |g, v| {
            g.batch_norm(v[0], v[1], v[2], BnMode::Eval { mean: &mean, var: &var }, 1e-5, relu)
        });
    }
}

#[test]
fn reparameterize_full_and_broadcast() {
    for (rows, mu_rows, cols) in [(4, 4, 3), (6, 2, 5), (5, 1, 1), (1, 1, 7)] {
        let (mut r, seed) = rng();
        let inputs = vec![Input::random(&mut r, mu_rows, cols), Input::random(&mut r, mu_rows, cols)];
        let stream = RngStream::new(seed, 3);
        check_gradients("reparameterize", seed, inputs, move |g, v| g.reparameterize(v[0], v[1], rows, stream));
    }
}

#[test]
fn diag_gaussian_logpdf_with_broadcasts() {
    // (z rows, mu rows, logvar rows): every argument takes a turn at being repeated.
    for (zr, mr, lr, cols) in [(4, 4, 4, 3), (2, 6, 6, 5), (6, 3, 6, 2), (6, 6, 1, 4), (1, 1, 1, 1)] {
        let (mut r, seed) = rng();
        let inputs =
            vec![Input::random(&mut r, zr, cols), Input::random(&mut r, mr, cols), Input::random(&mut r, lr, cols)];
        check_gradients("diag_gaussian_logpdf", seed, inputs, |g, v| g.diag_gaussian_logpdf(v[0], v[1], v[2]));
    }
}

#[test]
fn logvar_outside_the_clamp_gets_no_gradient() {
    // Entries with λ < −30 get z − μ ≈ 1e-7 so that (z − μ)²·e^{30} stays O(0.1) and the finite
    // differences are not swamped; their λ-gradient must be exactly zero, as for λ > 30.
    let (_, seed) = rng();
    let z = vec![0.5, 0.2, -0.3, 1.0, 0.7, 0.1];
    let mu = vec![0.5 + 1e-7, 0.0, 0.2, 1.0 - 1e-7, 0.3, -0.4];
    let lv = vec![-40.0, 45.0, 0.3, -35.0, 0.1, 50.0];
    let inputs = vec![Input::new(2, 3, z).constant(), Input::new(2, 3, mu).constant(), Input::new(2, 3, lv)];
    check_gradients("clamped logvar", seed, inputs, |g, v| g.diag_gaussian_logpdf(v[0], v[1], v[2]));
}

#[test]
fn std_normal_logpdf() {
    for (rows, cols) in [(5, 3), (1, 1), (3, 8)] {
        let (mut r, seed) = rng();
        check_gradients("std_normal_logpdf", seed, vec![Input::random(&mut r, rows, cols)], |g, v| {
            g.std_normal_logpdf(v[0])
        });
    }
}

#[test]
fn bernoulli_loglik_with_repeated_targets() {
    for (rows, x_rows, cols) in [(6, 3, 5), (4, 4, 1), (1, 1, 9)] {
        let (mut r, seed) = rng();
        let x: Vec<f64> = (0..x_rows * cols).map(|_| if r.next_f64() < 0.4 { 1.0 } else { 0.0 }).collect();
        let logits: Vec<f64> = randn(&mut r, rows * cols, 3.0);
        let inputs = vec![Input::new(rows, cols, logits), Input::new(x_rows, cols, x).constant()];
        check_gradients("bernoulli_loglik", seed, inputs, |g, v| g.bernoulli_loglik(v[0], v[1]));
    }
}

#[test]
fn softmax_and_log_softmax() {
    for (rows, cols) in [(4, 5), (3, 1), (1, 10)] {
        let (mut r, seed) = rng();
        check_gradients("softmax", seed, vec![Input::random(&mut r, rows, cols)], |g, v| g.softmax(v[0]));
        check_gradients("log_softmax", seed, vec![Input::random(&mut r, rows, cols)], |g, v| g.log_softmax(v[0]));
    }
}

#[test]
fn logsumexp_along_both_axes() {
    for (rows, cols) in [(4, 5), (1, 7), (6, 1)] {
        let (mut r, seed) = rng();
        check_gradients("logsumexp row", seed, vec![Input::random(&mut r, rows, cols)], |g, v| {
            g.logsumexp(v[0], Axis::AlongRow)
        });
        check_gradients("logsumexp col", seed, vec![Input::random(&mut r, rows, cols)], |g, v| {
            g.logsumexp(v[0], Axis::DownColumn)
        });
    }
}

#[test]
fn sums_means_and_folds() {
    let (mut r, seed) = rng();
    check_gradients("sum_rows", seed, vec![Input::random(&mut r, 5, 3)], |g, v| g.sum_rows(v[0]));
    check_gradients("sum", seed, vec![Input::random(&mut r, 3, 4)], |g, v| g.sum(v[0]));
    check_gradients("mean", seed, vec![Input::random(&mut r, 1, 1)], |g, v| g.mean(v[0]));
    check_gradients("fold_rows", seed, vec![Input::random(&mut r, 6, 3)], |g, v| g.fold_rows(v[0], 2));
    check_gradients("fold_rows to one", seed, vec![Input::random(&mut r, 7, 2)], |g, v| g.fold_rows(v[0], 1));
}

#[test]
fn tiling_and_broadcast_add() {
    let (mut r, seed) = rng();
    check_gradients("tile_rows", seed, vec![Input::random(&mut r, 3, 4)], |g, v| g.tile_rows(v[0], 5));
    check_gradients("tile_rows once", seed, vec![Input::random(&mut r, 1, 1)], |g, v| g.tile_rows(v[0], 1));
    let inputs = vec![Input::random(&mut r, 6, 3), Input::random(&mut r, 2, 3)];
    check_gradients("add_tiled", seed, inputs, |g, v| g.add_tiled(v[0], v[1]));
}

#[test]
fn gather_add_rows_and_pick() {
    for (b, k, cols) in [(3, 4, 5), (1, 1, 2), (5, 2, 1)] {
        let (mut r, seed) = rng();
        let dev = Device::Cpu;
        // Cluster-major rows: row k·B + b takes table row k.
        let idx: Vec<u32> = (0..k * b).map(|row| (row / b) as u32).collect();
        let idx = Arc::new(Indices::new(&dev, &idx));
        let inputs = vec![Input::random(&mut r, b, cols), Input::random(&mut r, k, cols)];
        let i2 = idx.clone();
        check_gradients("gather_add_rows", seed, inputs, move |g, v| g.gather_add_rows(v[0], v[1], &i2));
        // Arbitrary indices, repeated and missing.
        let idx: Vec<u32> = (0..k * b).map(|_| r.below(cols as u64) as u32).collect();
        let idx = Arc::new(Indices::new(&dev, &idx));
        check_gradients("pick", seed, vec![Input::random(&mut r, k * b, cols)], move |g, v| g.pick(v[0], &idx));
    }
}

#[test]
fn elementwise_arithmetic() {
    let (mut r, seed) = rng();
    let two = || vec![Input::random(&mut rng().0, 4, 3), Input::random(&mut rng().0, 4, 3)];
    check_gradients("add", seed, two(), |g, v| g.add(v[0], v[1]));
    check_gradients("sub", seed, two(), |g, v| g.sub(v[0], v[1]));
    check_gradients("mul", seed, two(), |g, v| g.mul(v[0], v[1]));
    check_gradients("mul by itself", seed, vec![Input::random(&mut r, 2, 5)], |g, v| g.mul(v[0], v[0]));
    check_gradients("scale", seed, vec![Input::random(&mut r, 3, 3)], |g, v| g.scale(v[0], -2.5));
}

#[test]
fn reshape_and_transpose() {
    let (mut r, seed) = rng();
    check_gradients("reshape", seed, vec![Input::random(&mut r, 3, 4)], |g, v| g.reshape(v[0], 2, 6));
    check_gradients("transpose", seed, vec![Input::random(&mut r, 3, 5)], |g, v| g.transpose(v[0]));
}

#[test]
fn detach_cuts_the_gradient() {
    // y = Σ x∘x + Σ detach(x)∘w: dy/dx = 2x exactly; nothing flows through the detached copy.
    let (mut r, _) = rng();
    let dev = Device::Cpu;
    let xs = randn(&mut r, 6, 1.0);
    let mut g = cagem_autodiff::Graph::<f64>::new(&dev);
    let x = g.leaf(Tensor::from_f64(&dev, 2, 3, &xs), true);
    let w = g.constant(Tensor::from_f64(&dev, 2, 3, &randn(&mut r, 6, 1.0)));
    let sq = g.mul(x, x);
    let d = g.detach(x);
    assert!(!g.requires_grad(d));
    let dw = g.mul(d, w);
    let t = g.add(sq, dw);
    let y = g.sum(t);
    let grads = g.backward(y);
    let gx = grads.wrt(x).unwrap().to_f64_vec();
    for (a, b) in gx.iter().zip(&xs) {
        assert_eq!(*a, 2.0 * b);
    }
}

#[test]
fn composed_ops_share_inputs() {
    // A small network: shared input through two branches, batch norm, softmax, logsumexp.
    let (mut r, seed) = rng();
    let inputs = vec![
        Input::random(&mut r, 6, 4),
        Input::random(&mut r, 4, 5),
        Input::new(1, 5, vec![1.0, 1.2, 0.8, 1.1, 0.9]),
        Input::random(&mut r, 1, 5),
        Input::random(&mut r, 5, 3),
    ];
    check_gradients("composed", seed, inputs, |g, v| {
        let h = g.matmul(v[0], v[1]);
        let h = g.batch_norm(h, v[2], v[3], BnMode::Train { running: None, momentum: 0.1, weights: None }, 1e-5, true);
        let o = g.matmul(h, v[4]);
        let ls = g.log_softmax(o);
        let s = g.softmax(o);
        let m = g.mul(ls, s);
        let t = g.transpose(m);
        g.logsumexp(t, Axis::DownColumn)
    });
}
