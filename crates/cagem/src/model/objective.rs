//! The semi-supervised objective of appendix B, as a loss to minimise per training step:
//!   loss = −mean_u F_T(x_u) + α·mean_l [H_p(x_l, y_l) + H_q(x_l, y_l)]
//! F_T is the ELBO with every term but log p(x|y,z1) scaled by the KL temperature T (warm-up;
//! with the deviation kl-warmup-gaussian-only, every Gaussian term).
//! Batch-norm running statistics are collected on the unlabelled pass only.
//! The deviations (crate::deviation) that change the objective act here: routing-warmup and
//! --routing-floor reweight the branches of log p(y′|z2_y′), --log-py-weight scales that term,
//! --free-bits-y floors the categorical KL, --marginal-entropy-y adds the entropy of the batch's
//! mean q(y|z1,x), labelled-elbo adds −mean_l L_T(x_l, y_l); each is
//! absent from the graph when off.

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
    // The weight the temperature leaves on the categorical terms.
    let w_cat = if dev.kl_warmup_gaussian_only { 1.0 } else { temperature };
    if let Some(cat) = terms.neg_kl_y {
        let cat = g.mean(cat);
        if dev.kl_warmup_gaussian_only {
            // Deviation: the categorical part at weight 1, F_T = recon + T·neg_kl + (1 − T)·cat.
            let c = g.scale(cat, T::from_f64(1.0 - temperature));
            f_t = g.add(f_t, c);
        }
        if let Some(lambda) = dev.free_bits_y {
            // Deviation: the categorical KL enters as max(KL_y, λ): below λ its term is replaced
            // by the constant −λ, so no gradient pulls it lower.
            let kl_y = -g.value(cat).to_f64_vec()[0];
            if kl_y < lambda {
                let c = g.scale(cat, T::from_f64(-w_cat));
                f_t = g.add(f_t, c);
                let floor = cagem_autodiff::Tensor::full(g.device(), 1, 1, T::from_f64(-w_cat * lambda));
                let floor = g.constant(floor);
                f_t = g.add(f_t, floor);
            }
        }
    }
    if let Some(sums) = terms.log_py_sums {
        // Deviations: log p(y′|z2_y′) weighted by u/K + (1 − u)·q(y′|z1,x) instead of
        // q(y′|z1,x) (routing), and that term as a whole by W (--log-py-weight).
        let u = dev.routing_share(temperature).unwrap_or(0.0);
        let w = dev.log_py_weight.unwrap_or(1.0);
        if u > 0.0 {
            let uniform = g.mean(sums.uniform);
            let uniform = g.scale(uniform, T::from_f64(w_cat * w * u));
            f_t = g.add(f_t, uniform);
        }
        let extra = w * (1.0 - u) - 1.0;
        if extra != 0.0 {
            let weighted = g.mean(sums.weighted);
            let weighted = g.scale(weighted, T::from_f64(w_cat * extra));
            f_t = g.add(f_t, weighted);
        }
    }
    if let Some(lambda) = dev.marginal_entropy_y {
        // Deviation: + λ·H[q̄], q̄ = (1/B)·Σ_b q(y|z1,x_b). With S = Σ_b q(y|z1,x_b) and
        // log S = logsumexp_b log q(y|z1,x_b) (stable where S is tiny), H[q̄] = log B − (1/B)·Σ_k S_k log S_k.
        let b = g.shape(terms.qy).0;
        let s = g.fold_rows(terms.qy, 1);
        let log_s = g.logsumexp(terms.log_qy, cagem_autodiff::Axis::DownColumn);
        let s_log_s = g.mul(s, log_s);
        let s_log_s = g.sum(s_log_s);
        let h = g.scale(s_log_s, T::from_f64(-lambda / b as f64));
        let log_b = cagem_autodiff::Tensor::full(g.device(), 1, 1, T::from_f64(lambda * (b as f64).ln()));
        let log_b = g.constant(log_b);
        let h = g.add(h, log_b);
        f_t = g.add(f_t, h);
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
        if dev.labelled_elbo {
            // Deviation: the labelled ELBO, warm-up as for F, its batch mean at the weight of
            // the unlabelled batch mean.
            let bn = BnUse::Train { update_running: false };
            let t = model.labelled_elbo_terms(g, bn, l.x, l.y, noise);
            let recon = g.mean(t.recon);
            let neg_kl = g.mean(t.neg_kl);
            let neg_kl = g.scale(neg_kl, T::from_f64(temperature));
            let mut l_t = g.add(recon, neg_kl);
            if dev.kl_warmup_gaussian_only {
                let c = g.mean(t.log_py);
                let c = g.scale(c, T::from_f64(1.0 - temperature));
                l_t = g.add(l_t, c);
            }
            let l_t = g.scale(l_t, -T::one());
            loss = g.add(loss, l_t);
        }
    }
    StepLosses { loss, elbo, recon, neg_kl, hp, hq }
}
