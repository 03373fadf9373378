//! CaGeM (docs/design.md §1): six networks, the ELBO with the exact sum over the cluster y, the two
//! classifiers of the semi-supervised objective, and the importance-weighted bound.
//!
//! Generative p:  p(z2) = N(0, I) · p(y|z2) = Cat · p(z1|y,z2) = N · p(x|y,z1) = Bernoulli(σ(·)),
//!                or N(μ, diag σ²) for real-valued data (`Likelihood::Gaussian`)
//! Inference q:   q(z1|x) = N · q(y|z1,x) = Cat · q(z2|x,y,z1) = N (x enters by a skip connection)
//!
//! Layout of the sum over y: the y-conditioned networks run on K·B rows, cluster-major (row
//! k·B + b is example b under y = k), so per-example tensors repeat with period B and per-row
//! results reshape to K × B.

use cagem_kernels::gemm::Precision;
use std::sync::Arc;

use cagem_autodiff::{Axis, Device, Graph, Indices, ParamId, ParamStore, Real, Var};
use cagem_kernels::rng::HostRng;

use super::noise::NoiseStreams;
use crate::config::{Likelihood, ModelConfig};
use crate::data::Standardizer;
use crate::deviation::ObjectiveDeviations;
use crate::nn::heads::{HEAD_INIT_STD, Init};
use crate::nn::{Block, BnUse, Fwd, GaussianHead, Linear};

/// Stream of the seed's host generator used for initial weights.
pub const INIT_STREAM: u64 = 0x494e_4954; // "INIT"

/// The networks, as parameter ids into the model's store.
#[derive(Clone, Debug)]
pub(crate) struct Nets {
    pub(crate) q_z1: Block,
    pub(crate) q_z1_head: GaussianHead,
    pub(crate) q_y: Block,
    pub(crate) q_y_head: Linear,
    pub(crate) q_z2: Block,
    pub(crate) q_z2_head: GaussianHead,
    pub(crate) p_y: Block,
    pub(crate) p_y_head: Linear,
    pub(crate) p_z1: Block,
    pub(crate) p_z1_head: GaussianHead,
    pub(crate) p_x: Block,
    /// Bernoulli logits, or the mean μ of a Gaussian p(x|y,z1).
    pub(crate) p_x_head: Linear,
    /// log σ² of a Gaussian p(x|y,z1) (clamped inside the density kernel like every log-variance).
    pub(crate) p_x_logvar: Option<Linear>,
    /// The standardisation statistics (mean, std), 1 × x_dim each, when the model has them.
    pub(crate) input_stats: Option<(ParamId, ParamId)>,
    pub(crate) likelihood: Likelihood,
    /// The floor on a Gaussian p(x|y,z1)'s σ (`ModelConfig::min_std`).
    pub(crate) min_std: Option<f64>,
    /// x enters q(z2|·) (the paper's skip connection); false with the deviation no-skip-x-z2.
    pub(crate) skip_x_to_z2: bool,
}

/// The model: configuration, parameters (on one device) and networks.
pub struct Cagem<T: Real> {
    pub cfg: ModelConfig,
    pub store: ParamStore<T>,
    nets: Nets,
    /// The arithmetic of the matrix products, read by every graph built for this model and by
    /// its optimiser step (not saved with the weights: resolved once per command by
    /// `cagem::precision::resolve`, from the flag or the run's configuration).
    precision: Precision,
}

/// The per-example pieces of the ELBO of an unlabelled batch (1 × B each):
/// F_T = recon + T·neg_kl, where
///   recon  = Σ_y q(y|z1,x) log p(x|y,z1)
///   neg_kl = Σ_y q(y|z1,x) [log p(z1|y,z2) + log p(y|z2) + log p(z2) − log q(z2|x,y,z1)
///            − log q(y|z1,x)] − log q(z1|x)
/// with one reparameterised sample of z1 and, per y, of z2.
pub struct ElboTerms {
    pub recon: Var,
    pub neg_kl: Var,
    /// The categorical part of neg_kl, Σ_y q(y|z1,x) [log p(y|z2) − log q(y|z1,x)], where
    /// asked for (the deviation kl-warmup-gaussian-only keeps it out of the warm-up).
    pub neg_kl_y: Option<Var>,
    /// (1/K)·Σ_y log p(y|z2_y) and Σ_y q(y|z1,x) log p(y|z2_y), where a deviation that
    /// reweights log p(y|z2_y) asks for them (routing-warmup, --routing-floor, --log-py-weight).
    pub log_py_sums: Option<LogPySums>,
    /// q(y|z1,x) and log q(y|z1,x): B × K.
    pub qy: Var,
    pub log_qy: Var,
    /// The means of q(z1|x) (B × z1) and of q(z2|x,y,z1) with its log-variances (K·B × z2).
    pub mu1: Var,
    pub mu2: Var,
    pub logvar2: Var,
}

