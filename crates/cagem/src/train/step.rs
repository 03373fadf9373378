//! One optimisation step on given batches.

use cagem_autodiff::{Adam, Graph, Real, Tensor};
use cagem_kernels::Buffer;

use crate::error::{Error, Result};
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
}

/// Forward, backward and an Adam update on an unlabelled batch `x_u` and an optional labelled
/// batch. Fails if the loss is not finite; the update has then been applied (the scalars are
/// read after it), so the caller must not keep or save the model (`Run::train` returns before
/// its checkpoint).
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
    let mut g = Graph::new(&dev);
    let xu = g.constant(x_u.clone());
    let lab = labelled.map(|(x, y)| Labelled { x: g.constant(x.clone()), y });
    let l = semi_supervised_loss(model, &mut g, xu, lab, temperature, alpha, noise);
    // Gathered on the device now, read after the update in one transfer: a blocking read of each
    // scalar here would leave the GPU idle while the host queues the backward pass.
    let vars: Vec<_> = [l.loss, l.elbo, l.recon, l.neg_kl].into_iter().chain(l.hp).chain(l.hq).collect();
    let parts: Vec<&Buffer<T>> = vars.iter().map(|&v| g.value(v).buf()).collect();
    debug_assert!(parts.iter().all(|b| b.len() == 1), "the step's scalars are 1×1");
    let scalars = Buffer::concat(&dev, &parts);
    let grads = g.backward(l.loss);
    drop(g); // frees the activations and makes the parameters unique for in-place updates
    let t0 = std::time::Instant::now();
    adam.step(&mut model.store, &grads, lr);
    drop(grads);
    if cagem_autodiff::profile::enabled() {
        dev.synchronize();
        cagem_autodiff::profile::add_backward("adam", t0.elapsed());
        cagem_autodiff::profile::restart_clock();
    }
    let v: Vec<f64> = scalars.to_vec().into_iter().map(|x| x.as_f64()).collect();
    let mut extra = v[4..].iter().copied(); // H_p, then H_q, each where the batch has them
    let hp = l.hp.and_then(|_| extra.next());
    let hq = l.hq.and_then(|_| extra.next());
    let s = StepScalars { loss: v[0], elbo: v[1], recon: v[2], neg_kl: v[3], hp, hq };
    if !s.loss.is_finite() {
        return Err(Error::Diverged(format!(
            "the loss became {} (ELBO {}, H_p {:?}, H_q {:?}); try a lower --lr or another --seed",
            s.loss, s.elbo, s.hp, s.hq
        )));
    }
    Ok(s)
}
