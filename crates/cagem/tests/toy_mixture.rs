//! A mixture of well-separated Gaussians, real-valued, with 2 labels per component among 600
//! unlabelled examples: after a short training with the Gaussian likelihood, q(y|x) recovers the
//! components on held-out examples.

use cagem::data::{Dataset, DeviceData, UNLABELLED};
use cagem::eval::{EVAL_SEED, argmax_rows, class_probabilities, classification_error};
use cagem::model::NoiseStreams;
use cagem::train::open_run;
use cagem::train::run::Quiet;
use cagem::{Likelihood, ModelConfig, TrainConfig};
use cagem_autodiff::Device;
use cagem_kernels::rng::HostRng;

const C: usize = 3;
const D: usize = 6;

/// `n` draws (and their components) from C Gaussians of width 0.3 around centres 4 apart.
fn mixture(rng: &mut HostRng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let centre = |c: usize, d: usize| (if d % C == c { 4.0 } else { 0.0 }) + (if d >= C { 1.0 } else { -1.0 });
    let mut x = Vec::with_capacity(n * D);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % C;
        y.push(c as u32);
        x.extend((0..D).map(|d| (centre(c, d) + 0.3 * rng.normal()) as f32));
    }
    (x, y)
}

#[test]
fn q_y_recovers_well_separated_gaussian_clusters() {
    let mut rng = HostRng::new(2024, 0);
    let (train_x, truth) = mixture(&mut rng, 600);
    let (test_x, test_y) = mixture(&mut rng, 300);
    // Two labels per component; the rest unlabelled.
    let train_labels: Vec<u32> =
        truth.iter().enumerate().map(|(i, &c)| if i < 2 * C { c } else { UNLABELLED }).collect();
    let data = Dataset {
        name: "npy".into(),
        provenance: "toy mixture".into(),
        height: 1,
        width: D,
        n_classes: C,
        train_images: Vec::new(),
        train_labels,
        test_images: Vec::new(),
        test_labels: test_y.clone(),
        train_values: Some(train_x),
        test_values: Some(test_x),
        partial_labels: true,
    };
    let model_cfg = ModelConfig {
        x_dim: D,
        height: 1,
        width: D,
        z1: 2,
        z2: 2,
        clusters: C,
        q_hidden: [16, 16],
        p_hidden: [16, 16],
        likelihood: Likelihood::Gaussian,
        standardize: true,
        ..ModelConfig::default()
    };
    let cfg = TrainConfig {
        dataset: "npy".into(),
        labels: 2 * C,
        epochs: 8,
        batch: 50,
        labelled_batch: 2 * C,
        warmup: 2.0,
        seed: 1,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let mut run = open_run::<f32>(dir.path(), &model_cfg, &cfg, &data, &dev, false).expect("open run");
    assert_eq!(run.state.labelled.len(), 2 * C, "the labelled set is exactly the labelled examples");
    let st = run.model.standardizer().expect("standardised");
    let dd = DeviceData::for_model(&dev, &data, &model_cfg, Some(&st));
    run.train(&data, &dd, &mut Quiet).expect("train");

    let mut noise = NoiseStreams::new(EVAL_SEED);
    let (_, q_y) = class_probabilities(&mut run.model, &dd.test, 4, 1000, &mut noise, &mut |_| {});
    let error = classification_error(&argmax_rows(&q_y, C), &test_y, C, true).unwrap();
    assert!(error < 0.05, "q(y|x) misclassifies {:.1} % of the held-out examples", 100.0 * error);
}