/// The term log p(y|z2_y) of the unlabelled ELBO summed over the branches (1 × B each).
pub struct LogPySums {
    /// (1/K)·Σ_y log p(y|z2_y): every branch alike.
    pub uniform: Var,
    /// Σ_y q(y|z1,x) log p(y|z2_y): as F weights them.
    pub weighted: Var,
}

/// The pieces of the labelled ELBO (1 × B each): see `Cagem::labelled_elbo_terms`.
pub struct LabelledElboTerms {
    pub recon: Var,
    pub neg_kl: Var,
    pub log_py: Var,
}

/// How the importance weights treat the cluster variable y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IwEstimator {
    /// y summed exactly: per sample z1 and one z2 for every y,
    /// w = Σ_y p(x, y, z1, z2_y) / [q(z1|x) q(z2_y|x,y,z1)].
    SumY,
    /// y sampled with z1 and z2 (K times cheaper, more variance):
    /// y ~ q(y|z1,x), w = p(x, y, z1, z2) / [q(z1|x) q(y|z1,x) q(z2|x,y,z1)].
    SampleY,
}

impl IwEstimator {
    pub fn describe(self) -> &'static str {
        match self {
            IwEstimator::SumY => "y summed: w = sum_y p(x,y,z1,z2_y) / [q(z1|x) q(z2_y|x,y,z1)], one z2 per y",
            IwEstimator::SampleY => "y sampled: w = p(x,y,z1,z2) / [q(z1|x) q(y|z1,x) q(z2|x,y,z1)]",
        }
    }
}

/// One chunk of the importance-weighted bound: S samples for each of N images.
pub struct IwChunk {
    /// log Σ_s w_s per image over this chunk's samples (1 × N); chunks combine by logsumexp.
    pub log_sum_w: Var,
    /// log q(y|z1,x) per sample (S·N × K, row s·N + n).
    pub log_qy: Var,
    /// log p(y|z2): with y summed, for every cluster row (K·S·N × K, row k·S·N + s·N + n);
    /// with y sampled, for the sampled row (S·N × K).
    pub log_py: Var,
    pub estimator: IwEstimator,
}

/// Row indices r ↦ r / n for `k·n` rows: the cluster of each row in the cluster-major layout.
pub fn cluster_rows(device: &Device, k: usize, n: usize) -> Arc<Indices> {
    let idx: Vec<u32> = (0..k * n).map(|r| (r / n) as u32).collect();
    Arc::new(Indices::new(device, &idx))
}

/// K·q(y|z1,x) in the cluster-major layout of the K·B rows (K·B × 1, mean 1), as constants:
/// the batch-norm row weights of the deviation bn-qy-weighted.
fn cluster_row_weights<T: Real>(g: &mut Graph<T>, qy: Var) -> cagem_autodiff::Tensor<T> {
    let (b, k) = g.shape(qy);
    let grad_was = g.grad_enabled();
    g.set_grad_enabled(false);
    let t = g.transpose(qy);
    let t = g.reshape(t, k * b, 1);
    let t = g.scale(t, T::from_f64(k as f64));
    g.set_grad_enabled(grad_was);
    g.value(t).clone()
}

/// The bottom of the inference model on `rows` rows (x repeats if it has fewer):
/// z1 ~ q(z1|x) and the logits of q(y|z1,x).
struct Encoded {
    mu1: Var,
    lv1: Var,
    z1: Var,
    qy_logits: Var,
}

