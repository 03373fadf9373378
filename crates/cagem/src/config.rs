//! What defines a model and a training run. Both are saved in every checkpoint; a resumed run
//! must match them (only the number of epochs may grow).

use cagem_kernels::gemm::Precision;
use serde::{Deserialize, Serialize};

use crate::deviation::{Deviation, ObjectiveDeviations};
use crate::recipe::Recipe;

/// The architecture (docs/design.md §1). Defaults are the paper's MNIST model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Pixels per image.
    pub x_dim: usize,
    /// Image height and width (for pictures); x_dim = height·width.
    pub height: usize,
    pub width: usize,
    pub z1: usize,
    pub z2: usize,
    /// K, the number of values of the cluster variable y.
    pub clusters: usize,
    /// Hidden widths of the inference networks q(·), from the x end.
    pub q_hidden: [usize; 2],
    /// Hidden widths of the generative networks p(·), from the top (so the wide layer is at x).
    pub p_hidden: [usize; 2],
    pub bn_eps: f64,
    pub bn_momentum: f64,
    /// The distribution p(x|y,z1) (absent in older checkpoints: Bernoulli).
    #[serde(default)]
    pub likelihood: Likelihood,
    /// Whether the inputs are standardised per feature with the training set's mean and standard
    /// deviation, stored in the model (Gaussian likelihood only).
    #[serde(default)]
    pub standardize: bool,
    /// Whether x enters q(z2|x,y,z1) by the skip connection (the paper's model; false only
    /// with the deviation `no-skip-x-z2`; absent in older checkpoints: true).
    #[serde(default = "default_true")]
    pub skip_x_to_z2: bool,
    /// Floor on the standard deviation of a Gaussian p(x|y,z1), in the units the model sees
    /// (standardised with `standardize`): log σ² ≥ 2 log min_std. None: no floor (older runs,
    /// and the Bernoulli likelihood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_std: Option<f64>,
    /// Bernoulli likelihood: whether the data are binarised (a fresh draw in every training
    /// batch, one fixed draw for evaluation; the paper's MNIST and OMNIGLOT), or, when false,
    /// their values in [0, 1] are the cross-entropy's targets as they are (grey data of your own,
    /// where a draw would throw away what the grey levels say). Absent in older checkpoints:
    /// true, and written only when false, so that they keep their bytes.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub binarize: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The observation model p(x|y,z1) (section 2 of the paper names both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Bernoulli(σ(logits)) for data in [0, 1], dynamically binarised in training.
    #[default]
    Bernoulli,
    /// N(μ, diag σ²) with a learned log-variance head, for real-valued data.
    Gaussian,
}

impl Likelihood {
    pub fn name(self) -> &'static str {
        match self {
            Likelihood::Bernoulli => "bernoulli",
            Likelihood::Gaussian => "gaussian",
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            x_dim: 784,
            height: 28,
            width: 28,
            z1: 64,
            z2: 32,
            clusters: 10,
            q_hidden: [1024, 512],
            p_hidden: [512, 1024],
            bn_eps: 1e-5,
            bn_momentum: 0.1,
            likelihood: Likelihood::Bernoulli,
            standardize: false,
            skip_x_to_z2: true,
            min_std: None,
            binarize: true,
        }
    }
}

impl ModelConfig {
    /// Whether the data are binarised before the model sees them: Bernoulli with `binarize`.
    pub fn binarizes(&self) -> bool {
        self.likelihood == Likelihood::Bernoulli && self.binarize
    }

    /// Checks that every size is usable (also for configurations read back from a checkpoint).
    pub fn validate(&self) -> crate::Result<()> {
        let sizes = [
            ("--z1", self.z1),
            ("--z2", self.z2),
            ("--clusters", self.clusters),
            ("the image height", self.height),
            ("the image width", self.width),
        ];
        for (what, v) in sizes
            .into_iter()
            .chain(self.q_hidden.map(|h| ("a --q-hidden width", h)))
            .chain(self.p_hidden.map(|h| ("a --p-hidden width", h)))
        {
            if v == 0 {
                return Err(crate::Error::config(format!("{what} must be at least 1")));
            }
        }
        // A bound that no real model reaches, so that a damaged or hand-edited checkpoint cannot
        // make the program try to allocate terabytes (the widest layers' weights, in elements).
        let widest =
            [self.q_hidden[0], self.q_hidden[1], self.p_hidden[0], self.p_hidden[1]].into_iter().max().unwrap_or(0);
        let inputs = self.x_dim.saturating_add(self.z1).saturating_add(self.z2).saturating_add(self.clusters);
        if inputs.saturating_mul(widest) > 1 << 31 || widest.saturating_mul(widest) > 1 << 31 {
            return Err(crate::Error::config(format!(
                "the model is too large: {inputs} inputs into layers up to {widest} wide"
            )));
        }
        if self.x_dim != self.height.saturating_mul(self.width) {
            return Err(crate::Error::config(format!(
                "the model has {} pixels, but its images are {}×{}",
                self.x_dim, self.height, self.width
            )));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite() && (0.0..=1.0).contains(&self.bn_momentum)) {
            return Err(crate::Error::config(format!(
                "batch-norm epsilon {} must be positive and momentum {} within [0, 1]",
                self.bn_eps, self.bn_momentum
            )));
        }
        if let Some(s) = self.min_std
            && !(s > 0.0 && s.is_finite() && (2.0 * s.ln()) > cagem_kernels::gaussian::LOGVAR_MIN + 1.0)
        {
            return Err(crate::Error::config(format!("--min-std {s} must be at least 1e-6")));
        }
        if !self.binarize && self.likelihood != Likelihood::Bernoulli {
            return Err(crate::Error::config(
                "--binarize none needs --likelihood bernoulli (a Gaussian likelihood never binarises)",
            ));
        }
        if self.standardize && self.likelihood != Likelihood::Gaussian {
            return Err(crate::Error::config(
                "--standardize needs --likelihood gaussian (Bernoulli data must stay in [0, 1])",
            ));
        }
        Ok(())
    }
}

