//! One optimisation step on given batches.

use cagem_autodiff::{Adam, ParamId, Real, Tensor};
use cagem_kernels::Buffer;

use crate::error::Result;
use crate::model::objective::{Labelled, LossWeights, semi_supervised_loss};
use crate::model::{Cagem, NoiseStreams};

/// The step's scalars (host copies, for logging).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepScalars {
    pub loss: f64,
    pub elbo: f64,
    pub recon: f64,
    pub neg_kl: f64,
    pub hp: Option<f64>,
    pub hq: Option<f64>,
    /// The loss or a gradient was NaN or ±∞, so the step was skipped: weights, batch-norm
    /// statistics, Adam's moments and step count are as they were before it.
    pub skipped: bool,
}

/// Forward, backward and an Adam update on an unlabelled batch `x_u` and an optional labelled
/// batch. A step whose loss or gradients are not finite changes nothing (`skipped`).
pub fn train_step<T: Real>(
    model: &mut Cagem<T>,
    adam: &mut Adam<T>,
    x_u: &Tensor<T>,
    labelled: Option<(&Tensor<T>, &[u32])>,
    weights: LossWeights,
    lr: f64,
    noise: &mut NoiseStreams,
) -> Result<StepScalars> {
    cagem_kernels::par::with_workers_awake(|| step(model, adam, x_u, labelled, weights, lr, noise))
}

fn step<T: Real>(
    model: &mut Cagem<T>,
    adam: &mut Adam<T>,
    x_u: &Tensor<T>,
    labelled: Option<(&Tensor<T>, &[u32])>,
    weights: LossWeights,
    lr: f64,
    noise: &mut NoiseStreams,
) -> Result<StepScalars> {
    let dev = x_u.device();
    // The forward pass folds batch statistics into the running ones in place; holding the old
    // tensors (shared, so the update copies them) lets a skipped step put them back.
    let running: Vec<(ParamId, Tensor<T>)> =
        model.store.iter().filter(|(_, e)| !e.trainable).map(|(id, e)| (id, e.value.clone())).collect();
    let restore = |model: &mut Cagem<T>, running: Vec<(ParamId, Tensor<T>)>| {
        for (id, t) in running {
            *model.store.get_mut(id) = t;
        }
    };
    let mut g = model.training_graph();
    let xu = g.constant(x_u.clone());
    let lab = labelled.map(|(x, y)| Labelled { x: g.constant(x.clone()), y });
    let l = semi_supervised_loss(model, &mut g, xu, lab, weights, noise);
    // Gathered on the device now and read in one transfer once backward is queued: a blocking
    // read of each scalar here would leave the GPU idle while the host queues the backward pass.
    // (Adam's gradient-norm check reads the device at that point anyway.)
    let vars: Vec<_> = [l.loss, l.elbo, l.recon, l.neg_kl].into_iter().chain(l.hp).chain(l.hq).collect();
    let parts: Vec<&Buffer<T>> = vars.iter().map(|&v| g.value(v).buf()).collect();
    debug_assert!(parts.iter().all(|b| b.len() == 1), "the step's scalars are 1×1");
    let scalars = Buffer::concat(&dev, &parts);
    let grads = g.backward(l.loss);
    drop(g); // frees the activations and makes the parameters unique for in-place updates
    let v: Vec<f64> = scalars.to_vec().into_iter().map(|x| x.as_f64()).collect();
    let mut extra = v[4..].iter().copied(); // H_p, then H_q, each where the batch has them
    let hp = l.hp.and_then(|_| extra.next());
    let hq = l.hq.and_then(|_| extra.next());
    let mut s = StepScalars { loss: v[0], elbo: v[1], recon: v[2], neg_kl: v[3], hp, hq, skipped: false };
    if !s.loss.is_finite() {
        drop(grads);
        restore(model, running);
        return Ok(StepScalars { skipped: true, ..s });
    }
    let t0 = std::time::Instant::now();
    let precision = model.precision();
    s.skipped = !adam.step(&mut model.store, &grads, lr, precision).applied;
    drop(grads);
    if s.skipped {
        restore(model, running);
    }
    if cagem_autodiff::profile::enabled() {
        dev.synchronize();
        cagem_autodiff::profile::add_backward("adam", t0.elapsed());
        cagem_autodiff::profile::restart_clock();
    }
    Ok(s)
}