/// The top of the y-conditioned half on the rows of `idx` (row r under cluster idx[r]):
/// z2 ~ q(z2|x,y,z1) and log p(y|z2), all the classifiers need.
struct YTop {
    mu2: Var,
    lv2: Var,
    z2: Var,
    log_py_all: Var,
    log_py: Var,
}

/// The y-conditioned half of the model on the rows of `idx` (row r under cluster idx[r]):
/// z2 ~ q(z2|x,y,z1) and, at it, the log-densities of the generative model and of q(z2|·).
struct YTerms {
    mu2: Var,
    lv2: Var,
    /// log p(y|z2) for every y (rows × K), and for the row's own y (rows × 1).
    log_py_all: Var,
    log_py: Var,
    log_pz1: Var,
    log_px: Var,
    log_pz2: Var,
    log_qz2: Var,
}

impl Nets {
    fn encode<T: Real>(&self, f: &mut Fwd<T>, x: Var, rows: usize, noise: &mut NoiseStreams) -> Encoded {
        let h = self.q_z1.forward(f, &[x], None);
        let (mu1, lv1) = self.q_z1_head.forward(f, h);
        let z1 = f.g.reparameterize(mu1, lv1, rows, noise.take());
        let h = self.q_y.forward(f, &[x, z1], None);
        let qy_logits = self.q_y_head.forward(f, h);
        Encoded { mu1, lv1, z1, qy_logits }
    }

    /// The mean and log-variance of q(z2|x,y,z1) on the rows of `idx`.
    pub(crate) fn q_z2<T: Real>(&self, f: &mut Fwd<T>, x: Var, z1: Var, idx: &Arc<Indices>) -> (Var, Var) {
        let h = if self.skip_x_to_z2 {
            self.q_z2.forward(f, &[x, z1], Some(idx))
        } else {
            self.q_z2.forward(f, &[z1], Some(idx))
        };
        self.q_z2_head.forward(f, h)
    }

    fn y_top<T: Real>(&self, f: &mut Fwd<T>, x: Var, z1: Var, idx: &Arc<Indices>, noise: &mut NoiseStreams) -> YTop {
        let (mu2, lv2) = self.q_z2(f, x, z1, idx);
        let z2 = f.g.reparameterize(mu2, lv2, idx.len(), noise.take());
        let h = self.p_y.forward(f, &[z2], None);
        let py_logits = self.p_y_head.forward(f, h);
        let log_py_all = f.g.log_softmax(py_logits);
        let log_py = f.g.pick(log_py_all, idx);
        YTop { mu2, lv2, z2, log_py_all, log_py }
    }

    /// log p(x|y,z1) for the rows of `idx`; x may have fewer rows (a divisor), repeating.
    fn log_px<T: Real>(&self, f: &mut Fwd<T>, x: Var, z1: Var, idx: &Arc<Indices>) -> Var {
        let h = self.p_x.forward(f, &[z1], Some(idx));
        let out = self.p_x_head.forward(f, h);
        match (self.likelihood, &self.p_x_logvar) {
            (Likelihood::Gaussian, Some(lv_head)) => {
                let lv = lv_head.forward(f, h);
                match self.min_std {
                    Some(s) => super::sigma_floor::floored_gaussian_logpdf(f.g, x, out, lv, s),
                    None => f.g.diag_gaussian_logpdf(x, out, lv),
                }
            }
            _ => f.g.bernoulli_loglik(out, x),
        }
    }

    fn y_conditioned<T: Real>(
        &self,
        f: &mut Fwd<T>,
        x: Var,
        z1: Var,
        idx: &Arc<Indices>,
        noise: &mut NoiseStreams,
    ) -> YTerms {
        let YTop { mu2, lv2, z2, log_py_all, log_py } = self.y_top(f, x, z1, idx, noise);
        let h = self.p_z1.forward(f, &[z2], Some(idx));
        let (mu_p1, lv_p1) = self.p_z1_head.forward(f, h);
        let log_pz1 = f.g.diag_gaussian_logpdf(z1, mu_p1, lv_p1);
        let log_px = self.log_px(f, x, z1, idx);
        let log_pz2 = f.g.std_normal_logpdf(z2);
        let log_qz2 = f.g.diag_gaussian_logpdf(z2, mu2, lv2);
        YTerms { mu2, lv2, log_py_all, log_py, log_pz1, log_px, log_pz2, log_qz2 }
    }
}

