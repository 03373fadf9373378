//! Command-line arguments.

use std::path::PathBuf;

use cagem::deviation::Deviation;
use cagem::recipe::Recipe;

use crate::ranges;
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

/// The Cluster-aware Generative Model (Maaløe, Fraccaro, Winther): a two-stochastic-layer VAE
/// whose top layer carries a discrete cluster variable, trained unsupervised or with a few labels.
#[derive(Parser, Debug)]
#[command(name = "cagem", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads for the CPU kernels (default: all cores).
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true, value_parser = ranges::threads)]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the train variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model. With no options: the paper's MNIST configuration (CaGeM-100: 100 labels,
    /// K = 10, z1 = 64, z2 = 32, 1024/512 hidden units, KL warm-up over 100 epochs, Adam 1e-3
    /// × 0.75 every 50 epochs) on the MNIST bundled in this binary.
    Train(TrainArgs),
    /// Evaluate a trained run on the test set: importance-weighted bound, ELBO, errors.
    Eval(EvalArgs),
    /// Measure training and forward throughput on synthetic MNIST-shaped data.
    Bench(BenchArgs),
    /// Random samples from a trained model as a PNG grid (y ~ p(y|z2), or fixed with --class).
    Sample(SampleArgs),
    /// Test images beside their reconstructions, as a PNG.
    Reconstruct(ReconstructArgs),
    /// PCA of the posterior means of z1 and z2 over the test set, coloured by label (PNG).
    Latent(LatentArgs),
    /// Generations over a regular grid of z2 (a model trained with --z2 2), random and
    /// class-conditional side by side, as one PNG (the paper's Figure 3).
    Grid(GridArgs),
    /// The classifiers p(y|x) and q(y|x) of every example, and their predictions (.npz or .csv).
    Predict(PredictArgs),
    /// The posterior means E[z1|x] and E[z2|x] of every example (.npz or .csv).
    Encode(EncodeArgs),
    /// The importance-weighted bound log p(x) of every example (.npz or .csv).
    Score(ScoreArgs),
    /// Run every configuration of one of the paper's tables (training with periodic test
    /// evaluation, then IW-5000), resuming what DIR already holds, and write DIR/tableN.md and
    /// .json with our figures beside the paper's; or emit a Slurm array job that does the same.
    Reproduce(ReproduceArgs),
    /// Derive the 28×28 OMNIGLOT set (area downsampling, split by drawer, alphabet labels) from
    /// the original 105×105 images; its output is what this binary bundles.
    PrepareOmniglot(PrepareOmniglotArgs),
    /// Learning curves of one or more run folders as one PNG: train and test ELBO with the test
    /// log-likelihood, test errors of p(y|x) and q(y|x), test KL(z2), routing and z2 class
    /// separation, clusters used, active units, learning rate and KL temperature against the epoch, one colour per run, with the paper's figures
    /// for the run's configuration as dashed lines. Reads RUN/metrics.jsonl, RUN/config.json and
    /// the `cagem eval --json` outputs saved as RUN/eval/*.json.
    Plot(PlotArgs),
}

#[derive(Args, Debug)]
pub struct PrepareOmniglotArgs {
    /// Folder with the original OMNIGLOT IDX files (omniglot_background-*, omniglot_evaluation-*).
    #[arg(long, value_name = "DIR", default_value = "../shared/data/omniglot")]
    pub src: PathBuf,
    /// Folder to write the four omniglot28-* files to.
    #[arg(long, value_name = "DIR", default_value = "data/omniglot")]
    pub out: PathBuf,
}

/// Where a command computes.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Compute device: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Let f32 matrix products use TF32 tensor cores (GPU only; faster, ~1e-3 relative error).
    #[arg(long)]
    pub tf32: bool,
}

