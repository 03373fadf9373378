//! The semi-supervised objective of appendix B, as a loss to minimise per training step:
//!   loss = −mean_u F_T(x_u) + α·mean_l [H_p(x_l, y_l) + H_q(x_l, y_l)]
//! F_T is the ELBO with every term but log p(x|y,z1) scaled by the KL temperature T (warm-up;
//! with the deviation kl-warmup-gaussian-only, every Gaussian term).
//! Batch-norm running statistics are collected on the unlabelled pass only.

use cagem_autodiff::{Graph, Real, Var};

use super::cagem::Cagem;
use super::noise::NoiseStreams;
use crate::deviation::ObjectiveDeviations;
use crate::nn::BnUse;

/// A labelled batch: images (on the graph) and their classes.
pub struct Labelled<'a> {
    pub x: Var,
    pub y: &'a [u32],
}

/// The scalars of one step (1 × 1 each).
pub struct StepLosses {
    /// What the optimiser minimises.
    pub loss: Var,
    /// mean F at temperature 1 (the true ELBO, for logging).
    pub elbo: Var,
    /// mean Σ_y q(y) log p(x|y,z1).
    pub recon: Var,
    /// mean of the remaining (negative KL) part of F.
    pub neg_kl: Var,
    /// mean H_p and H_q over the labelled batch.
    pub hp: Option<Var>,
    pub hq: Option<Var>,
}

/// The weights of the step's terms.
#[derive(Clone, Copy, Debug)]
pub struct LossWeights {
    /// The KL temperature T of the warm-up.
    pub temperature: f64,
    /// α, the weight of the labelled cross-entropies.
    pub alpha: f64,
    pub deviations: ObjectiveDeviations,
}

impl LossWeights {
    /// The paper's objective at temperature T and labelled weight α.
    pub fn paper(temperature: f64, alpha: f64) -> Self {
        LossWeights { temperature, alpha, deviations: ObjectiveDeviations::default() }
    }
}

/// Builds the step's loss on `g`.
pub fn semi_supervised_loss<T: Real>(
    model: &mut Cagem<T>,
    g: &mut Graph<T>,
    x_u: Var,
    labelled: Option<Labelled<'_>>,
    w: LossWeights,
    noise: &mut NoiseStreams,
) -> StepLosses {
    let (temperature, alpha, dev) = (w.temperature, w.alpha, w.deviations);
    let bn = BnUse::Train { update_running: true };
    let terms = model.elbo_terms(g, bn, x_u, dev, noise);
    let recon = g.mean(terms.recon);
    let neg_kl = g.mean(terms.neg_kl);
    let elbo = g.add(recon, neg_kl);
    let scaled_kl = g.scale(neg_kl, T::from_f64(temperature));
    let mut f_t = g.add(recon, scaled_kl);
    if let Some(cat) = terms.neg_kl_y {
        // Deviation: the categorical part at weight 1, F_T = recon + T·neg_kl + (1 − T)·cat.
        let cat = g.mean(cat);
        let cat = g.scale(cat, T::from_f64(1.0 - temperature));
        f_t = g.add(f_t, cat);
    }
    let mut loss = g.scale(f_t, -T::one());
    let (mut hp, mut hq) = (None, None);
    if let Some(l) = labelled {
        let (p, q) = model.classifier_terms(g, BnUse::Train { update_running: false }, l.x, l.y, dev, noise);
        let (mp, mq) = (g.mean(p), g.mean(q));
        let h = g.add(mp, mq);
        let h = g.scale(h, T::from_f64(alpha));
        loss = g.add(loss, h);
        hp = Some(mp);
        hq = Some(mq);
    }
    StepLosses { loss, elbo, recon, neg_kl, hp, hq }
}