impl<T: Real> Cagem<T> {
    /// A freshly initialised model on `device`.
    pub fn new(cfg: ModelConfig, seed: u64, device: &Device) -> Self {
        let mut store = ParamStore::new();
        let mut rng = HostRng::new(seed, INIT_STREAM);
        let (x, z1, z2, k) = (cfg.x_dim, cfg.z1, cfg.z2, cfg.clusters);
        let (qh, ph) = (cfg.q_hidden, cfg.p_hidden);
        let s = &mut store;
        let r = &mut rng;
        let gaussian = cfg.likelihood == Likelihood::Gaussian;
        let q_z2_parts: &[(&str, usize)] = if cfg.skip_x_to_z2 { &[("x", x), ("z1", z1)] } else { &[("z1", z1)] };
        let mut nets = Nets {
            q_z1: Block::new(s, r, "q_z1", &[("x", x)], None, qh),
            q_z1_head: GaussianHead::new(s, r, "q_z1", qh[1], z1),
            q_y: Block::new(s, r, "q_y", &[("x", x), ("z1", z1)], None, qh),
            q_y_head: Linear::new(s, r, "q_y.logits", qh[1], k, Init::Glorot),
            q_z2: Block::new(s, r, "q_z2", q_z2_parts, Some(k), qh),
            q_z2_head: GaussianHead::new(s, r, "q_z2", qh[1], z2),
            p_y: Block::new(s, r, "p_y", &[("z2", z2)], None, ph),
            p_y_head: Linear::new(s, r, "p_y.logits", ph[1], k, Init::Glorot),
            p_z1: Block::new(s, r, "p_z1", &[("z2", z2)], Some(k), ph),
            p_z1_head: GaussianHead::new(s, r, "p_z1", ph[1], z1),
            p_x: Block::new(s, r, "p_x", &[("z1", z1)], Some(k), ph),
            p_x_head: Linear::new(s, r, if gaussian { "p_x.mu" } else { "p_x.logits" }, ph[1], x, Init::Glorot),
            p_x_logvar: None,
            input_stats: None,
            likelihood: cfg.likelihood,
            min_std: cfg.min_std.filter(|_| gaussian),
            skip_x_to_z2: cfg.skip_x_to_z2,
        };
        // Created after every other parameter, so a Bernoulli model's initial weights and
        // parameter order do not depend on these options.
        if gaussian {
            nets.p_x_logvar = Some(Linear::new(s, r, "p_x.logvar", ph[1], x, Init::Normal(HEAD_INIT_STD)));
        }
        if cfg.standardize {
            let dev = Device::Cpu;
            let mean = s.add("input.mean", cagem_autodiff::Tensor::zeros(&dev, 1, x), false);
            let std = s.add("input.std", cagem_autodiff::Tensor::full(&dev, 1, x, T::one()), false);
            nets.input_stats = Some((mean, std));
        }
        store.to_device(device);
        Cagem { cfg, store, nets, precision: Precision::F32 }
    }

    pub fn device(&self) -> Device {
        self.store.get(ParamId(0)).device()
    }

    /// The arithmetic of this model's matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets the arithmetic once, after `precision::resolve` (checked there against the device).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// A graph for a training step: on the model's device, in its precision.
    pub fn training_graph(&self) -> Graph<T> {
        let mut g = Graph::new(&self.device());
        g.set_precision(self.precision);
        g
    }

    /// A graph for evaluation: on the model's device, in its precision, with gradients off.
    pub fn inference_graph(&self) -> Graph<T> {
        let mut g = self.training_graph();
        g.set_grad_enabled(false);
        g
    }

    /// The standardisation the model applies to its inputs (a model built with `standardize`).
    pub fn standardizer(&self) -> Option<Standardizer> {
        self.nets
            .input_stats
            .map(|(m, s)| Standardizer { mean: self.store.get(m).to_f64_vec(), std: self.store.get(s).to_f64_vec() })
    }

