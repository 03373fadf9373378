//! Using cagem as a library: fit a small CaGeM on arrays in memory, then classify held-out
//! examples with both of its classifiers, q(y|x) and p(y|x) = Σ_y q(y|x) p(y|z2).
//!
//! The data are three well-separated Gaussian clusters in six dimensions, with two labels per
//! cluster among 600 examples; the model uses the Gaussian likelihood with standardised inputs.
//! After eight epochs q(y|x) classifies them all; p(y|x), which reads the clusters through z2,
//! lags far behind, as in every short run of the paper's objective (docs/results.md).
//!
//!     cargo run -p cagem --example fit_predict

use cagem::data::{Dataset, DeviceData, UNLABELLED};
use cagem::eval::{EVAL_SEED, argmax_rows, class_probabilities, classification_error};
use cagem::model::NoiseStreams;
use cagem::train::open_run;
use cagem::train::run::Quiet;
use cagem::{Likelihood, ModelConfig, TrainConfig};
use cagem_autodiff::Device;
use cagem_kernels::rng::HostRng;

const CLASSES: usize = 3;
const FEATURES: usize = 6;

/// `n` draws (and their clusters) from three Gaussians of width 0.3 around centres 4 apart.
fn clusters(rng: &mut HostRng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let centre = |c: usize, d: usize| if d % CLASSES == c { 4.0 } else { 0.0 };
    let mut x = Vec::with_capacity(n * FEATURES);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLASSES;
        y.push(c as u32);
        x.extend((0..FEATURES).map(|d| (centre(c, d) + 0.3 * rng.normal()) as f32));
    }
    (x, y)
}

fn main() -> cagem::Result<()> {
    let mut rng = HostRng::new(7, 0);
    let (train_x, train_truth) = clusters(&mut rng, 600);
    let (test_x, test_y) = clusters(&mut rng, 300);
    // Two labelled examples per cluster; every other label is hidden.
    let train_labels = train_truth.iter().enumerate().map(|(i, &c)| if i < 2 * CLASSES { c } else { UNLABELLED });

    let data = Dataset {
        name: "npy".into(),
        provenance: "three Gaussian clusters made in memory".into(),
        height: 1,
        width: FEATURES,
        n_classes: CLASSES,
        train_images: Vec::new(),
        train_labels: train_labels.collect(),
        test_images: Vec::new(),
        test_labels: test_y.clone(),
        train_values: Some(train_x),
        test_values: Some(test_x),
        partial_labels: true,
    };
    let model = ModelConfig {
        x_dim: FEATURES,
        height: 1,
        width: FEATURES,
        z1: 2,
        z2: 2,
        clusters: CLASSES,
        q_hidden: [16, 16],
        p_hidden: [16, 16],
        likelihood: Likelihood::Gaussian,
        standardize: true,
        ..ModelConfig::default()
    };
    let schedule = TrainConfig {
        dataset: "npy".into(),
        labels: 2 * CLASSES,
        epochs: 8,
        batch: 50,
        labelled_batch: 2 * CLASSES,
        warmup: 2.0,
        seed: 1,
        ..TrainConfig::default()
    };

    // A run lives in a folder (checkpoint, config.json, metrics.jsonl), like `cagem train --out`.
    let dir = std::env::temp_dir().join(format!("cagem-example-{}", std::process::id()));
    let device = Device::Cpu;
    let mut run = open_run::<f32>(&dir, &model, &schedule, &data, &device, false)?;
    let standardizer = run.model.standardizer();
    let on_device = DeviceData::for_model(&device, &data, &model, standardizer.as_ref());
    run.train(&data, &on_device, &mut Quiet)?;

    // Both classifiers on the held-out examples; p(y|x) from 16 samples of z1 and z2 per example.
    let mut noise = NoiseStreams::new(EVAL_SEED);
    let (p_y, q_y) = class_probabilities(&mut run.model, &on_device.test, 16, 1000, &mut noise, &mut |_| {});
    for (name, probs) in [("q(y|x)", &q_y), ("p(y|x)", &p_y)] {
        let error = classification_error(&argmax_rows(probs, CLASSES), &test_y, CLASSES, true).unwrap_or(f64::NAN);
        println!("{name}: {:.1} % of {} held-out examples misclassified", 100.0 * error, test_y.len());
    }
    println!("first five predictions (q): {:?}", &argmax_rows(&q_y, CLASSES)[..5]);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
