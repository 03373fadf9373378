//! One semi-supervised training step's loss and named gradients, and the relative L2 distance
//! they are compared by: shared by the step tests that hold one backend or precision against
//! another (bf16 against f64, CUDA against the CPU).
#![allow(dead_code)]

use cagem::model::objective::{Labelled, LossWeights, semi_supervised_loss};
use cagem::model::{Cagem, NoiseStreams};
use cagem_autodiff::{Device, Graph, Real, Tensor};

/// ‖got − want‖ / ‖want‖ (the absolute distance where want is zero).
pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let d: f64 = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum();
    let n: f64 = want.iter().map(|w| w * w).sum();
    if n > 0.0 { (d / n).sqrt() } else { d.sqrt() }
}

/// The loss of one step on unlabelled `xu` and labelled (`xl`, `yl`), with the paper's loss
/// weights and fixed noise streams, and every parameter's gradient by name (sorted).
pub fn loss_and_grads<T: Real>(
    model: &mut Cagem<T>,
    g: &mut Graph<T>,
    device: &Device,
    (xu, xl, yl): (&[f64], &[f64], &[u32]),
) -> (f64, Vec<(String, Vec<f64>)>) {
    let x_dim = model.cfg.x_dim;
    let u = g.constant(Tensor::from_f64(device, xu.len() / x_dim, x_dim, xu));
    let l = g.constant(Tensor::from_f64(device, xl.len() / x_dim, x_dim, xl));
    let mut noise = NoiseStreams::new(5);
    let s = semi_supervised_loss(model, g, u, Some(Labelled { x: l, y: yl }), LossWeights::paper(0.6, 3.0), &mut noise);
    let loss = g.value(s.loss).scalar().as_f64();
    let grads = g.backward(s.loss);
    let mut named: Vec<(String, Vec<f64>)> =
        grads.params().map(|(id, t)| (model.store.entry(id).name.clone(), t.to_f64_vec())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (loss, named)
}
