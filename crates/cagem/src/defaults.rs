//! The defaults of a fresh run that follow the data instead of the paper's MNIST: for NumPy
//! data the number of clusters (the classes of the labels), the labelled count, the model's size
//! and schedule (`cagem::sizing`) and whether a Bernoulli likelihood binarises; for any data the
//! batch (at most the training set) and the σ floor of a Gaussian likelihood
//! (`cagem::data::diagnose`). An option given on the command line always wins. The paper's data
//! sets keep the paper's configuration.

use crate::config::{Likelihood, ModelConfig, TrainConfig};
use crate::data::diagnose::{self, Findings};
use crate::data::{Dataset, Standardizer};
use crate::sizing::{schedule_for, size_for};

/// Data with at least this share of clearly grey values (`diagnose::grey_share`) are not
/// binarised by default: between MNIST's 8.7 % and the 8×8 digits' 34.6 %.
pub const GREY_IMAGES: f64 = 0.2;

/// What was chosen and why: notes (printed unless --quiet) and warnings (always printed).
#[derive(Default)]
pub struct Chosen {
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Adjusts a fresh run's configuration to `data` where the options were not given (`given(id)`:
/// whether the user chose option `id`, named as in `TrainConfig`/`ModelConfig`). The command
/// line and any other front end share it, so that their defaults agree.
pub fn apply(given: impl Fn(&str) -> bool, data: &Dataset, m: &mut ModelConfig, t: &mut TrainConfig) -> Chosen {
    let mut out = Chosen::default();
    let npy = t.dataset == "npy";
    let has_train_labels = data.has_train_labels();
    if npy && !given("clusters") && data.n_classes > 0 {
        m.clusters = data.n_classes;
        let from = if has_train_labels { "train_y.npy" } else { "test_y.npy (clusters named by majority class)" };
        out.notes.push(format!("K = {} clusters, the classes of {from} (--clusters overrides)", m.clusters));
    }
    if t.labels > 0 && m.clusters > data.n_classes && data.n_classes > 0 {
        let extra = if m.clusters - data.n_classes == 1 {
            format!("cluster {}", data.n_classes)
        } else {
            format!("clusters {}…{}", data.n_classes, m.clusters - 1)
        };
        out.notes.push(format!(
            "K = {} for {} classes: {extra} get no labels (learned without them; cluster k < {} is class k)",
            m.clusters, data.n_classes, data.n_classes
        ));
    }
    if npy && !given("labels") && has_train_labels && !data.partial_labels {
        // A fully labelled set: the default 100 labels, rounded down to spread evenly.
        let c = data.n_classes.max(1);
        let smallest = (0..c as u32).map(|k| data.train_labels.iter().filter(|&&l| l == k).count()).min().unwrap_or(0);
        let labels = (t.labels / c).min(smallest) * c;
        if labels != t.labels {
            out.notes.push(format!(
                "--labels {labels}: {} per class of the {c} classes (the default 100 does not spread evenly; --labels \
                 overrides)",
                labels / c
            ));
            t.labels = labels;
        }
    }
    let n = data.n_train();
    if npy {
        let s = size_for(n, data.dim());
        let mut chosen = Vec::new();
        macro_rules! size {
            ($($id:literal: $dst:expr => $val:expr),* $(,)?) => {
                $(if !given($id) { $dst = $val; chosen.push($id); })*
            };
        }
        size! {
            "z1": m.z1 => s.z1,
            "z2": m.z2 => s.z2,
            "q_hidden": m.q_hidden => s.q_hidden,
            "p_hidden": m.p_hidden => s.p_hidden,
            "batch": t.batch => s.batch,
            "epochs": t.epochs => s.epochs,
        }
        let (warmup, decay_every) = schedule_for(t.epochs);
        if !given("warmup") {
            t.warmup = warmup;
            chosen.push("warmup");
        }
        t.lr_decay_every = decay_every;
        if !chosen.is_empty() {
            out.notes.push(format!(
                "model sized for {n} examples × {} features: z1 {}, z2 {}, q-hidden {},{}, p-hidden {},{}, batch {}, \
                 {} epochs (KL warm-up {}, learning rate × 0.75 every {}); --z1/--z2/--q-hidden/--p-hidden/--batch/\
                 --epochs/--warmup override (docs/own-data.md)",
                data.dim(),
                m.z1,
                m.z2,
                m.q_hidden[0],
                m.q_hidden[1],
                m.p_hidden[0],
                m.p_hidden[1],
                t.batch,
                t.epochs,
                t.warmup,
                t.lr_decay_every
            ));
        }
    }
    if t.valid_fraction.is_some() && !given("eval_every") {
        // The best checkpoint and early stopping need evaluations: about fifty over the run.
        t.eval_every = Some((t.epochs / 50).max(1));
        out.notes.push(format!(
            "validation evaluation every {} epoch(s) (--eval-every overrides)",
            t.eval_every.unwrap_or(1)
        ));
    }
    if t.batch > n && n >= 2 {
        out.notes.push(format!("--batch {} is more than the {n} training examples: batches of {n}", t.batch));
        t.batch = n;
    }
    if npy && m.likelihood == Likelihood::Bernoulli && !given("binarize") {
        // The paper binarises MNIST, whose pen strokes are nearly black or white, and there a fresh
        // draw per batch also acts as noise that regularises (docs/own-data.md: 5,000 MNIST images,
        // q(y|x) error 8.9 % binarised, 10.4 % not). Grey images lose to a draw what their grey
        // levels say (sklearn's 8×8 digits: 15.6 % binarised, 7.4 % not, mean of three seeds).
        let grey = diagnose::grey_share(data);
        if grey >= GREY_IMAGES {
            m.binarize = false;
            out.notes.push(format!(
                "train_x.npy is grey ({:.1} % of its values within [{}, {}]): the Bernoulli likelihood takes the \
                 values as they are, not binarised (--binarize dynamic draws binary batches, as for MNIST)",
                100.0 * grey,
                diagnose::GREY_LOW,
                1.0 - diagnose::GREY_LOW
            ));
        }
    }
    let gaussian = m.likelihood == Likelihood::Gaussian;
    if npy || gaussian {
        let st = (m.standardize && gaussian).then(|| Standardizer::fit(&data.train_features::<f32>(), data.dim()));
        let found: Findings = diagnose::examine(data, st.as_ref(), gaussian);
        out.warnings.extend(found.warnings(gaussian, if npy { "train_x.npy" } else { "the training set" }));
        if gaussian && (!given("min_std") || m.min_std.is_none()) {
            m.min_std = Some(found.min_std);
            let units = if m.standardize { "standardised units" } else { "the data's units" };
            out.notes.push(format!(
                "σ of p(x|y,z1) floored at {:.4} ({units}: max(0.01 × the median feature's σ, the median \
                 feature's smallest gap between values / √12)); --min-std overrides",
                found.min_std
            ));
        }
    }
    out
}
