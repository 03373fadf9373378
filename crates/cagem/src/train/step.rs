//! One optimisation step on given batches.

use cagem_autodiff::{Adam, Graph, Real, Tensor};

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
/// batch. Fails (before updating anything) if the loss is not finite.
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
    g.set_precision(model.precision);
    let xu = g.constant(x_u.clone());
    let lab = labelled.map(|(x, y)| Labelled { x: g.constant(x.clone()), y });
    let l = semi_supervised_loss(model, &mut g, xu, lab, temperature, alpha, noise);
    let scalar = |v| g.value(v).scalar().as_f64();
    let s = StepScalars {
        loss: scalar(l.loss),
        elbo: scalar(l.elbo),
        recon: scalar(l.recon),
        neg_kl: scalar(l.neg_kl),
        hp: l.hp.map(scalar),
        hq: l.hq.map(scalar),
    };
    if !s.loss.is_finite() {
        return Err(Error::Diverged(format!(
            "the loss became {} (ELBO {}, H_p {:?}, H_q {:?}); try a lower --lr or another --seed",
            s.loss, s.elbo, s.hp, s.hq
        )));
    }
    let grads = g.backward(l.loss);
    drop(g); // frees the activations and makes the parameters unique for in-place updates
    let t0 = std::time::Instant::now();
    adam.bf16_weights = model.precision == cagem_kernels::gemm::Precision::Bf16;
    adam.step(&mut model.store, &grads, lr);
    drop(grads);
    if cagem_autodiff::profile::enabled() {
        dev.synchronize();
        cagem_autodiff::profile::add_backward("adam", t0.elapsed());
        cagem_autodiff::profile::restart_clock();
    }
    Ok(s)
}
