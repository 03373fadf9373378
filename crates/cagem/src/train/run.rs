//! A training run in a folder: opening it (fresh or resumed from its checkpoint), the epoch loop,
//! and the state that makes resumption exact (the resumed run continues as if never stopped).

use std::path::{Path, PathBuf};
use std::time::Instant;

use cagem_autodiff::{Adam, Device, Real};
use cagem_kernels::rng::HostRng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CONFIG_FILE, write_atomic};
use super::metrics::MetricsLog;
use super::step::{StepScalars, train_step};
use crate::config::{ModelConfig, TrainConfig};
use crate::data::{Dataset, DeviceData, balanced_subset};
use crate::error::{Error, Result};
use crate::model::{Cagem, NoiseStreams};

/// Streams of the seed's host generator for the order of unlabelled and labelled examples.
const ORDER_STREAM: u64 = 0x004f_5244_4552; // "ORDER"
const LABEL_ORDER_STREAM: u64 = 0x4c4f_5244; // "LORD"

/// Everything besides weights that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub steps_done: u64,
    pub adam_t: u64,
    /// The device noise streams (binarisation, reparameterisation).
    pub noise: NoiseStreams,
    /// Words drawn from the example-order generator.
    pub order_rng_drawn: u64,
    /// Words drawn from the labelled-order generator, the current labelled order and position.
    pub label_rng_drawn: u64,
    pub label_order: Vec<u32>,
    pub label_cursor: usize,
    /// Training-set indices of the labelled subset.
    pub labelled: Vec<u32>,
    /// Wall-clock seconds spent training so far.
    pub seconds: f64,
}

/// What an observer sees after each step.
pub struct StepReport {
    pub epoch: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub scalars: StepScalars,
    pub temperature: f64,
    pub lr: f64,
    /// Unlabelled examples per second over this epoch so far.
    pub examples_per_s: f64,
}

/// What an observer sees after each epoch (also the JSON line written to metrics.jsonl).
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub record: serde_json::Value,
}