    /// Stores the standardisation statistics (fitted on the training set).
    pub fn set_standardizer(&mut self, st: &Standardizer) {
        let (m, s) = self.nets.input_stats.expect("set_standardizer: the model was built without standardize");
        let (dev, d) = (self.device(), self.cfg.x_dim);
        assert_eq!(st.mean.len(), d, "set_standardizer: {} features for {d}", st.mean.len());
        *self.store.get_mut(m) = cagem_autodiff::Tensor::from_f64(&dev, 1, d, &st.mean);
        *self.store.get_mut(s) = cagem_autodiff::Tensor::from_f64(&dev, 1, d, &st.std);
    }

    /// The mean of p(x|y,z1) in the data's units from the output of its head (n × x_dim):
    /// σ(logits) for Bernoulli, μ (un-standardised) for Gaussian.
    pub fn x_mean(&self, head_out: Vec<f64>) -> Vec<f64> {
        match self.cfg.likelihood {
            Likelihood::Bernoulli => head_out.into_iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
            Likelihood::Gaussian => {
                let mut v = head_out;
                if let Some(s) = self.standardizer() {
                    s.invert(&mut v);
                }
                v
            }
        }
    }

    /// θ_y ∪ φ_y: the parameters of p(y|z2) and q(y|z1,x), the only ones the labelled
    /// cross-entropies may move (appendix B).
    pub fn classifier_params(&self) -> Vec<ParamId> {
        self.store
            .iter()
            .filter(|(_, e)| e.name.starts_with("p_y.") || e.name.starts_with("q_y."))
            .map(|(id, _)| id)
            .collect()
    }

