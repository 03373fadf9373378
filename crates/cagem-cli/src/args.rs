//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The Cluster-aware Generative Model (Maaløe, Fraccaro, Winther): a two-stochastic-layer VAE
/// whose top layer carries a discrete cluster variable, trained unsupervised or with a few labels.
#[derive(Parser, Debug)]
#[command(name = "cagem", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads for the CPU kernels (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

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
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with the four MNIST-format files (default: the copy bundled in the binary).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Data set.
    #[arg(long, default_value = "mnist", value_parser = ["mnist"])]
    pub dataset: String,
    /// Labelled training examples, spread evenly over the classes (0: unsupervised CaGeM-0).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub labels: usize,
    /// Number of clusters K (values of y); with labels, at least the number of classes.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub clusters: usize,
    /// Training epochs (passes over the unlabelled data).
    #[arg(long, default_value_t = 1000, value_name = "E")]
    pub epochs: usize,
    /// Unlabelled examples per step.
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub batch: usize,
    /// Labelled examples per step (all of them when there are fewer).
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub labelled_batch: usize,
    /// Epochs of KL warm-up (temperature from 0 to 1).
    #[arg(long, default_value_t = 100.0, value_name = "EPOCHS")]
    pub warmup: f64,
    /// Seed of everything random: initial weights, labelled subset, order, binarisation, noise.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Run folder (default: runs/<dataset>-l<labels>-k<K>-<time>).
    #[arg(long, value_name = "RUN")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Compute device: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Initial learning rate of Adam.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// β of the labelled weight α = β·(N_u + N_l)/N_l.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// Dimension of z1.
    #[arg(long, default_value_t = 64)]
    pub z1: usize,
    /// Dimension of z2.
    #[arg(long, default_value_t = 32)]
    pub z2: usize,
    /// Hidden widths of the inference networks, from the x end.
    #[arg(long, default_value = "1024,512", value_parser = parse_widths)]
    pub q_hidden: [usize; 2],
    /// Hidden widths of the generative networks, from the top.
    #[arg(long, default_value = "512,1024", value_parser = parse_widths)]
    pub p_hidden: [usize; 2],
    /// Train on the first N training images only (quick experiments).
    #[arg(long, value_name = "N")]
    pub n_train: Option<usize>,
    /// No progress bar; one line per epoch.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run folder written by `cagem train`.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// Importance samples per test image.
    #[arg(long, default_value_t = 5000, value_name = "K")]
    pub k: usize,
    /// Evaluate the first N test images only.
    #[arg(long, value_name = "N")]
    pub n_test: Option<usize>,
    /// Print the results as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Samples × images per IW forward pass (memory against speed).
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    pub chunk: usize,
    /// Folder with the data files, if not the one recorded in the run.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Unlabelled examples per step.
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub batch: usize,
    /// Labelled examples per step.
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub labelled_batch: usize,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 20, value_name = "S")]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Number of clusters K.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Print the results as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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