impl DeviceArgs {
    /// Opens the device, with TF32 if asked for.
    pub fn open(&self) -> cagem::Result<cagem_kernels::Device> {
        let device = cagem_kernels::Device::open(&self.device)?;
        device.set_tf32(self.tf32)?;
        Ok(device)
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with the data set's files (default: the copy bundled in the binary): the four
    /// MNIST files, the four omniglot28-* files of `cagem prepare-omniglot`, or with
    /// `--dataset npy` train_x.npy [train_y.npy test_x.npy test_y.npy].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Data set: mnist (10 digit classes), omniglot (28×28, 50 alphabets as classes), or npy (your
    /// own NumPy arrays in --data DIR; train_y −1 marks an unlabelled example, and with any −1 the
    /// labelled set is exactly the labelled examples, whatever --labels says).
    #[arg(long, default_value = "mnist", value_parser = ["mnist", "omniglot", "npy"])]
    pub dataset: String,
    /// p(x|y,z1): bernoulli (data in [0, 1], dynamically binarised) or gaussian (real-valued
    /// data; a learned diagonal variance).
    #[arg(long, default_value = "bernoulli", value_parser = ["bernoulli", "gaussian"])]
    pub likelihood: String,
    /// Standardise every feature with the training set's mean and standard deviation (stored in
    /// the run and applied by every command; Gaussian likelihood only).
    #[arg(long)]
    pub standardize: bool,
    /// Bernoulli likelihood: dynamic (every training batch a fresh binary draw, evaluation one
    /// fixed draw; the paper's, and the default for mnist and omniglot) or none (the values in
    /// [0, 1] are the cross-entropy's targets as they are). --dataset npy: none for grey data,
    /// whose grey levels a draw would throw away (docs/own-data.md).
    #[arg(long, value_name = "HOW", value_parser = ["dynamic", "none"])]
    pub binarize: Option<String>,
    /// Hold out ⌈F·N⌉ training examples (chosen with --seed) as a validation split: the periodic
    /// evaluation (every max(1, epochs/50) epochs unless --eval-every), the best checkpoint
    /// (RUN/best.safetensors, by the validation error of q(y|x) where the split has labels, by
    /// its ELBO otherwise) and --patience use it, never the test set. For data without a test
    /// set (no test_x.npy) the held-out examples are also the test set of eval, predict, ….
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = ranges::open_fraction)]
    pub valid_fraction: Option<f64>,
    /// Early stopping: stop after N periodic evaluations of the validation split without a better
    /// one (needs --valid-fraction). Use the best checkpoint with `--checkpoint best`.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub patience: Option<usize>,
    /// Labelled training examples, spread evenly over the classes (0: unsupervised CaGeM-0).
    /// --dataset npy: without train_y.npy 0; with a fully labelled train_y.npy 100 rounded down
    /// to spread evenly.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub labels: usize,
    /// Number of clusters K (values of y); with labels, at least the number of classes
    /// (cluster k is class k; the others get no labels). --dataset npy: the number of classes.
    #[arg(long, default_value_t = 10, value_name = "K", allow_negative_numbers = true, value_parser = ranges::latent)]
    pub clusters: usize,
    /// Training epochs (passes over the unlabelled data). --dataset npy: sized to the data (about
    /// 6000 steps, 20 to 1000 epochs; docs/own-data.md).
    #[arg(long, default_value_t = 1000, value_name = "E", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub epochs: usize,
    /// Unlabelled examples per step (at most the training set: larger is cut to it, with a note).
    /// --dataset npy: ⌈N/20⌉ within 16..100.
    #[arg(long, default_value_t = 100, value_name = "B", allow_negative_numbers = true, value_parser = ranges::batch)]
    pub batch: usize,
    /// Labelled examples per step (all of them when there are fewer).
    #[arg(long, default_value_t = 100, value_name = "B", allow_negative_numbers = true, value_parser = ranges::batch)]
    pub labelled_batch: usize,
    /// Epochs of KL warm-up (temperature from 0 to 1; 0: none). --dataset npy: a tenth of the
    /// epochs.
    #[arg(long, default_value_t = 100.0, value_name = "EPOCHS", allow_negative_numbers = true, value_parser = ranges::non_negative)]
    pub warmup: f64,
    /// Seed of everything random: initial weights, labelled subset, order, binarisation, noise.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Run folder (default: runs/<dataset>-l<labels>-k<K>-<time>).
    #[arg(long, value_name = "RUN")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, with the run's configuration: options
    /// not given keep the run's values; a given option that contradicts the run is refused,
    /// except --epochs, --lr, --max-skips, --precision, --eval-every/-k/-n, --threads, --device
    /// and --quiet (changes are recorded in metrics.jsonl and config.json).
    #[arg(long, requires = "out")]
    pub resume: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Base learning rate of Adam (the rate is lr·0.75^⌊epoch/50⌋). With --resume it replaces
    /// the run's base rate from the resumed epoch on (the decay keeps its place in the schedule).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true, value_parser = ranges::learning_rate)]
    pub lr: f64,
    /// Clip the gradients to this global L2 norm before Adam, as the authors' public code
    /// (SDGM, parmesan, LVAE) does; off by default: a deviation from the paper, which does not
    /// mention clipping.
    #[arg(long, value_name = "C", allow_negative_numbers = true, value_parser = ranges::positive)]
    pub clip_norm: Option<f64>,
    /// Stop after this many consecutive steps with a non-finite loss or gradient (each such step
    /// is skipped: it changes nothing; skipped steps are counted in metrics.jsonl).
    #[arg(long, default_value_t = 20, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub max_skips: usize,
    /// β of the labelled weight α = β·(N_u + N_l)/N_l.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true, value_parser = ranges::beta)]
    pub beta: f64,
    /// DEVIATION from the paper, for ablations; repeat for several, none by default. Saved with
    /// the run (a resume keeps them). kl-warmup-gaussian-only: the warm-up temperature scales the
    /// Gaussian KL terms only, not log p(y|z2) − log q(y|z1,x). hp-grad-to-z2: H_p's gradient
    /// also reaches q(z2|·) (appendix B forbids it). hp-true-label-z2: H_p = −log p(y_l|z2) with
    /// z2 drawn under the true label only. no-skip-x-z2: q(z2|y,z1) without the skip connection
    /// from x. bn-qy-weighted: batch-norm statistics of the networks run once per cluster weight
    /// each (y, x) row by q(y|z1,x), held constant, instead of counting all K·B rows alike.
    /// labelled-elbo: each labelled (x, y) also adds its ELBO with y observed, the labelled-batch
    /// mean at the weight of the unlabelled-batch mean, its gradient reaching every network (the
    /// authors' SDGM/ADGM code). routing-warmup: while T < 1, log p(y′|z2_y′) weights its
    /// branches by (1 − T)/K + T·q(y′|z1,x), so every branch pays z2 for carrying the y′ it is
    /// given (the paper's F again at T = 1). hp-grad-all: H_p's gradient reaches q(z1|x) and
    /// q(z2|·) too. log-py-qy-held: what --log-py-weight, --routing-floor or routing-warmup add
    /// to log p(y′|z2_y′) weights the branches by q(y′|z1,x) held constant, so it trains z2 and
    /// p(y|z2) but not q(y|z1,x).
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(Deviation::ALL.map(Deviation::name)))]
    pub deviation: Vec<String>,
    /// DEVIATION: clip every gradient element to ±V after --clip-norm (the authors' code:
    /// --clip-norm 5 --clip-value 1). Off by default.
    #[arg(long, value_name = "V", allow_negative_numbers = true, value_parser = ranges::positive)]
    pub clip_value: Option<f64>,
    /// DEVIATION: the uniform share of log p(y′|z2_y′)'s branch weights is max(1 − T, EPS) at
    /// every step, also after the warm-up (EPS in [0, 1]; 0 is routing-warmup alone). Not a bound
    /// on log p(x) while EPS > 0. Off by default.
    #[arg(long, value_name = "EPS", allow_negative_numbers = true, value_parser = ranges::unit_interval)]
    pub routing_floor: Option<f64>,
    /// DEVIATION: free bits on the categorical KL: the unlabelled batch's mean
    /// Σ_y q(y|z1,x)[log q(y|z1,x) − log p(y|z2)] enters the loss as max(KL_y, NATS), as GMVAE
    /// does against cluster collapse in CaGeM-0. Off by default.
    #[arg(long, value_name = "NATS", allow_negative_numbers = true, value_parser = ranges::non_negative)]
    pub free_bits_y: Option<f64>,
    /// DEVIATION: adds LAMBDA·H[q̄(y)] to the unlabelled ELBO, H the entropy of the batch's mean
    /// q(y|z1,x): pays the model for spreading examples over all K clusters, against CaGeM-0's
    /// collapse onto a few (IMSAT's marginal-entropy term). Not a bound on log p(x) (the logged
    /// ELBO and the IW bound stay the true ones). Off by default.
    #[arg(long, value_name = "LAMBDA", allow_negative_numbers = true, value_parser = ranges::non_negative)]
    pub marginal_entropy_y: Option<f64>,
    /// DEVIATION: the unlabelled ELBO's term Σ_y q(y|z1,x) log p(y|z2_y) counts W times (1: the
    /// paper). W > 1 pays z2 for carrying the cluster q chooses, against KL(z2) on that same
    /// branch; not a bound on log p(x) (the logged ELBO and the IW bound stay the true ones).
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = ranges::non_negative)]
    pub log_py_weight: Option<f64>,
    /// A named RECIPE of deviations measured to work (saved with the run; options given beside it
    /// win; docs/runs/clusters). chosen-branch = --log-py-weight 3, for CaGeM-N: at reduced scale
    /// p(y|x) within 2 points of q(y|x) with two seeds, for 0.2–0.3 nats. spread-clusters =
    /// --marginal-entropy-y 1, for CaGeM-0: all 10 clusters used instead of 3, with two seeds and
    /// on the full schedule. chosen-branch-held = chosen-branch with --deviation log-py-qy-held:
    /// on the full schedule q(y|x) 2–4 points better than chosen-branch's, p(y|x) within 2 points
    /// of it. Off by default: the paper's text.
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(Recipe::ALL.map(Recipe::name)))]
    pub recipe: Option<String>,
    /// Dimension of z1. --dataset npy: ⌈D/4⌉ within 2..64 for D features.
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = ranges::latent)]
    pub z1: usize,
    /// Dimension of z2. --dataset npy: ⌈z1/2⌉ within 2..32.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = ranges::latent)]
    pub z2: usize,
    /// Hidden widths of the inference networks, from the x end. --dataset npy: h,h/2 with h the
    /// power of two ≥ 2D within 32..512.
    #[arg(long, default_value = "1024,512", value_parser = parse_widths)]
    pub q_hidden: [usize; 2],
    /// Hidden widths of the generative networks, from the top. --dataset npy: h/2,h.
    #[arg(long, default_value = "512,1024", value_parser = parse_widths)]
    pub p_hidden: [usize; 2],
    /// Train on the first N training images only (quick experiments).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub n_train: Option<usize>,
    /// Print nothing but warnings, errors and the final summary (no progress bar, no epoch lines
    /// unless --log-every).
    #[arg(long)]
    pub quiet: bool,
    /// With --quiet, one line every N epochs (and after the last).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub log_every: Option<usize>,
    /// Floor on the standard deviation σ of a Gaussian p(x|y,z1), in the units the model sees
    /// (standardised ones with --standardize). Default: from the data, max(0.01 × the median
    /// feature's σ, the median feature's smallest gap between distinct values / √12).
    #[arg(long, value_name = "S", allow_negative_numbers = true, value_parser = ranges::min_std)]
    pub min_std: Option<f64>,
    /// Matrix-product arithmetic: f32, bf16 (bf16 inputs, f32 accumulation and everything else
    /// f32; CPU with AVX512_BF16/AMX and oneDNN, see scripts/install-bf16.sh) or auto (bf16 where
    /// it runs and a short probe finds its products faster than f32's here: not on every
    /// AVX512_BF16 CPU). Saved with the run; --resume keeps the run's unless given.
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16", "auto"])]
    pub precision: Option<String>,
    /// Evaluate on the test set after every E-th epoch and the last; the figures (test_elbo,
    /// test_log_likelihood, both error rates, KL(z2), active units, seconds) join that epoch's
    /// line of metrics.jsonl. The same code and noise seed as `cagem eval --k K --n-test N
    /// --spread` on the saved checkpoint, in the run's arithmetic; training is unchanged by it.
    #[arg(long, value_name = "E", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub eval_every: Option<usize>,
    /// Importance samples per test image of the periodic evaluation.
    #[arg(long, default_value_t = 100, value_name = "K", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub eval_k: usize,
    /// Test images of the periodic evaluation, spread over the classes.
    #[arg(long, default_value_t = 1000, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub eval_n: usize,
    /// The ids of the options given on the command line (filled in by `main`), so that a resumed
    /// run keeps its own values for the others.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// The file of `--checkpoint last|best` in a run folder.