    pub(crate) fn fwd<'a>(&'a mut self, g: &'a mut Graph<T>, bn: BnUse) -> (&'a Nets, Fwd<'a, T>) {
        let (eps, momentum) = (self.cfg.bn_eps, self.cfg.bn_momentum);
        (&self.nets, Fwd { g, store: &mut self.store, bn, bn_eps: eps, bn_momentum: momentum, bn_row_weights: None })
    }

    /// The ELBO pieces of an unlabelled batch x (B × x_dim). Of the deviations, two apply here:
    /// kl_warmup_gaussian_only (the categorical part of the KL on its own) and bn_qy_weighted.
    pub fn elbo_terms(
        &mut self,
        g: &mut Graph<T>,
        bn: BnUse,
        x: Var,
        deviations: ObjectiveDeviations,
        noise: &mut NoiseStreams,
    ) -> ElboTerms {
        let k = self.cfg.clusters;
        let (n, mut fwd) = self.fwd(g, bn);
        let f = &mut fwd;
        let b = f.g.shape(x).0;
        let idx_k = cluster_rows(f.g.device(), k, b);

        let e = n.encode(f, x, b, noise);
        let log_qy = f.g.log_softmax(e.qy_logits);
        let qy = f.g.softmax(e.qy_logits);
        // q(z2|x,y,z1), p(y|z2), p(z1|y,z2), p(x|y,z1) for every y: K·B rows.
        f.bn_row_weights =
            (deviations.bn_qy_weighted && matches!(bn, BnUse::Train { .. })).then(|| cluster_row_weights(f.g, qy));
        let YTerms { mu2, lv2, log_py, log_pz1, log_px, log_pz2, log_qz2, .. } =
            n.y_conditioned(f, x, e.z1, &idx_k, noise);
        f.bn_row_weights = None;
        let log_qz1 = f.g.diag_gaussian_logpdf(e.z1, e.mu1, e.lv1);

        // Sum over y with weights q(y|z1,x), in the K × B layout.
        let g = &mut *f.g;
        let qy_t = g.transpose(qy);
        let log_qy_t = g.transpose(log_qy);
        let log_px = g.reshape(log_px, k, b);
        let weighted = g.mul(qy_t, log_px);
        let recon = g.fold_rows(weighted, 1);
        let a = g.add(log_pz1, log_py);
        let a = g.add(a, log_pz2);
        let a = g.sub(a, log_qz2);
        let a = g.reshape(a, k, b);
        let a = g.sub(a, log_qy_t);
        let weighted = g.mul(qy_t, a);
        let per_y = g.fold_rows(weighted, 1);
        let log_qz1 = g.reshape(log_qz1, 1, b);
        let neg_kl = g.sub(per_y, log_qz1);
        let neg_kl_y = deviations.needs_categorical_part().then(|| {
            let c = g.reshape(log_py, k, b);
            let c = g.sub(c, log_qy_t);
            let c = g.mul(qy_t, c);
            g.fold_rows(c, 1)
        });
        let log_py_sums = deviations.reweights_log_py().then(|| {
            let lp = g.reshape(log_py, k, b);
            let uniform = g.fold_rows(lp, 1);
            let uniform = g.scale(uniform, T::from_f64(1.0 / k as f64));
            // log-py-qy-held: the weights as constants, so the reweighting's extra share sends
            // no gradient into q(y|z1,x).
            let weights = if deviations.log_py_qy_held { g.detach(qy_t) } else { qy_t };
            let weighted = g.mul(weights, lp);
            let weighted = g.fold_rows(weighted, 1);
            LogPySums { uniform, weighted }
        });
        ElboTerms { recon, neg_kl, neg_kl_y, log_py_sums, qy, log_qy, mu1: e.mu1, mu2, logvar2: lv2 }
    }

    /// The ELBO of a labelled batch with its y observed (deviation labelled-elbo), per example
    /// (1 × B each), one z1 and one z2 per example:
    ///   recon  = log p(x|y_l,z1)
    ///   neg_kl = log p(z1|y_l,z2) + log p(y_l|z2) + log p(z2) − log q(z2|x,y_l,z1) − log q(z1|x)
    ///   log_py = log p(y_l|z2), its categorical part.
    /// Gradients reach every network (the authors' code; appendix B restricts only H_p and H_q).
    pub fn labelled_elbo_terms(
        &mut self,
        g: &mut Graph<T>,
        bn: BnUse,
        x: Var,
        labels: &[u32],
        noise: &mut NoiseStreams,
    ) -> LabelledElboTerms {
        let (n, mut fwd) = self.fwd(g, bn);
        let f = &mut fwd;
        let b = f.g.shape(x).0;
        assert_eq!(labels.len(), b, "labelled_elbo_terms: {} labels for {b} examples", labels.len());
        let label_idx = Arc::new(Indices::new(f.g.device(), labels));
        let h = n.q_z1.forward(f, &[x], None);
        let (mu1, lv1) = n.q_z1_head.forward(f, h);
        let z1 = f.g.reparameterize(mu1, lv1, b, noise.take());
        let YTerms { log_py, log_pz1, log_px, log_pz2, log_qz2, .. } = n.y_conditioned(f, x, z1, &label_idx, noise);
        let log_qz1 = f.g.diag_gaussian_logpdf(z1, mu1, lv1);
        let g = &mut *f.g;
        let a = g.add(log_pz1, log_py);
        let a = g.add(a, log_pz2);
        let a = g.sub(a, log_qz2);
        let a = g.sub(a, log_qz1);
        LabelledElboTerms {
            recon: g.reshape(log_px, 1, b),
            neg_kl: g.reshape(a, 1, b),
            log_py: g.reshape(log_py, 1, b),
        }
    }

    /// The labelled cross-entropies of appendix B, per example (1 × B each):
    ///   H_q = −log q(y_l|z1,x), z1 ~ q(z1|x)
    ///   H_p = −log Σ_y' q(y'|z1,x) p(y_l|z2_y'), z2_y' ~ q(z2|x,y',z1)
    /// Only θ_y (p(y|z2)) and φ_y (q(y|z1,x)) receive gradients: z1, z2 and the networks that
    /// make them run with gradients disabled. Two deviations change H_p (`ObjectiveDeviations`):
    /// `hp_grad_to_z2` lets its gradient reach q(z2|·); `hp_true_label_z2` draws z2 under y_l
    /// only, H_p = −log p(y_l|z2_{y_l}). With `bn_qy_weighted`, the batch statistics of H_p's
    /// K·B rows are weighted by K·q(y'|z1,x) as in `elbo_terms`.
    pub fn classifier_terms(
        &mut self,
        g: &mut Graph<T>,
        bn: BnUse,
        x: Var,
        labels: &[u32],
        deviations: ObjectiveDeviations,
        noise: &mut NoiseStreams,
    ) -> (Var, Var) {
        let k = self.cfg.clusters;
        let (n, mut fwd) = self.fwd(g, bn);
        let f = &mut fwd;
        let b = f.g.shape(x).0;
        assert_eq!(labels.len(), b, "classifier_terms: {} labels for {b} examples", labels.len());
        let dev = f.g.device().clone();
        let idx_k = cluster_rows(&dev, k, b);
        let label_idx = Arc::new(Indices::new(&dev, labels));
        let label_rows: Vec<u32> = (0..k * b).map(|r| labels[r % b]).collect();
        let label_rows = Arc::new(Indices::new(&dev, &label_rows));
        let grad_was = f.g.grad_enabled();

        let z1_grad = grad_was && deviations.hp_grad_all;
        f.g.set_grad_enabled(z1_grad);
        let h = n.q_z1.forward(f, &[x], None);
        let (mu1, lv1) = n.q_z1_head.forward(f, h);
        let z1 = f.g.reparameterize(mu1, lv1, b, noise.take());

        f.g.set_grad_enabled(grad_was);
        // H_q reads z1 cut from the gradient (appendix B) even where H_p may reach q(z1|x).
        let z1_hq = if z1_grad { f.g.detach(z1) } else { z1 };
        let h = n.q_y.forward(f, &[x, z1_hq], None);
        let mut qy_logits = n.q_y_head.forward(f, h);
        let mut log_qy = f.g.log_softmax(qy_logits);
        let picked = f.g.pick(log_qy, &label_idx);
        let picked = f.g.reshape(picked, 1, b);
        let hq = f.g.scale(picked, -T::one());
        if z1_grad {
            // H_p's own q(y'|z1,x), on z1 with its gradient (deviation hp-grad-all).
            let h = n.q_y.forward(f, &[x, z1], None);
            qy_logits = n.q_y_head.forward(f, h);
            log_qy = f.g.log_softmax(qy_logits);
        }

        f.g.set_grad_enabled(grad_was && (deviations.hp_grad_to_z2 || deviations.hp_grad_all));
        if deviations.hp_true_label_z2 {
            let (mu2, lv2) = n.q_z2(f, x, z1, &label_idx);
            let z2 = f.g.reparameterize(mu2, lv2, b, noise.take());
            f.g.set_grad_enabled(grad_was);
            let h = n.p_y.forward(f, &[z2], None);
            let py_logits = n.p_y_head.forward(f, h);
            let log_py_all = f.g.log_softmax(py_logits);
            let log_p = f.g.pick(log_py_all, &label_idx);
            let log_p = f.g.reshape(log_p, 1, b);
            let hp = f.g.scale(log_p, -T::one());
            return (hp, hq);
        }
        if deviations.bn_qy_weighted && matches!(bn, BnUse::Train { .. }) {
            let qy = f.g.softmax(qy_logits);
            f.bn_row_weights = Some(cluster_row_weights(f.g, qy));
        }
        let (mu2, lv2) = n.q_z2(f, x, z1, &idx_k);
        let z2 = f.g.reparameterize(mu2, lv2, k * b, noise.take());

        f.g.set_grad_enabled(grad_was);
        let h = n.p_y.forward(f, &[z2], None);
        f.bn_row_weights = None;
        let py_logits = n.p_y_head.forward(f, h);
        let log_py_all = f.g.log_softmax(py_logits);
        let log_py_label = f.g.pick(log_py_all, &label_rows);
        let log_py_label = f.g.reshape(log_py_label, k, b);
        let log_qy_t = f.g.transpose(log_qy);
        let joint = f.g.add(log_qy_t, log_py_label);
        let log_p = f.g.logsumexp(joint, Axis::DownColumn);
        let hp = f.g.scale(log_p, -T::one());
        (hp, hq)
    }

    /// S importance samples for each image of x (N × x_dim). With y summed, sample s draws
    /// z1 ~ q(z1|x) and, for every y, z2_y ~ q(z2|x,y,z1), and has weight
    ///   w = Σ_y p(x, y, z1, z2_y) / [q(z1|x) q(z2_y|x,y,z1)],
    /// an unbiased estimate of p(x) (E over z2_y of each term is p(x,y,z1)/q(z1|x)). With y
    /// sampled, y ~ q(y|z1,x) is drawn on the host (inverse CDF of a Philox uniform) and one z2
    /// follows it. Batch norm uses running statistics; nothing is recorded for backward.
    pub fn iw_chunk(
        &mut self,
        g: &mut Graph<T>,
        x: Var,
        samples: usize,
        estimator: IwEstimator,
        noise: &mut NoiseStreams,
    ) -> IwChunk {
        let k = self.cfg.clusters;
        let (n, mut fwd) = self.fwd(g, BnUse::Eval);
        let f = &mut fwd;
        let grad_was = f.g.grad_enabled();
        f.g.set_grad_enabled(false);
        let nimg = f.g.shape(x).0;
        let sn = samples * nimg;

        // Row s·N + n: sample s of image n (μ, λ and x repeat with period N).
        let e = n.encode(f, x, sn, noise);
        let log_qz1 = f.g.diag_gaussian_logpdf(e.z1, e.mu1, e.lv1);
        let log_qy = f.g.log_softmax(e.qy_logits);
        // The rows of the y-conditioned networks and the cluster of each: every y for every
        // sample (K·S·N rows), or the sampled y (S·N rows).
        let (idx, log_qy_term) = match estimator {
            IwEstimator::SumY => (cluster_rows(f.g.device(), k, sn), None),
            IwEstimator::SampleY => {
                let y = sample_categorical(&f.g.value(log_qy).to_f64_vec(), k, noise.take());
                let idx = Arc::new(Indices::new(f.g.device(), &y));
                let picked = f.g.pick(log_qy, &idx);
                (idx, Some(picked))
            }
        };
        let YTerms { log_py_all, log_py, log_pz1, log_px, log_pz2, log_qz2, .. } =
            n.y_conditioned(f, x, e.z1, &idx, noise);

        let g = &mut *f.g;
        let a = g.add(log_px, log_pz1);
        let a = g.add(a, log_py);
        let a = g.add(a, log_pz2);
        let a = g.sub(a, log_qz2);
        let per_sample = match log_qy_term {
            None => {
                let a = g.reshape(a, k, sn);
                g.logsumexp(a, Axis::DownColumn)
            }
            Some(lq) => {
                let a = g.sub(a, lq);
                g.reshape(a, 1, sn)
            }
        };
        let log_qz1 = g.reshape(log_qz1, 1, sn);
        let log_w = g.sub(per_sample, log_qz1);
        let log_w = g.reshape(log_w, samples, nimg);
        let log_sum_w = g.logsumexp(log_w, Axis::DownColumn);
        g.set_grad_enabled(grad_was);
        IwChunk { log_sum_w, log_qy, log_py: log_py_all, estimator }
    }
}

