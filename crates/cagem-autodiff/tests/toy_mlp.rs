//! End to end: a two-hidden-layer MLP with batch norm + ReLU, trained through the tape with Adam
//! on three interleaved spirals, must drive its cross-entropy below a threshold and classify
//! held-out points well in inference mode (running statistics).

use std::sync::Arc;

use cagem_autodiff::{Adam, BnMode, Device, Graph, Indices, ParamId, ParamStore, Tensor};
use cagem_kernels::gemm::Precision;
use cagem_kernels::rng::HostRng;

const CLASSES: usize = 3;

fn spirals(n_per_class: usize, rng: &mut HostRng) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..CLASSES {
        for i in 0..n_per_class {
            let r = i as f64 / n_per_class as f64;
            let t = c as f64 * 2.094 + r * 4.0 + rng.normal() * 0.15;
            x.push((r * t.sin()) as f32);
            x.push((r * t.cos()) as f32);
            y.push(c as u32);
        }
    }
    (x, y)
}

struct Mlp {
    w: [ParamId; 3],
    b_out: ParamId,
    gamma: [ParamId; 2],
    beta: [ParamId; 2],
    run_mean: [ParamId; 2],
    run_var: [ParamId; 2],
}

impl Mlp {
    fn new(store: &mut ParamStore<f32>, dev: &Device, rng: &mut HostRng) -> Self {
        let mut dense = |name: &str, i: usize, o: usize| {
            let s = (2.0 / i as f64).sqrt();
            let v: Vec<f64> = (0..i * o).map(|_| rng.normal() * s).collect();
            store.add(name, Tensor::from_f64(dev, i, o, &v), true)
        };
        let w = [dense("w0", 2, 64), dense("w1", 64, 64), dense("w2", 64, CLASSES)];
        let mut vec =
            |name: &str, n: usize, v: f32, trainable: bool| store.add(name, Tensor::full(dev, 1, n, v), trainable);
        Mlp {
            w,
            b_out: vec("b2", CLASSES, 0.0, true),
            gamma: [vec("g0", 64, 1.0, true), vec("g1", 64, 1.0, true)],
            beta: [vec("be0", 64, 0.0, true), vec("be1", 64, 0.0, true)],
            run_mean: [vec("rm0", 64, 0.0, false), vec("rm1", 64, 0.0, false)],
            run_var: [vec("rv0", 64, 1.0, false), vec("rv1", 64, 1.0, false)],
        }
    }

    fn logits(
        &self,
        g: &mut Graph<f32>,
        store: &mut ParamStore<f32>,
        x: &Tensor<f32>,
        train: bool,
    ) -> cagem_autodiff::Var {
        let mut h = g.constant(x.clone());
        for l in 0..2 {
            let w = g.param(store, self.w[l]);
            let a = g.matmul(h, w);
            let (gm, bt) = (g.param(store, self.gamma[l]), g.param(store, self.beta[l]));
            h = if train {
                let (mut m, mut v) = (store.get(self.run_mean[l]).clone(), store.get(self.run_var[l]).clone());
                let out = g.batch_norm(
                    a,
                    gm,
                    bt,
                    BnMode::Train { running: Some((&mut m, &mut v)), momentum: 0.1, weights: None },
                    1e-5,
                    true,
                );
                *store.get_mut(self.run_mean[l]) = m;
                *store.get_mut(self.run_var[l]) = v;
                out
            } else {
                let (m, v) = (store.get(self.run_mean[l]).clone(), store.get(self.run_var[l]).clone());
                g.batch_norm(a, gm, bt, BnMode::Eval { mean: &m, var: &v }, 1e-5, true)
            };
        }
        let (w, b) = (g.param(store, self.w[2]), g.param(store, self.b_out));
        g.linear(&[(h, w)], Some(b))
    }
}

#[test]
fn mlp_with_batch_norm_learns_spirals() {
    let dev = Device::Cpu;
    let mut rng = HostRng::new(2024, 0);
    let (xs, ys) = spirals(200, &mut rng);
    let (xt, yt) = spirals(100, &mut rng);
    let n = ys.len();
    let x = Tensor::from_slice(&dev, n, 2, &xs);
    let labels = Arc::new(Indices::new(&dev, &ys));

    let mut store = ParamStore::new();
    let mlp = Mlp::new(&mut store, &dev, &mut rng);
    let mut adam = Adam::new();
    let mut loss = f32::INFINITY;
    for _ in 0..400 {
        let mut g = Graph::new(&dev);
        let logits = mlp.logits(&mut g, &mut store, &x, true);
        let logp = g.log_softmax(logits);
        let picked = g.pick(logp, &labels);
        let mean = g.mean(picked);
        let nll = g.scale(mean, -1.0);
        loss = g.value(nll).scalar();
        let grads = g.backward(nll);
        drop(g);
        adam.step(&mut store, &grads, 1e-2, Precision::F32);
    }
    eprintln!("final loss {loss}");
    assert!(loss < 0.15, "training cross-entropy {loss} did not fall below 0.15");

    let mut g = Graph::new(&dev);
    g.set_grad_enabled(false);
    let logits = mlp.logits(&mut g, &mut store, &Tensor::from_slice(&dev, yt.len(), 2, &xt), false);
    let l = g.value(logits).to_vec();
    let correct = yt
        .iter()
        .enumerate()
        .filter(|&(i, &y)| {
            let row = &l[i * CLASSES..(i + 1) * CLASSES];
            let best = (0..CLASSES).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            best as u32 == y
        })
        .count();
    let acc = correct as f64 / yt.len() as f64;
    eprintln!("acc {acc}");
    assert!(acc > 0.9, "held-out accuracy with running statistics {acc} ≤ 0.9");
}