pub fn checkpoint_file(which: &str) -> &'static str {
    if which == "best" { cagem::train::best::BEST_FILE } else { cagem::checkpoint::CHECKPOINT_FILE }
}

impl TrainArgs {
    /// Whether option `id` (its field name) was given on the command line.
    pub fn was_given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run folder written by `cagem train`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// Importance samples per test image.
    #[arg(long, default_value_t = 5000, value_name = "K", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub k: usize,
    /// Evaluate the first N test images only (OMNIGLOT's test set is ordered by alphabet, so
    /// there the first N cover only the first few alphabets).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub n_test: Option<usize>,
    /// With --n-test N: N images spread over the classes (in turn from each) instead of the
    /// first N, as `train --eval-every` chooses them.
    #[arg(long, requires = "n_test")]
    pub spread: bool,
    /// Print the results as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// How the importance weights treat y: summed exactly (sum-y) or sampled (sample-y, K times
    /// cheaper per sample, more variance). Both give valid lower bounds.
    #[arg(long, default_value = "sum-y", value_parser = ["sum-y", "sample-y"])]
    pub estimator: String,
    /// Samples × images per IW forward pass (memory against speed).
    #[arg(long, default_value_t = 1000, value_name = "ROWS", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub chunk: usize,
    /// Folder with the data files, if not the one recorded in the run.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which checkpoint of the run: last (checkpoint.safetensors) or best (best.safetensors, the
    /// best validation evaluation of a run trained with --valid-fraction).
    #[arg(long, default_value = "last", value_parser = ["last", "best"])]
    pub checkpoint: String,
    /// Matrix-product arithmetic of the evaluation (f32 whatever the run trained with; bf16 or
    /// auto as for `train`).
    #[arg(long, value_name = "P", default_value = "f32", value_parser = ["f32", "bf16", "auto"])]
    pub precision: String,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Unlabelled examples per step.
    #[arg(long, default_value_t = 100, value_name = "B", allow_negative_numbers = true, value_parser = ranges::batch)]
    pub batch: usize,
    /// Labelled examples per step.
    #[arg(long, default_value_t = 100, value_name = "B", allow_negative_numbers = true, value_parser = ranges::batch)]
    pub labelled_batch: usize,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 20, value_name = "S", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Number of clusters K.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = ranges::latent)]
    pub clusters: usize,
    /// Print the results as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Matrix-product arithmetic: f32, bf16 or auto (as for `train`).
    #[arg(long, value_name = "P", default_value = "f32", value_parser = ["f32", "bf16", "auto"])]
    pub precision: String,
}