impl<T: Real> Cagem<T> {
    /// The classifiers' inputs for S samples of each image of x (N × x_dim): log q(y|z1,x)
    /// (S·N × K, row s·N + n) and log p(y|z2_y) for every cluster row (K·S·N × K, row
    /// k·S·N + s·N + n), the layout of `IwChunk` with y summed, without the rest of the model.
    pub fn class_chunk(&mut self, g: &mut Graph<T>, x: Var, samples: usize, noise: &mut NoiseStreams) -> (Var, Var) {
        let k = self.cfg.clusters;
        let (n, mut fwd) = self.fwd(g, BnUse::Eval);
        let f = &mut fwd;
        let grad_was = f.g.grad_enabled();
        f.g.set_grad_enabled(false);
        let sn = samples * f.g.shape(x).0;
        let e = n.encode(f, x, sn, noise);
        let log_qy = f.g.log_softmax(e.qy_logits);
        let idx = cluster_rows(f.g.device(), k, sn);
        let top = n.y_top(f, x, e.z1, &idx, noise);
        f.g.set_grad_enabled(grad_was);
        (log_qy, top.log_py_all)
    }
}

/// One draw per row of a categorical given as log-probabilities (rows × k), by the inverse CDF
/// of the Philox uniform of that row.
pub(crate) fn sample_categorical(log_p: &[f64], k: usize, stream: cagem_autodiff::RngStream) -> Vec<u32> {
    log_p
        .chunks_exact(k)
        .enumerate()
        .map(|(r, row)| {
            let u = cagem_kernels::rng::uniform_at(stream, r as u64);
            let mut acc = 0.0;
            for (y, &lp) in row.iter().enumerate() {
                acc += lp.exp();
                if u < acc {
                    return y as u32;
                }
            }
            (k - 1) as u32
        })
        .collect()
}