/// A training run (appendix C of the paper for the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// "mnist", "omniglot" or "npy" (a folder of NumPy arrays, `data_dir`).
    pub dataset: String,
    /// Folder with the data files instead of the bundled copy.
    pub data_dir: Option<String>,
    /// SHA-256 of the NumPy files of `data_dir` (file name → hex), recorded so that a resume may
    /// point at the same files in another folder (`--resume --data NEWDIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_checksums: Option<std::collections::BTreeMap<String, String>>,
    /// Use only the first n training images (quick runs and tests).
    pub n_train: Option<usize>,
    /// Number of labelled training examples (0: unsupervised CaGeM-0).
    pub labels: usize,
    pub epochs: usize,
    /// Unlabelled examples per step.
    pub batch: usize,
    /// Labelled examples per step (at most `labels`).
    pub labelled_batch: usize,
    /// Epochs over which the KL temperature rises linearly from 0 to 1.
    pub warmup: f64,
    pub seed: u64,
    pub lr: f64,
    /// The learning rate is multiplied by `lr_decay` every `lr_decay_every` epochs.
    pub lr_decay: f64,
    pub lr_decay_every: usize,
    /// β of α = β·(N_u + N_l)/N_l.
    pub beta: f64,
    /// Fraction of the training set held out (seeded) as the test set, for data without one.
    #[serde(default)]
    pub valid_fraction: Option<f64>,
    /// Global gradient-norm clipping threshold (None: off, as in the paper).
    #[serde(default)]
    pub clip_norm: Option<f64>,
    /// Every gradient element clipped to ±V after `clip_norm` (None: off, as in the paper; the
    /// authors' code: `--clip-norm 5 --clip-value 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Deviation `--routing-floor ε` (see `ObjectiveDeviations::routing_floor`; None: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_floor: Option<f64>,
    /// Deviation `--free-bits-y λ` (see `ObjectiveDeviations::free_bits_y`; None: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bits_y: Option<f64>,
    /// Deviation `--marginal-entropy-y λ` (see `ObjectiveDeviations::marginal_entropy_y`; None: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marginal_entropy_y: Option<f64>,
    /// Deviation `--log-py-weight W` (see `ObjectiveDeviations::log_py_weight`; None: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_py_weight: Option<f64>,
    /// The named recipe the deviations came from (`--recipe`; None: none asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
    /// Consecutive skipped steps (non-finite loss or gradient) after which training stops.
    #[serde(default = "default_max_skips")]
    pub max_skips: usize,
    /// The arithmetic of the matrix products: f32, or bf16 inputs with f32 accumulation (CPU,
    /// oneDNN). Runs saved before this field existed were f32.
    #[serde(default, with = "precision_name")]
    pub precision: Precision,
    /// Evaluate on test images after every `eval_every`-th epoch and the last (None: never);
    /// the figures join that epoch's metrics line. Evaluation does not change training.
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Importance samples and test images (spread over the classes) of that evaluation.
    #[serde(default = "default_eval_k")]
    pub eval_k: usize,
    #[serde(default = "default_eval_n")]
    pub eval_n: usize,
    /// Early stopping: stop after this many periodic evaluations of the validation split without
    /// a better one (None: never; needs `valid_fraction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Departures from the paper's objective, for ablations (empty: the paper's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deviations: Vec<Deviation>,
}

fn default_eval_k() -> usize {
    100
}

fn default_eval_n() -> usize {
    1000
}

fn default_max_skips() -> usize {
    20
}

