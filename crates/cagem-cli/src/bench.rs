//! `cagem bench`: examples per second of a full training step (B unlabelled + a labelled batch,
//! forward, backward, Adam) and of the unlabelled forward ELBO alone, for the model `train`
//! builds, on synthetic MNIST-shaped data. Medians over timed steps after warm-up.

use std::time::Instant;

use cagem::timing::median;
use cagem_autodiff::{Adam, Device, Real, RngStream, Tensor};
use cagem_kernels::gemm::Precision;
use cagem_kernels::rng::HostRng;
use serde::Serialize;

use cagem::config::ModelConfig;
use cagem::data::batches::binarize;
use cagem::deviation::ObjectiveDeviations;
use cagem::model::{Cagem, IwEstimator, LossWeights, NoiseStreams};
use cagem::nn::BnUse;
use cagem::train::train_step;

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    /// "f32" or "bf16": the arithmetic of the matrix products.
    pub precision: String,
    pub threads: usize,
    pub batch: usize,
    pub labelled_batch: usize,
    pub steps: usize,
    /// Unlabelled examples per second of the full training step (median step time).
    pub train_examples_per_s: f64,
    /// Examples per second of the unlabelled forward ELBO alone (median).
    pub forward_examples_per_s: f64,
    pub train_step_ms_median: f64,
    pub forward_ms_median: f64,
    /// Importance samples per second of the IW evaluation (y summed), chunks of `iw_chunk_rows`.
    pub iw_samples_per_s: f64,
    /// The same with y sampled.
    pub iw_sampled_y_samples_per_s: f64,
    pub iw_chunk_rows: usize,
    /// Seconds that IW-5000 over 10,000 test images would take at these rates (y summed).
    pub iw5000_mnist_test_seconds: f64,
    /// Peak device memory of the training steps in bytes (GPU only).
    pub peak_device_memory_bytes: Option<u64>,
    pub parameters: usize,
    /// Per-op times of the timed training steps when CAGEM_PROFILE is set.
    #[serde(skip)]
    pub profile: Option<String>,
}

/// Times `steps` training steps and forward passes after `warmup` untimed ones.
pub fn bench<T: Real>(
    cfg: &ModelConfig,
    batch: usize,
    labelled_batch: usize,
    steps: usize,
    warmup: usize,
    device: &Device,
    precision: Precision,
) -> BenchReport {
    let mut model = Cagem::<T>::new(cfg.clone(), 1, device);
    model.set_precision(precision);
    let mut adam = Adam::new();
    let mut noise = NoiseStreams::new(7);
    let mut rng = HostRng::new(3, 0);
    // Synthetic MNIST-shaped data: smooth random intensities, binarised like real batches.
    let pool = 4 * batch.max(labelled_batch);
    let probs: Vec<f64> = (0..pool * cfg.x_dim).map(|_| rng.next_f64().powi(3)).collect();
    let probs = Tensor::<T>::from_f64(device, pool, cfg.x_dim, &probs);
    let labels: Vec<u32> = (0..labelled_batch).map(|_| rng.below(cfg.clusters as u64) as u32).collect();
    let batch_of = |n: usize, s: RngStream| {
        let rows: Vec<u32> = (0..n as u32).collect();
        binarize(device, &probs, &rows, s)
    };
    let x_u = batch_of(batch, RngStream::new(11, 0));
    let x_l = batch_of(labelled_batch, RngStream::new(11, 1));

    let mut step_ms = Vec::new();
    for i in 0..warmup + steps {
        if i == warmup {
            cagem_autodiff::profile::reset();
            device.reset_peak_memory();
        }
        let t0 = Instant::now();
        let lab = (labelled_batch > 0).then_some((&x_l, labels.as_slice()));
        train_step(&mut model, &mut adam, &x_u, lab, LossWeights::paper(1.0, 1.0), 1e-4, &mut noise)
            .expect("benchmark step diverged");
        device.synchronize();
        if i >= warmup {
            step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let profile = cagem_autodiff::profile::enabled().then(cagem_autodiff::profile::report);
    let peak = device.peak_memory();
    let mut fwd_ms = Vec::new();
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let mut g = model.inference_graph();
        let x = g.constant(x_u.clone());
        let t = model.elbo_terms(
            &mut g,
            BnUse::Train { update_running: true },
            x,
            ObjectiveDeviations::default(),
            &mut noise,
        );
        let _ = g.value(t.recon).to_vec();
        drop(g);
        if i >= warmup {
            fwd_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    // IW evaluation: chunks of 1000 sample rows (10 images × 100 samples), as `cagem eval`.
    let (iw_rows, iw_images) = (1000usize, 10usize);
    let x_iw = batch_of(iw_images, RngStream::new(11, 2));
    let mut iw_rate = |estimator: IwEstimator| {
        let mut ms = Vec::new();
        for i in 0..warmup + steps {
            let t0 = Instant::now();
            let mut g = model.training_graph();
            let x = g.constant(x_iw.clone());
            let c = model.iw_chunk(&mut g, x, iw_rows / iw_images, estimator, &mut noise);
            let _ = g.value(c.log_sum_w).to_vec();
            drop(g);
            if i >= warmup {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        iw_rows as f64 / (median(ms) / 1e3)
    };
    let iw_sum = iw_rate(IwEstimator::SumY);
    let iw_sample = iw_rate(IwEstimator::SampleY);
    let (tm, fm) = (median(step_ms), median(fwd_ms));
    BenchReport {
        device: device.name(),
        precision: precision.name().to_string(),
        threads: rayon::current_num_threads(),
        batch,
        labelled_batch,
        steps,
        train_examples_per_s: batch as f64 / (tm / 1e3),
        forward_examples_per_s: batch as f64 / (fm / 1e3),
        train_step_ms_median: tm,
        forward_ms_median: fm,
        iw_samples_per_s: iw_sum,
        iw_sampled_y_samples_per_s: iw_sample,
        iw_chunk_rows: iw_rows,
        iw5000_mnist_test_seconds: 5000.0 * 10_000.0 / iw_sum,
        peak_device_memory_bytes: peak,
        parameters: model.store.trainable_count(),
        profile,
    }
}