/// A picture's path: cagem writes PNG, so the name must say so (not s.jpg holding PNG bytes).
fn png_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(p),
        _ => Err(format!("'{s}' does not end in .png; cagem writes pictures as PNG")),
    }
}

fn parse_widths(s: &str) -> Result<[usize; 2], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| format!("'{p}' is not a width")))
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [a, b] if *a > 0 && *b > 0 => Ok([*a, *b]),
        _ => Err(format!("expected two positive widths like 1024,512, got '{s}'")),
    }
}

/// What every picture command needs: the run and where to draw.
#[derive(Args, Debug)]
pub struct PictureCommon {
    /// The run folder written by `cagem train`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png", value_parser = png_file)]
    pub out: PathBuf,
    /// Pixels per image pixel.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = ranges::zoom)]
    pub zoom: usize,
    /// Which checkpoint of the run: last (checkpoint.safetensors) or best (best.safetensors, the
    /// best validation evaluation of a run trained with --valid-fraction).
    #[arg(long, default_value = "last", value_parser = ["last", "best"])]
    pub checkpoint: String,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub common: PictureCommon,
    /// Number of samples (laid out in a square-ish grid).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = ranges::pictures)]
    pub n: usize,
    /// Generate this class (cluster) only: class-conditional samples of p(x|y=C), with z2 drawn
    /// from p(z2|y=C) by rejection sampling from the prior.
    #[arg(long, value_name = "C")]
    pub class: Option<u32>,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub common: PictureCommon,
    /// Number of test images (each shown beside its reconstruction).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = ranges::pictures)]
    pub n: usize,
}