/// Progress reporting (the CLI draws bars; tests stay quiet).
pub trait Observer {
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    fn step(&mut self, _r: &StepReport) {}
    fn epoch_end(&mut self, _r: &EpochReport) {}
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

pub struct Run<T: Real> {
    pub dir: PathBuf,
    pub model: Cagem<T>,
    pub adam: Adam<T>,
    pub cfg: TrainConfig,
    pub state: TrainState,
}

/// Opens a run folder: a fresh run (the folder must not hold one already) or, with `resume`,
/// the run saved there, whose configuration must match (only `epochs` may differ).
pub fn open_run<T: Real>(
    dir: &Path,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    data: &Dataset,
    device: &Device,
    resume: bool,
) -> Result<Run<T>> {
    validate(model_cfg, cfg, data)?;
    crate::precision::check(cfg.precision, device)?;
    let ckpt = dir.join(checkpoint::CHECKPOINT_FILE);
    if resume {
        let (model, adam, meta) = checkpoint::load::<T>(dir, device)?;
        let diffs = differences(&meta.model, model_cfg, &meta.train, cfg);
        if !diffs.is_empty() {
            return Err(Error::checkpoint(
                &ckpt,
                format!(
                    "cannot resume with a different configuration: {} (only --epochs may change)",
                    diffs.join("; ")
                ),
            ));
        }
        MetricsLog::new(dir).truncate_after(meta.state.epochs_done)?;
        let mut cfg2 = meta.train.clone();
        cfg2.epochs = cfg.epochs;
        write_atomic(&dir.join(CONFIG_FILE), checkpoint::config_json(model_cfg, &cfg2).as_bytes())?;
        let mut model = model;
        model.precision = cfg2.precision;
        return Ok(Run { dir: dir.to_path_buf(), model, adam, cfg: cfg2, state: meta.state });
    }
    if ckpt.exists() {
        return Err(Error::config(format!(
            "{} already holds a run; pass --resume to continue it, or choose another --out",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the run folder", e))?;
    // Writing the configuration first also proves the folder is writable before any work.
    write_atomic(&dir.join(CONFIG_FILE), checkpoint::config_json(model_cfg, cfg).as_bytes())?;
    let _ = std::fs::remove_file(dir.join(super::metrics::METRICS_FILE));
    let labelled = balanced_subset(&data.train_labels, data.n_classes, cfg.labels, cfg.seed)?;
    let state = TrainState {
        epochs_done: 0,
        steps_done: 0,
        adam_t: 0,
        noise: NoiseStreams::new(cfg.seed),
        order_rng_drawn: 0,
        label_rng_drawn: 0,
        label_order: labelled.clone(),
        label_cursor: labelled.len(), // forces a shuffle before first use
        labelled,
        seconds: 0.0,
    };
    let mut model = Cagem::new(model_cfg.clone(), cfg.seed, device);
    model.precision = cfg.precision;
    Ok(Run { dir: dir.to_path_buf(), model, adam: Adam::new(), cfg: cfg.clone(), state })
}

/// Checks options against each other and the data.
pub fn validate(model: &ModelConfig, cfg: &TrainConfig, data: &Dataset) -> Result<()> {
    if model.x_dim != data.dim() {
        return Err(Error::config(format!(
            "the model expects {} pixels, the data set has {}",
            model.x_dim,
            data.dim()
        )));
    }
    model.validate()?;
    if cfg.labels > 0 && model.clusters < data.n_classes {
        return Err(Error::config(format!(
            "--clusters {} is fewer than the {} classes of {}: with labels, every class needs a cluster",
            model.clusters, data.n_classes, data.name
        )));
    }
    if cfg.batch == 0 || cfg.batch > data.n_train() {
        return Err(Error::config(format!(
            "--batch {} must be between 1 and the {} training images",
            cfg.batch,
            data.n_train()
        )));
    }
    if cfg.batch < 2 {
        return Err(Error::config("--batch must be at least 2: batch normalisation needs two examples"));
    }
    if cfg.labels > 0 && cfg.labelled_batch < 2 {
        return Err(Error::config("--labelled-batch must be at least 2 (batch normalisation)"));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(Error::config(format!("--lr {} must be a positive number", cfg.lr)));
    }
    Ok(())
}

/// Human-readable differences between a saved and a requested configuration (epochs aside).
fn differences(m0: &ModelConfig, m1: &ModelConfig, t0: &TrainConfig, t1: &TrainConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |a: serde_json::Value, b: serde_json::Value| {
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            for (k, va) in a {
                let vb = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
                if k != "epochs" && *va != vb {
                    out.push(format!("{k} is {va} in the checkpoint, {vb} requested"));
                }
            }
        }
    };
    cmp(serde_json::to_value(m0).expect("json"), serde_json::to_value(m1).expect("json"));
    cmp(serde_json::to_value(t0).expect("json"), serde_json::to_value(t1).expect("json"));
    out
}

impl<T: Real> Run<T> {
    /// Trains until `cfg.epochs` epochs are done, checkpointing after each epoch.
    pub fn train(&mut self, data: &Dataset, dev_data: &DeviceData<T>, obs: &mut dyn Observer) -> Result<()> {
        let cfg = self.cfg.clone();
        let steps = data.n_train() / cfg.batch;
        let alpha = cfg.alpha(data.n_train());
        let metrics = MetricsLog::new(&self.dir);
        let labels_of = |rows: &[u32]| -> Vec<u32> { rows.iter().map(|&r| data.train_labels[r as usize]).collect() };
        while self.state.epochs_done < cfg.epochs {
            let epoch = self.state.epochs_done;
            let lr = cfg.lr_at(epoch);
            obs.epoch_start(epoch + 1, cfg.epochs, steps);
            let mut order_rng = HostRng::at_position(cfg.seed, ORDER_STREAM, self.state.order_rng_drawn);
            let mut order: Vec<u32> = (0..data.n_train() as u32).collect();
            order_rng.shuffle(&mut order);
            let started = Instant::now();
            let mut sums = StepScalars::default();
            let (mut hp_sum, mut hq_sum) = (0.0, 0.0);
            let mut temperature = 0.0;
            for step in 0..steps {
                temperature = cfg.temperature_at(epoch as f64 + step as f64 / steps as f64);
                let rows = &order[step * cfg.batch..(step + 1) * cfg.batch];
                let x_u = dev_data.train_batch(rows, self.state.noise.take());
                let lab_rows = self.next_labelled_rows();
                let lab = (!lab_rows.is_empty())
                    .then(|| (dev_data.train_batch(&lab_rows, self.state.noise.take()), labels_of(&lab_rows)));
                let s = train_step(
                    &mut self.model,
                    &mut self.adam,
                    &x_u,
                    lab.as_ref().map(|(x, y)| (x, y.as_slice())),
                    temperature,
                    alpha,
                    lr,
                    &mut self.state.noise,
                )?;
                sums.loss += s.loss;
                sums.elbo += s.elbo;
                sums.recon += s.recon;
                sums.neg_kl += s.neg_kl;
                hp_sum += s.hp.unwrap_or(0.0);
                hq_sum += s.hq.unwrap_or(0.0);
                self.state.steps_done += 1;
                let secs = started.elapsed().as_secs_f64();
                obs.step(&StepReport {
                    epoch: epoch + 1,
                    step: step + 1,
                    steps_per_epoch: steps,
                    scalars: s,
                    temperature,
                    lr,
                    examples_per_s: ((step + 1) * cfg.batch) as f64 / secs.max(1e-9),
                });
            }
            let secs = started.elapsed().as_secs_f64();
            self.state.seconds += secs;
            self.state.epochs_done += 1;
            self.state.order_rng_drawn = order_rng.position().2;
            self.state.adam_t = self.adam.t;
            checkpoint::save(&self.dir, &self.model, &self.adam, &cfg, &self.state)?;
            let n = steps.max(1) as f64;
            let mut record = serde_json::json!({
                "epoch": epoch + 1,
                "steps": self.state.steps_done,
                "lr": lr,
                "temperature": temperature,
                "loss": sums.loss / n,
                "elbo": sums.elbo / n,
                "recon": sums.recon / n,
                "neg_kl": sums.neg_kl / n,
                "examples_per_s": (steps * cfg.batch) as f64 / secs.max(1e-9),
                "epoch_seconds": secs,
                "seconds": self.state.seconds,
            });
            if cfg.labels > 0 {
                record["hp"] = (hp_sum / n).into();
                record["hq"] = (hq_sum / n).into();
            }
            metrics.append(&record)?;
            obs.epoch_end(&EpochReport { epoch: epoch + 1, epochs: cfg.epochs, record });
        }
        Ok(())
    }

    /// The labelled rows of the next step: all of them if they fit in a labelled batch,
    /// otherwise the next `labelled_batch` of a shuffled cycle through them.
    fn next_labelled_rows(&mut self) -> Vec<u32> {
        let n = self.state.labelled.len();
        if n == 0 {
            return Vec::new();
        }
        if n <= self.cfg.labelled_batch {
            return self.state.labelled.clone();
        }
        let mut rows = Vec::with_capacity(self.cfg.labelled_batch);
        while rows.len() < self.cfg.labelled_batch {
            if self.state.label_cursor >= n {
                let mut rng = HostRng::at_position(self.cfg.seed, LABEL_ORDER_STREAM, self.state.label_rng_drawn);
                self.state.label_order = self.state.labelled.clone();
                rng.shuffle(&mut self.state.label_order);
                self.state.label_rng_drawn = rng.position().2;
                self.state.label_cursor = 0;
            }
            rows.push(self.state.label_order[self.state.label_cursor]);
            self.state.label_cursor += 1;
        }
        rows
    }
}
