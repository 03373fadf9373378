//! A training run in a folder: opening it (fresh or resumed from its checkpoint), the epoch loop,
//! and the state that makes resumption exact (the resumed run continues as if never stopped).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cagem_autodiff::{Adam, Device, Real, Tensor};
use cagem_kernels::rng::HostRng;

use super::best::{self, BEST_FILE};
use super::lock::RunLock;
use super::metrics::MetricsLog;
use super::step::{StepScalars, train_step};
use crate::atomic::{remove_stale_temporaries, write_atomic};
use crate::checkpoint::{self, CONFIG_FILE, EpochSums, TrainState};
use crate::config::{ModelConfig, TrainConfig};
use crate::data::{Dataset, DeviceData, Standardizer, balanced_subset};
use crate::error::{Error, Result};
use crate::model::objective::LossWeights;
use crate::model::{Cagem, NoiseStreams};

/// Streams of the seed's host generator for the order of unlabelled and labelled examples.
const ORDER_STREAM: u64 = 0x004f_5244_4552; // "ORDER"
const LABEL_ORDER_STREAM: u64 = 0x4c4f_5244; // "LORD"

impl EpochSums {
    fn add(&mut self, s: &StepScalars) {
        self.loss += s.loss;
        self.elbo += s.elbo;
        self.recon += s.recon;
        self.neg_kl += s.neg_kl;
        self.hp += s.hp.unwrap_or(0.0);
        self.hq += s.hq.unwrap_or(0.0);
    }
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
    /// The periodic test evaluation after an epoch: `done` of `total` units of work.
    fn evaluating(&mut self, _done: usize, _total: usize) {}
    fn epoch_end(&mut self, _r: &EpochReport) {}
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// The validation split of a run whose data also has a test set: the periodic evaluation, the
/// best checkpoint and early stopping use it, never the test set.
pub struct ValidSet<T: Real> {
    pub x: Tensor<T>,
    pub labels: Vec<u32>,
}

pub struct Run<T: Real> {
    /// Where the periodic evaluation runs instead of the test set (set by the caller).
    pub valid: Option<ValidSet<T>>,
    pub dir: PathBuf,
    /// Held for the run's whole life: no second trainer may use the folder meanwhile.
    pub lock: RunLock,
    /// Raised (by a signal handler) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    pub model: Cagem<T>,
    pub adam: Adam<T>,
    pub cfg: TrainConfig,
    pub state: TrainState,
}

/// Opens a run folder: a fresh run (the folder must not hold one already) or, with `resume`,
/// the run saved there, whose configuration must match (only `MAY_CHANGE` may differ; a resume is
/// recorded in metrics.jsonl, and its changes in config.json's history).
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
        if !ckpt.exists() {
            checkpoint::load_meta(dir)?; // the error that says what is missing
        }
        let lock = RunLock::acquire(dir)?;
        remove_stale_temporaries(dir);
        let (model, adam, meta) = checkpoint::load::<T>(dir, device)?;
        let mut diffs = differences(&meta.model, model_cfg, &meta.train, cfg);
        // A data folder that moved: the same files (by checksum) in another folder may continue.
        let moved_data = meta.train.data_dir != cfg.data_dir
            && meta.train.data_checksums.is_some()
            && meta.train.data_checksums == cfg.data_checksums;
        if moved_data {
            diffs.retain(|d| !d.starts_with("data_dir "));
        }
        if let (Some(was), Some(now)) = (&meta.train.data_checksums, &cfg.data_checksums)
            && was != now
        {
            let changed: std::collections::BTreeSet<&str> =
                was.keys().chain(now.keys()).filter(|k| was.get(*k) != now.get(*k)).map(|k| k.as_str()).collect();
            let changed: Vec<&str> = changed.into_iter().collect();
            diffs.push(format!(
                "the data files differ from those the run trained on ({} changed, by SHA-256)",
                changed.join(", ")
            ));
        }
        if !diffs.is_empty() {
            return Err(Error::checkpoint(
                &ckpt,
                format!(
                    "cannot resume with a different configuration: {} (only --epochs, --lr, --max-skips, --precision, \
                     --eval-*, --threads, --device and --quiet may change)",
                    diffs.join("; ")
                ),
            ));
        }
        let mut state = meta.state;
        check_state(&state, data, cfg)
            .map_err(|d| Error::checkpoint(&ckpt, format!("training state is unusable: {d}")))?;
        let mut cfg2 = meta.train.clone();
        let mut changes = serde_json::Map::new();
        let (was, now) = (serde_json::to_value(&cfg2).expect("json"), serde_json::to_value(cfg).expect("json"));
        for key in MAY_CHANGE {
            if was[key] != now[key] {
                changes.insert(key.into(), serde_json::json!({ "from": was[key], "to": now[key] }));
            }
        }
        (cfg2.epochs, cfg2.lr, cfg2.max_skips, cfg2.precision) = (cfg.epochs, cfg.lr, cfg.max_skips, cfg.precision);
        (cfg2.eval_every, cfg2.eval_k, cfg2.eval_n) = (cfg.eval_every, cfg.eval_k, cfg.eval_n);
        cfg2.patience = cfg.patience;
        if cfg2.data_checksums.is_none() {
            cfg2.data_checksums = cfg.data_checksums.clone(); // a run from before they were recorded
        }
        if moved_data {
            changes.insert("data_dir".into(), serde_json::json!({ "from": was["data_dir"], "to": now["data_dir"] }));
            cfg2.data_dir = cfg.data_dir.clone();
        }
        let now = (device.name(), rayon::current_num_threads());
        if let (Some(d), Some(t)) = (&state.device, state.threads)
            && (d, t) != (&now.0, now.1)
        {
            eprintln!(
                "note: the checkpoint was computed on {d} with {t} threads, this run uses {} with {}: it \
                 continues correctly, but not bit for bit as an uninterrupted run would",
                now.0, now.1
            );
        }
        let log = MetricsLog::new(dir);
        log.truncate_after(state.epochs_done)?;
        // A line whose evaluation was interrupted is written by `train` once it is redone.
        if let Some(rec) = state.last_record.as_ref().filter(|_| !state.pending_eval) {
            log.restore_last(state.epochs_done, rec)?;
        }
        log.append(&serde_json::json!({
            "event": "resume",
            "epoch": state.epochs_done,
            "step": state.epoch_step,
            "changes": changes,
            "device": now.0,
            "threads": now.1,
        }))?;
        if !changes.is_empty() {
            state.history.push(serde_json::json!({ "epoch": state.epochs_done, "changes": changes }));
        }
        write_atomic(&dir.join(CONFIG_FILE), checkpoint::config_json(model_cfg, &cfg2, &state.history).as_bytes())?;
        let mut model = model;
        model.set_precision(cfg2.precision);
        return Ok(Run {
            valid: None,
            dir: dir.to_path_buf(),
            lock,
            stop: Arc::default(),
            model,
            adam,
            cfg: cfg2,
            state,
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the run folder", e))?;
    let lock = RunLock::acquire(dir)?;
    remove_stale_temporaries(dir);
    if ckpt.exists() {
        return Err(Error::config(format!(
            "{} already holds a run; pass --resume to continue it, or choose another --out",
            dir.display()
        )));
    }
    // Writing the configuration first also proves the folder is writable before any work.
    write_atomic(&dir.join(CONFIG_FILE), checkpoint::config_json(model_cfg, cfg, &[]).as_bytes())?;
    let _ = std::fs::remove_file(dir.join(super::metrics::METRICS_FILE));
    let labelled = if data.partial_labels {
        // The user's labels: exactly the labelled examples.
        data.labelled_indices()
    } else {
        balanced_subset(&data.train_labels, data.n_classes, cfg.labels, cfg.seed)?
    };
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
        history: Vec::new(),
        skipped_steps: 0,
        consecutive_skips: 0,
        epoch_step: 0,
        partial: None,
        last_record: None,
        device: None,
        threads: None,
        pending_eval: false,
        best: None,
    };
    let mut model = Cagem::new(model_cfg.clone(), cfg.seed, device);
    if model_cfg.standardize {
        model.set_standardizer(&Standardizer::fit(&data.train_features::<f32>(), data.dim()));
    }
    model.set_precision(cfg.precision);
    Ok(Run {
        valid: None,
        dir: dir.to_path_buf(),
        lock,
        stop: Arc::default(),
        model,
        adam: Adam::new(),
        cfg: cfg.clone(),
        state,
    })
}

/// Checks a saved training state against the data it will index (a damaged or edited checkpoint
/// must fail here, not panic later).
fn check_state(s: &TrainState, data: &Dataset, cfg: &TrainConfig) -> std::result::Result<(), String> {
    let n = data.n_train();
    if let Some(&r) = s.labelled.iter().chain(&s.label_order).find(|&&r| r as usize >= n) {
        return Err(format!("labelled index {r} is outside the {n} training images"));
    }
    if s.label_order.len() != s.labelled.len() || s.label_cursor > s.labelled.len() {
        return Err("the labelled order does not match the labelled subset".into());
    }
    if s.labelled.len() != cfg.labels {
        return Err(format!("{} labelled examples, the run has {}", s.labelled.len(), cfg.labels));
    }
    if s.epoch_step >= (n / cfg.batch.max(1)).max(1) {
        return Err(format!("step {} is past the end of an epoch", s.epoch_step));
    }
    Ok(())
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
    if data.partial_labels && cfg.labels != data.labelled_indices().len() {
        return Err(Error::config(format!(
            "{} labels {} training examples, but the run asks for {} (with partial labels the labelled set is \
             exactly the labelled examples)",
            data.provenance,
            data.labelled_indices().len(),
            cfg.labels
        )));
    }
    if cfg.labels > 0 && !data.has_train_labels() {
        return Err(Error::config(format!(
            "--labels {}: {} has no labels (use --labels 0)",
            cfg.labels, data.provenance
        )));
    }
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
    if let Some(c) = cfg.clip_norm
        && !(c > 0.0 && c.is_finite())
    {
        return Err(Error::config(format!("--clip-norm {c} must be a positive number")));
    }
    for (flag, v, lo, hi) in [
        ("--clip-value", cfg.clip_value, f64::MIN_POSITIVE, f64::MAX),
        ("--routing-floor", cfg.routing_floor, 0.0, 1.0),
        ("--free-bits-y", cfg.free_bits_y, 0.0, f64::MAX),
        ("--marginal-entropy-y", cfg.marginal_entropy_y, 0.0, f64::MAX),
        ("--log-py-weight", cfg.log_py_weight, 0.0, f64::MAX),
    ] {
        if let Some(v) = v
            && !(v >= lo && v <= hi && v.is_finite())
        {
            let range = if hi == 1.0 { "between 0 and 1".to_string() } else { format!("a number ≥ {lo}") };
            let range = if lo > 0.0 && hi == f64::MAX { "a positive number".to_string() } else { range };
            return Err(Error::config(format!("{flag} {v} must be {range}")));
        }
    }
    let d = cfg.objective_deviations();
    if d.log_py_qy_held && !d.reweights_log_py() {
        return Err(Error::config(
            "--deviation log-py-qy-held holds q's weights in the reweighted log p(y|z2) term: it needs \
             --log-py-weight W, --routing-floor EPS or --deviation routing-warmup beside it",
        ));
    }
    if cfg.max_skips == 0 {
        return Err(Error::config("--max-skips must be at least 1"));
    }
    if cfg.eval_every == Some(0) || cfg.eval_k == 0 || cfg.eval_n == 0 {
        return Err(Error::config("--eval-every, --eval-k and --eval-n must be at least 1"));
    }
    if cfg.patience.is_some() && (cfg.valid_fraction.is_none() || cfg.eval_every.is_none()) {
        return Err(Error::config(
            "--patience stops on the validation split: it needs --valid-fraction F (and periodic evaluation, \
             --eval-every E); early stopping never looks at the test set",
        ));
    }
    Ok(())
}

/// An epoch that skips more than this share of its steps (non-finite loss or gradient) ends the
/// run with an error: a run that learned nothing is not a success.
pub const MAX_SKIPPED_SHARE: f64 = 0.5;

/// What a resumed run may change: the length of the run, and the base learning rate (to recover
/// from a divergence; it replaces `lr` in lr·decay^⌊epoch/every⌋, the decay keeping its place).
/// `max_skips` only decides when to give up, not what is computed.
/// The periodic evaluation and the arithmetic of the products do not change the objective either
/// (bf16 is a rounding of the same products).
/// Early stopping's patience only decides when to stop.
const MAY_CHANGE: [&str; 8] = ["epochs", "lr", "max_skips", "eval_every", "eval_k", "eval_n", "precision", "patience"];

/// Human-readable differences between a saved and a requested configuration (`MAY_CHANGE` aside).
pub fn differences(m0: &ModelConfig, m1: &ModelConfig, t0: &TrainConfig, t1: &TrainConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |a: serde_json::Value, b: serde_json::Value| {
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            // Both ways: an option left out of one side (skipped when unset) is null there.
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let va = a.get(k).cloned().unwrap_or(serde_json::Value::Null);
                let vb = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
                // The data's checksums are compared by `open_run` itself.
                if !MAY_CHANGE.contains(&k.as_str()) && k != "data_checksums" && va != vb {
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
    /// Trains until `cfg.epochs` epochs are done, checkpointing after each epoch. When `stop` is
    /// raised (Ctrl-C), the current step finishes, a checkpoint of the exact position within the
    /// epoch is written, and `Error::Interrupted` returns; resuming continues bit for bit.
    pub fn train(&mut self, data: &Dataset, dev_data: &DeviceData<T>, obs: &mut dyn Observer) -> Result<()> {
        let cfg = self.cfg.clone();
        let steps = data.n_train() / cfg.batch;
        let alpha = cfg.alpha(data.n_train());
        let deviations = cfg.objective_deviations();
        let metrics = MetricsLog::new(&self.dir);
        self.adam.clip_norm = cfg.clip_norm;
        self.adam.clip_value = cfg.clip_value;
        let labels_of = |rows: &[u32]| -> Vec<u32> { rows.iter().map(|&r| data.train_labels[r as usize]).collect() };
        if self.state.pending_eval {
            // The evaluation an interrupt stopped, on the checkpoint of that epoch.
            let mut record = self.state.last_record.clone().unwrap_or_else(|| serde_json::json!({}));
            self.finish_epoch_record(&mut record, data, dev_data, obs, &metrics)?;
        }
        while self.state.epochs_done < cfg.epochs && !self.stopped_early() {
            let epoch = self.state.epochs_done;
            let lr = cfg.lr_at(epoch);
            obs.epoch_start(epoch + 1, cfg.epochs, steps);
            // The order generator's position only moves at epoch ends, so a run stopped mid-epoch
            // draws the same order again.
            let mut order_rng = HostRng::at_position(cfg.seed, ORDER_STREAM, self.state.order_rng_drawn);
            let mut order: Vec<u32> = (0..data.n_train() as u32).collect();
            order_rng.shuffle(&mut order);
            let started = Instant::now();
            let first_step = self.state.epoch_step;
            let mut acc = self.state.partial.take().unwrap_or_default();
            let mut temperature = 0.0;
            for step in first_step..steps {
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
                    LossWeights { temperature, alpha, deviations },
                    lr,
                    &mut self.state.noise,
                )?;
                self.state.steps_done += 1;
                self.state.epoch_step = step + 1;
                if s.skipped {
                    acc.skipped += 1;
                    self.state.skipped_steps += 1;
                    self.state.consecutive_skips += 1;
                    if self.state.consecutive_skips >= cfg.max_skips {
                        return Err(self.gave_up(epoch, step));
                    }
                } else {
                    self.state.consecutive_skips = 0;
                    acc.add(&s);
                }
                let secs = started.elapsed().as_secs_f64();
                obs.step(&StepReport {
                    epoch: epoch + 1,
                    step: step + 1,
                    steps_per_epoch: steps,
                    scalars: s,
                    temperature,
                    lr,
                    examples_per_s: ((step + 1 - first_step) * cfg.batch) as f64 / secs.max(1e-9),
                });
                if self.stop.load(Ordering::SeqCst) && step + 1 < steps {
                    acc.seconds += started.elapsed().as_secs_f64();
                    self.state.partial = Some(acc);
                    self.save()?;
                    return Err(self.interrupted());
                }
            }
            if acc.skipped as f64 > MAX_SKIPPED_SHARE * steps as f64 {
                return Err(self.learned_nothing(epoch, acc.skipped, steps));
            }
            let secs = acc.seconds + started.elapsed().as_secs_f64();
            self.state.seconds += secs;
            self.state.epochs_done += 1;
            self.state.epoch_step = 0;
            self.state.order_rng_drawn = order_rng.position().2;
            let n = (steps - acc.skipped).max(1) as f64;
            let mut record = serde_json::json!({
                "epoch": epoch + 1,
                "steps": self.state.steps_done,
                "lr": lr,
                "temperature": temperature,
                "loss": acc.loss / n,
                "elbo": acc.elbo / n,
                "recon": acc.recon / n,
                "neg_kl": acc.neg_kl / n,
                "examples_per_s": (steps * cfg.batch) as f64 / secs.max(1e-9),
                "epoch_seconds": secs,
                "seconds": self.state.seconds,
                "skipped_steps": acc.skipped,
            });
            if cfg.labels > 0 {
                record["hp"] = (acc.hp / n).into();
                record["hq"] = (acc.hq / n).into();
            }
            // The checkpoint carries the epoch's line, so a crash before the line is appended
            // loses nothing: the resume writes it.
            self.state.last_record = Some(record.clone());
            self.state.pending_eval = cfg.evaluates_after(epoch + 1);
            self.save()?;
            self.finish_epoch_record(&mut record, data, dev_data, obs, &metrics)?;
            if self.stop.load(Ordering::SeqCst) && self.state.epochs_done < cfg.epochs {
                return Err(self.interrupted());
            }
        }
        Ok(())
    }

    /// The end of an epoch after its checkpoint: the periodic evaluation where one is due
    /// (`pending_eval`; after the checkpoint, so that the figures are those of the saved model,
    /// saved again with them), then the metrics line. An interrupt during the evaluation stops it
    /// at once; the resume redoes it.
    fn finish_epoch_record(
        &mut self,
        record: &mut serde_json::Value,
        data: &Dataset,
        dev_data: &DeviceData<T>,
        obs: &mut dyn Observer,
        metrics: &MetricsLog,
    ) -> Result<()> {
        if self.state.pending_eval {
            if !self.add_test_metrics(record, data, dev_data, obs) {
                return Err(self.interrupted());
            }
            self.state.pending_eval = false;
            if self.cfg.valid_fraction.is_some() {
                let prefix = self.eval_prefix();
                if best::update(&mut self.state.best, self.state.epochs_done, record, prefix) {
                    self.state.last_record = Some(record.clone());
                    self.save_as(BEST_FILE)?;
                }
                if let Some(b) = &self.state.best {
                    record["best_epoch"] = b.epoch.into();
                    record["best_by"] = format!("{prefix}{}", b.by).into();
                    record["best_value"] = b.value.into();
                }
            }
            self.state.last_record = Some(record.clone());
            self.save()?;
        }
        metrics.append(record)?;
        obs.epoch_end(&EpochReport { epoch: self.state.epochs_done, epochs: self.cfg.epochs, record: record.clone() });
        Ok(())
    }

    /// Evaluates the model on `eval_n` test images spread over the classes with IW-`eval_k` (the
    /// code and noise seed of `cagem eval --k K --n-test N --spread`) and adds the figures to the
    /// epoch's `record` as test_* keys. Its own noise streams leave training's untouched.
    fn add_test_metrics(
        &mut self,
        record: &mut serde_json::Value,
        data: &Dataset,
        dev_data: &DeviceData<T>,
        obs: &mut dyn Observer,
    ) -> bool {
        let (all_x, all_labels) = match &self.valid {
            Some(v) => (&v.x, &v.labels),
            None => (&dev_data.test, &data.test_labels),
        };
        if all_labels.is_empty() {
            return true;
        }
        let rows = crate::eval::spread_over_classes(all_labels, self.cfg.eval_n.max(1));
        let x = crate::eval::select_rows(all_x, &rows);
        let labels: Vec<u32> = rows.iter().map(|&r| all_labels[r]).collect();
        let opts = crate::eval::EvalOptions {
            k: self.cfg.eval_k.max(1),
            clusters_are_classes: self.cfg.labels > 0,
            stop: Some(self.stop.clone()),
            ..Default::default()
        };
        let evaluated =
            crate::eval::evaluate_rows_until(&mut self.model, &x, &labels, &opts, &mut |d, t| obs.evaluating(d, t));
        let Some(r) = evaluated else { return false };
        let fields = serde_json::json!({
            "k": r.iw_k,
            "n": r.n_test,
            "log_likelihood": r.log_likelihood,
            "elbo": r.elbo,
            "error_p": r.error_p,
            "error_q": r.error_q,
            "kl_z2": r.kl_z2,
            "active_units_z1": r.active_units_z1,
            "active_units_z2": r.active_units_z2,
            "routing": r.clusters.routing,
            "routing_sampled": r.clusters.routing_sampled,
            "routing_q_weighted": r.clusters.routing_q_weighted,
            "routing_by_cluster": r.clusters.routing_by_cluster,
            "z2_separation": r.clusters.z2_separation,
            "z2_separation_by_q": r.clusters.z2_separation_by_q,
            "clusters_used": r.clusters.clusters_used,
            "clusters_perplexity": r.clusters.clusters_perplexity,
            "seconds": r.seconds,
        });
        let prefix = self.eval_prefix();
        for (k, v) in fields.as_object().expect("object") {
            record[format!("{prefix}{k}")] = v.clone();
        }
        true
    }

    /// The keys of the periodic evaluation in metrics.jsonl: valid_* on a validation split beside
    /// the test set, test_* on the test set (which is the held-out split for data without one).
    pub fn eval_prefix(&self) -> &'static str {
        if self.valid.is_some() { "valid_" } else { "test_" }
    }

    /// Whether early stopping ended the run: `patience` evaluations without a better one.
    pub fn stopped_early(&self) -> bool {
        matches!((self.cfg.patience, &self.state.best), (Some(p), Some(b)) if b.evals_since >= p)
    }

    /// Writes the checkpoint of the current state.
    fn save(&mut self) -> Result<()> {
        self.save_as(checkpoint::CHECKPOINT_FILE)
    }

    fn save_as(&mut self, file: &str) -> Result<()> {
        self.state.adam_t = self.adam.t;
        self.state.device = Some(self.model.device().name());
        self.state.threads = Some(rayon::current_num_threads());
        checkpoint::save_as(&self.dir, file, &self.model, &self.adam, &self.cfg, &self.state)
    }

    fn interrupted(&self) -> Error {
        let at = if self.state.epoch_step == 0 {
            format!("after epoch {}", self.state.epochs_done)
        } else {
            format!("at step {} of epoch {}", self.state.epoch_step, self.state.epochs_done + 1)
        };
        Error::Interrupted(format!(
            "stopped {at}; the checkpoint in {} is written. Continue with: cagem train --out {} --resume",
            self.dir.display(),
            self.dir.display()
        ))
    }

    /// The error that ends a run after `max_skips` consecutive skipped steps; the checkpoint on
    /// disk is the last epoch that ended well.
    fn gave_up(&self, epoch: usize, step: usize) -> Error {
        let resume = if self.dir.join(checkpoint::CHECKPOINT_FILE).exists() {
            format!(
                "the last checkpoint in {} was written before these steps and is intact: resume it with a \
                 smaller rate, e.g. `cagem train --out {} --resume --lr {:e}` (or add --clip-norm to a new run)",
                self.dir.display(),
                self.dir.display(),
                self.cfg.lr / 10.0
            )
        } else {
            "no epoch ended, so there is no checkpoint: start again with a smaller --lr or --clip-norm".to_string()
        };
        Error::Diverged(format!(
            "{} consecutive steps had a non-finite loss or gradient and were skipped (epoch {}, step {}); {resume}",
            self.state.consecutive_skips,
            epoch + 1,
            step + 1
        ))
    }

    /// The error that ends a run whose epoch skipped more than `MAX_SKIPPED_SHARE` of its steps
    /// (nothing is saved for that epoch: the checkpoint on disk is the last one that learned).
    fn learned_nothing(&self, epoch: usize, skipped: usize, steps: usize) -> Error {
        let last = if self.dir.join(checkpoint::CHECKPOINT_FILE).exists() && self.state.epochs_done > 0 {
            format!(
                "the last good checkpoint is {} (after epoch {})",
                self.dir.join(checkpoint::CHECKPOINT_FILE).display(),
                self.state.epochs_done
            )
        } else {
            "no epoch ended well, so there is no checkpoint".to_string()
        };
        Error::Diverged(format!(
            "epoch {} skipped {skipped} of its {steps} steps for a non-finite loss or gradient, so the model is not \
             learning: check the data's range (features far from 0 overflow the Gaussian densities; try \
             --standardize), a smaller --lr or --beta, or --clip-norm; {last}",
            epoch + 1
        ))
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
