//! One optimisation step on given batches.

use cagem_autodiff::{Adam, Graph, ParamId, Real, Tensor};

use crate::error::Result;
use crate::model::objective::{Labelled, semi_supervised_loss};
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
    temperature: f64,
    alpha: f64,
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
    let mut g = Graph::new(&dev);
    let xu = g.constant(x_u.clone());
    let lab = labelled.map(|(x, y)| Labelled { x: g.constant(x.clone()), y });
    let l = semi_supervised_loss(model, &mut g, xu, lab, temperature, alpha, noise);
    let scalar = |v| g.value(v).scalar().as_f64();
    let mut s = StepScalars {
        loss: scalar(l.loss),
        elbo: scalar(l.elbo),
        recon: scalar(l.recon),
        neg_kl: scalar(l.neg_kl),
        hp: l.hp.map(scalar),
        hq: l.hq.map(scalar),
        skipped: false,
    };
    if !s.loss.is_finite() {
        drop(g);
        restore(model, running);
        return Ok(StepScalars { skipped: true, ..s });
    }
    let grads = g.backward(l.loss);
    drop(g); // frees the activations and makes the parameters unique for in-place updates
    let t0 = std::time::Instant::now();
    s.skipped = !adam.step(&mut model.store, &grads, lr).applied;
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