#[derive(Args, Debug)]
pub struct LatentArgs {
    /// The run folder written by `cagem train`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The PNG file to write (1600 × 800 pixels).
    #[arg(long, value_name = "FILE.png", value_parser = png_file)]
    pub out: PathBuf,
    /// Use the first N test images (default: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub n_test: Option<usize>,
    /// Which checkpoint of the run: last (checkpoint.safetensors) or best (best.safetensors, the
    /// best validation evaluation of a run trained with --valid-fraction).
    #[arg(long, default_value = "last", value_parser = ["last", "best"])]
    pub checkpoint: String,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct GridArgs {
    #[command(flatten)]
    pub common: PictureCommon,
    /// Grid points per side.
    #[arg(long, default_value_t = 15, allow_negative_numbers = true, value_parser = ranges::grid_steps)]
    pub steps: usize,
    /// The grid spans [-span, span] in both coordinates of z2.
    #[arg(long, default_value_t = 2.5, allow_negative_numbers = true, value_parser = ranges::positive)]
    pub span: f64,
    /// Class of the conditional panel (default: the most likely class at each grid point).
    #[arg(long, value_name = "C")]
    pub class: Option<u32>,
    /// Seed of the z1 draws (shared by both panels).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What predict, encode and score read and write.
#[derive(Args, Debug)]
pub struct OutputCommon {
    /// The run folder written by `cagem train`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The file to write: .npz (NumPy arrays) or .csv (a header row, one row per example).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Folder with the data files, if not the one recorded in the run.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which split of the data: test or train.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    pub split: String,
    /// New examples instead of a split: an N×H×W or N×D .npy array of the model's input shape.
    #[arg(long, value_name = "F.npy", conflicts_with_all = ["data", "split"])]
    pub input: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Which checkpoint of the run: last (checkpoint.safetensors) or best (best.safetensors, the
    /// best validation evaluation of a run trained with --valid-fraction).
    #[arg(long, default_value = "last", value_parser = ["last", "best"])]
    pub checkpoint: String,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: OutputCommon,
    /// Samples of z1 (and of z2 per cluster) averaged in p(y|x) and q(y|x). p(y|x) needs many:
    /// on the digits of docs/own-data.md its error was 56.7, 38.9, 33.1, 31.4, 30.0 and 30.6 % with
    /// 1, 10, 30, 100, 300 and 1000 samples, so 100 by default (q(y|x): 17.5 % with 1, 15.3 % with 100).
    #[arg(long, default_value_t = 100, value_name = "S", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub samples: usize,
}

#[derive(Args, Debug)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub common: OutputCommon,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub common: OutputCommon,
    /// Importance samples per example (`eval` keeps the paper's 5000).
    #[arg(long, default_value_t = 100, value_name = "K", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub k: usize,
    /// How the importance weights treat y: summed exactly (sum-y) or sampled (sample-y).
    #[arg(long, default_value = "sum-y", value_parser = ["sum-y", "sample-y"])]
    pub estimator: String,
    /// Samples × images per IW forward pass (memory against speed).
    #[arg(long, default_value_t = 1000, value_name = "ROWS", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub chunk: usize,
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// table1 (MNIST log-likelihood: CaGeM-0 with K = 20, 5, 10; CaGeM-20, -50, -100), table2
    /// (OMNIGLOT CaGeM-500, K = 50) or table3 (MNIST errors of p(y|x) with 20, 50, 100 labels).
    #[arg(value_parser = ["table1", "table2", "table3"])]
    pub table: String,
    /// Folder of the runs, one sub-folder per configuration (default: runs/<table>). Runs it
    /// already holds are resumed, finished ones are left alone.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Epochs of every run (fewer than the full 1000 is reported as a shortened schedule).
    #[arg(long, default_value_t = 1000, value_name = "E", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub epochs: usize,
    /// Train on the first N training images only (a shortened schedule, for a quick look).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub n_train: Option<usize>,
    /// Epochs of KL warm-up (the paper's 100; shorter for a shortened schedule).
    #[arg(long, default_value_t = 100.0, value_name = "EPOCHS", allow_negative_numbers = true, value_parser = ranges::non_negative)]
    pub warmup: f64,
    /// Seed of every run (weights, labelled subset, noise).
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Compute device of the runs: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Matrix-product arithmetic of the runs: f32, bf16 or auto (as for `train`).
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16", "auto"])]
    pub precision: Option<String>,
    /// Periodic test evaluation of every run: after every E-th epoch (and the last).
    #[arg(long, default_value_t = 10, value_name = "E", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub eval_every: usize,
    /// Importance samples and test images of the periodic evaluation.
    #[arg(long, default_value_t = 100, value_name = "K", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub eval_k: usize,
    #[arg(long, default_value_t = 1000, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub eval_n: usize,
    /// Importance samples of the final evaluation (the paper's F5000).
    #[arg(long, default_value_t = 5000, value_name = "K", allow_negative_numbers = true, value_parser = ranges::samples)]
    pub final_k: usize,
    /// Test images of the final evaluation, spread over the classes (default: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub final_n: Option<usize>,
    /// Folder with the data set's files, if not the copy bundled in the binary.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Only gather the runs DIR holds into the table; train nothing.
    #[arg(long)]
    pub report: bool,
    /// Run only configuration I of the table (0-based, in the table's order): what a Slurm array
    /// task runs. The table is not written (the report job gathers it).
    #[arg(long, value_name = "I", conflicts_with = "report")]
    pub task: Option<usize>,
    /// Print the train and eval commands of every configuration instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Write an sbatch script instead of running: one array task per configuration and the
    /// table's gathering as a dependent job. Submit with `bash FILE`.
    #[arg(long, value_name = "FILE")]
    pub emit_slurm: Option<PathBuf>,
    /// Slurm: wall-time limit of each task (a task stopped by it checkpoints and is requeued).
    #[arg(long, default_value = "2-00:00:00", value_name = "D-HH:MM:SS")]
    pub slurm_time: String,
    /// Slurm: CPU cores of each task (also cagem's --threads there).
    #[arg(long, default_value_t = 8, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub slurm_cpus: usize,
    /// Slurm: memory of each task.
    #[arg(long, default_value = "16G", value_name = "M")]
    pub slurm_mem: String,
    /// Slurm: partition to submit to (default: the cluster's).
    #[arg(long, value_name = "P")]
    pub slurm_partition: Option<String>,
    /// Slurm: GPUs per task (use with --device cuda).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = ranges::at_least_1)]
    pub slurm_gpus: Option<usize>,
    /// No progress bars; one line per epoch.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run folder written by `cagem train`; repeat to overlay several runs.
    #[arg(long = "run", value_name = "RUN", required = true)]
    pub runs: Vec<PathBuf>,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png", value_parser = png_file)]
    pub out: PathBuf,
    /// Width of the picture in pixels.
    #[arg(long, default_value_t = 1600, value_name = "PX", allow_negative_numbers = true, value_parser = ranges::pixels)]
    pub width: u32,
    /// Height of the picture in pixels.
    #[arg(long, default_value_t = 1600, value_name = "PX", allow_negative_numbers = true, value_parser = ranges::pixels)]
    pub height: u32,
}