/// `Precision` in JSON as its name ("f32", "bf16").
mod precision_name {
    use cagem_kernels::gemm::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        let name = String::deserialize(d)?;
        Precision::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown precision '{name}'")))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: "mnist".into(),
            data_dir: None,
            data_checksums: None,
            n_train: None,
            labels: 100,
            epochs: 1000,
            batch: 100,
            labelled_batch: 100,
            warmup: 100.0,
            seed: 0,
            lr: 1e-3,
            lr_decay: 0.75,
            lr_decay_every: 50,
            beta: 0.1,
            clip_norm: None,
            clip_value: None,
            routing_floor: None,
            free_bits_y: None,
            marginal_entropy_y: None,
            log_py_weight: None,
            recipe: None,
            max_skips: default_max_skips(),
            valid_fraction: None,
            precision: Precision::F32,
            eval_every: None,
            eval_k: default_eval_k(),
            eval_n: default_eval_n(),
            patience: None,
            deviations: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// The learning rate during epoch `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.lr_decay.powi((epoch / self.lr_decay_every.max(1)) as i32)
    }

    /// The KL temperature at a fractional epoch (linear from 0 to 1 over `warmup` epochs).
    pub fn temperature_at(&self, epoch: f64) -> f64 {
        if self.warmup <= 0.0 { 1.0 } else { (epoch / self.warmup).min(1.0) }
    }

    /// Whether the epoch numbered `epoch` (1-based) ends with a test evaluation.
    pub fn evaluates_after(&self, epoch: usize) -> bool {
        self.eval_every.is_some_and(|e| epoch.is_multiple_of(e.max(1)) || epoch == self.epochs)
    }

    /// α = β·(N_u + N_l)/N_l, the weight of the labelled cross-entropies. Every training image is
    /// also used unlabelled, so N_u = the training-set size.
    pub fn alpha(&self, n_unlabelled: usize) -> f64 {
        if self.labels == 0 { 0.0 } else { self.beta * (n_unlabelled + self.labels) as f64 / self.labels as f64 }
    }
}

impl TrainConfig {
    /// Fills in the deviations of `recipe` that this configuration leaves off (options given on
    /// the command line win), and records the recipe.
    pub fn apply_recipe(&mut self, recipe: Recipe) {
        if self.log_py_weight.is_none() {
            self.log_py_weight = recipe.log_py_weight();
        }
        if self.marginal_entropy_y.is_none() {
            self.marginal_entropy_y = recipe.marginal_entropy_y();
        }
        // Kept sorted and without repeats, as the command line's list is.
        self.deviations.extend_from_slice(recipe.deviations());
        self.deviations.sort();
        self.deviations.dedup();
        self.recipe = Some(recipe);
    }

    /// The objective's switches for this run: its named deviations and its numeric ones.
    pub fn objective_deviations(&self) -> ObjectiveDeviations {
        ObjectiveDeviations {
            routing_floor: self.routing_floor,
            free_bits_y: self.free_bits_y,
            marginal_entropy_y: self.marginal_entropy_y,
            log_py_weight: self.log_py_weight,
            ..ObjectiveDeviations::from_list(&self.deviations)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_fills_in_what_the_options_leave_off() {
        let mut cfg = TrainConfig::default();
        cfg.apply_recipe(Recipe::ChosenBranch);
        assert_eq!((cfg.log_py_weight, cfg.recipe), (Some(3.0), Some(Recipe::ChosenBranch)));
        let mut cfg = TrainConfig { log_py_weight: Some(5.0), ..TrainConfig::default() };
        cfg.apply_recipe(Recipe::ChosenBranch);
        assert_eq!(cfg.log_py_weight, Some(5.0), "an option given on the command line wins");
        // A recipe's named deviation joins the run's own, once, in the list's order.
        let mut cfg = TrainConfig { deviations: vec![Deviation::KlWarmupGaussianOnly], ..TrainConfig::default() };
        cfg.apply_recipe(Recipe::ChosenBranchHeld);
        cfg.apply_recipe(Recipe::ChosenBranchHeld);
        assert_eq!(cfg.deviations, [Deviation::KlWarmupGaussianOnly, Deviation::LogPyQyHeld]);
        assert_eq!(cfg.log_py_weight, Some(3.0));
        assert!(cfg.objective_deviations().log_py_qy_held);
    }

    #[test]
    fn precision_is_saved_by_name_and_old_runs_are_f32() {
        let cfg = TrainConfig { precision: Precision::Bf16, ..TrainConfig::default() };
        let mut v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["precision"], "bf16");
        assert_eq!(serde_json::from_value::<TrainConfig>(v.clone()).unwrap(), cfg);
        // A configuration written before the field existed.
        v.as_object_mut().unwrap().remove("precision");
        assert_eq!(serde_json::from_value::<TrainConfig>(v.clone()).unwrap().precision, Precision::F32);
        v["precision"] = "f16".into();
        assert!(serde_json::from_value::<TrainConfig>(v).is_err());
    }
}
