//! `cagem train`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cagem::checkpoint::{self, CheckpointMeta};
use cagem::data::{Dataset, DeviceData};
use cagem::deviation::Deviation;
use cagem::recipe::Recipe;
use cagem::train::Observer;
use cagem::train::open_run;
use cagem::train::run::ValidSet;
use cagem::{Likelihood, ModelConfig, Result, TrainConfig};

use crate::args::TrainArgs;
use crate::data_source;
use crate::progress::TrainProgress;

/// Where `train` reports: the terminal (`run`), or another front end (the Python package).
pub trait TrainUi {
    /// A line about what the run does (never called with --quiet).
    fn note(&mut self, line: &str);
    /// A warning, or the line naming the run's deviations from the paper (also with --quiet).
    fn warn(&mut self, line: &str);
    /// A line of the final summary.
    fn result(&mut self, line: &str);
    /// What follows the epochs.
    fn observer(&mut self) -> &mut dyn Observer;
    /// The run's stop flag: raising it stops the run after the current step, with a checkpoint.
    fn stop_with(&mut self, stop: Arc<AtomicBool>);
}

/// The terminal: notes and warnings on stderr, the summary on stdout, progress bars, and Ctrl-C.
struct Terminal(TrainProgress);

impl TrainUi for Terminal {
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn warn(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn result(&mut self, line: &str) {
        println!("{line}");
    }
    fn observer(&mut self) -> &mut dyn Observer {
        &mut self.0
    }
    fn stop_with(&mut self, stop: Arc<AtomicBool>) {
        stop_on_signal(stop);
    }
}

/// `cagem train` on the terminal.
pub fn run(a: TrainArgs) -> Result<()> {
    let progress = TrainProgress::new(a.quiet, a.log_every);
    train(a, &mut Terminal(progress)).map(|_| ())
}

/// Trains as `cagem train` does, reporting to `ui`; returns the run folder.
pub fn train(a: TrainArgs, ui: &mut dyn TrainUi) -> Result<PathBuf> {
    let device = a.device.open()?;
    // A resumed run starts from its own configuration; only the options given override it.
    let saved = match (&a.out, a.resume) {
        (Some(out), true) => Some(checkpoint::load_meta(out)?),
        _ => None,
    };
    let (mut model_cfg, mut cfg) = requested(&a, saved.as_ref());
    // Options that contradict each other are refused before the data are read (and warned about).
    model_cfg.validate()?;
    cfg.precision =
        cagem::precision::resolve(a.precision.as_deref(), saved.as_ref().map(|m| m.train.precision), &device)?;
    if cfg.dataset == "npy"
        && let Some(dir) = &cfg.data_dir
    {
        cfg.data_checksums = Some(cagem::data::npy::checksums(Path::new(dir))?);
    }
    let (mut data, valid) = data_source::with_validation(&cfg, &model_cfg, None)?;
    if let Some(n) = cfg.n_train {
        data = data.truncated(n, data.n_test());
    }
    (model_cfg.x_dim, model_cfg.height, model_cfg.width) = (data.dim(), data.height, data.width);
    let (labels, labels_note) = labels_for(&data, cfg.labels);
    cfg.labels = labels;
    let chosen = if saved.is_none() {
        cagem::defaults::apply(|id| a.was_given(id), &data, &mut model_cfg, &mut cfg)
    } else {
        Default::default()
    };
    for w in &chosen.warnings {
        ui.warn(&format!("warning: {w}"));
    }
    let out = a.out.clone().unwrap_or_else(|| default_run_dir(&cfg, &model_cfg));
    if let Some(meta) = &saved {
        let done = meta.state.epochs_done;
        let conflicts = cagem::train::run::differences(&meta.model, &model_cfg, &meta.train, &cfg);
        if cfg.epochs <= done && !meta.state.pending_eval && conflicts.is_empty() {
            // Nothing is written: the run stays as it is (leftovers of a killed write aside). The
            // lock still says whether another trainer is using the folder (then its epochs are
            // not these).
            let _lock = cagem::train::lock::RunLock::acquire(&out)?;
            cagem::atomic::remove_stale_temporaries(&out);
            ui.result(&format!(
                "nothing to train: {} has {done} epochs and --epochs asks for {}; its checkpoint is unchanged \
                 (give --epochs above {done} to continue)",
                out.display(),
                cfg.epochs
            ));
            return Ok(out);
        }
    }
    let mut run = open_run::<f32>(&out, &model_cfg, &cfg, &data, &device, a.resume)?;
    // --quiet: warnings, errors and the final summary only.
    macro_rules! say {
        ($($t:tt)*) => { if !a.quiet { ui.note(&format!($($t)*)); } };
    }
    say!("data: {} ({} train, {} test images)", data.provenance, data.n_train(), data.n_test());
    if let Some(note) = labels_note {
        say!("labels: {note}");
    }
    for note in &chosen.notes {
        say!("{note}");
    }
    say!(
        "model: CaGeM-{} K={} z1={} z2={} q {:?} p {:?}, {} parameters, on {} ({} matrix products)",
        run.cfg.labels,
        model_cfg.clusters,
        model_cfg.z1,
        model_cfg.z2,
        model_cfg.q_hidden,
        model_cfg.p_hidden,
        run.model.store.trainable_count(),
        device.name(),
        run.cfg.precision.name()
    );
    let c = &run.cfg;
    let deviations: Vec<String> = (!model_cfg.skip_x_to_z2)
        .then_some(Deviation::NoSkipXZ2)
        .into_iter()
        .chain(c.deviations.iter().copied())
        .map(|d| d.name().to_string())
        .chain(c.clip_norm.map(|v| format!("clip-norm {v}")))
        .chain(c.clip_value.map(|v| format!("clip-value {v}")))
        .chain(c.routing_floor.map(|v| format!("routing-floor {v}")))
        .chain(c.free_bits_y.map(|v| format!("free-bits-y {v}")))
        .chain(c.marginal_entropy_y.map(|v| format!("marginal-entropy-y {v}")))
        .chain(c.log_py_weight.map(|v| format!("log-py-weight {v}")))
        .collect();
    if !deviations.is_empty() {
        // Shown also with --quiet, as a warning: the run is not the paper's model.
        let recipe = c.recipe.map(|r| format!(" (recipe {})", r.name())).unwrap_or_default();
        ui.warn(&format!("DEVIATIONS from the paper{recipe}: {}", deviations.join(", ")));
    }
    if a.resume {
        say!("resuming {} after epoch {}", out.display(), run.state.epochs_done);
    }
    say!("run folder: {}", out.display());
    ui.stop_with(run.stop.clone());
    let dev_data = DeviceData::<f32>::for_model(&device, &data, &model_cfg, run.model.standardizer().as_ref());
    if let Some(v) = &valid {
        // The validation split beside the test set: the periodic evaluation runs on it.
        let dv = DeviceData::<f32>::for_model(&device, v, &model_cfg, run.model.standardizer().as_ref());
        run.valid = Some(ValidSet { x: dv.test, labels: v.test_labels.clone() });
        say!("validation: {} held-out examples (periodic evaluation, best checkpoint, --patience)", v.n_test());
    }
    run.train(&data, &dev_data, ui.observer())?;
    let early = if run.stopped_early() {
        format!(" (stopped early: {} evaluations without a better validation figure)", run.cfg.patience.unwrap_or(0))
    } else {
        String::new()
    };
    ui.result(&format!("trained {} epochs{early}; checkpoint and metrics in {}", run.state.epochs_done, out.display()));
    if let Some(b) = &run.state.best {
        ui.result(&format!(
            "best checkpoint: epoch {} by the {} ({}); use it with --checkpoint best",
            b.epoch,
            b.describe(),
            out.join(cagem::train::best::BEST_FILE).display()
        ));
    }
    if data.n_test() > 0 {
        ui.result(&format!("evaluate with: cagem eval --run {}", out.display()));
    }
    Ok(out)
}

/// Ctrl-C, SIGTERM or SIGHUP: finish the current step, write a checkpoint, exit 130. A second
/// signal exits at once (checkpoints are written atomically, so none is left half-written).
fn stop_on_signal(stop: Arc<AtomicBool>) {
    let installed = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: exiting without waiting for the step");
            std::process::exit(130);
        }
        eprintln!("interrupt: finishing the current step, then writing a checkpoint");
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last epoch");
    }
}

/// The configuration the command line asks for: the defaults overridden by the options given, or
/// with --resume the run's own configuration overridden by them (`open_run` then refuses the
/// overrides that may not change).
fn requested(a: &TrainArgs, saved: Option<&CheckpointMeta>) -> (ModelConfig, TrainConfig) {
    let (mut m, mut t) = match saved {
        Some(s) => (s.model.clone(), s.train.clone()),
        None => (ModelConfig::default(), TrainConfig::default()),
    };
    let fresh = saved.is_none();
    macro_rules! take {
        ($($dst:expr => $id:literal = $val:expr),* $(,)?) => {
            $(if fresh || a.was_given($id) { $dst = $val; })*
        };
    }
    take! {
        t.dataset => "dataset" = a.dataset.clone(),
        t.data_dir => "data" = a.data.as_deref().map(|d| recorded_dir(if a.was_given("dataset") || fresh { &a.dataset } else { &t.dataset }, d)),
        t.valid_fraction => "valid_fraction" = a.valid_fraction,
        t.patience => "patience" = a.patience,
        t.n_train => "n_train" = a.n_train,
        t.labels => "labels" = a.labels,
        t.epochs => "epochs" = a.epochs,
        t.batch => "batch" = a.batch,
        t.labelled_batch => "labelled_batch" = a.labelled_batch,
        t.warmup => "warmup" = a.warmup,
        t.seed => "seed" = a.seed,
        t.lr => "lr" = a.lr,
        t.beta => "beta" = a.beta,
        t.clip_norm => "clip_norm" = a.clip_norm,
        t.clip_value => "clip_value" = a.clip_value,
        t.routing_floor => "routing_floor" = a.routing_floor,
        t.free_bits_y => "free_bits_y" = a.free_bits_y,
        t.marginal_entropy_y => "marginal_entropy_y" = a.marginal_entropy_y,
        t.log_py_weight => "log_py_weight" = a.log_py_weight,
        t.max_skips => "max_skips" = a.max_skips,
        t.eval_every => "eval_every" = a.eval_every,
        t.eval_k => "eval_k" = a.eval_k,
        t.eval_n => "eval_n" = a.eval_n,
        m.z1 => "z1" = a.z1,
        m.z2 => "z2" = a.z2,
        m.clusters => "clusters" = a.clusters,
        m.q_hidden => "q_hidden" = a.q_hidden,
        m.p_hidden => "p_hidden" = a.p_hidden,
        m.likelihood => "likelihood" = if a.likelihood == "gaussian" { Likelihood::Gaussian } else { Likelihood::Bernoulli },
        m.standardize => "standardize" = a.standardize,
        m.binarize => "binarize" = a.binarize.as_deref() != Some("none"),
        m.min_std => "min_std" = a.min_std,
    }
    if fresh || a.was_given("deviation") {
        let mut list: Vec<Deviation> = a.deviation.iter().filter_map(|n| Deviation::parse(n)).collect();
        list.sort();
        list.dedup();
        m.skip_x_to_z2 = !list.contains(&Deviation::NoSkipXZ2);
        t.deviations = list.into_iter().filter(|d| !d.is_architectural()).collect();
    }
    // After the options: a recipe fills in only the deviations they leave off.
    if let Some(r) = a.recipe.as_deref().and_then(Recipe::parse) {
        t.apply_recipe(r);
    }
    (m, t)
}

/// The data folder as the run records it: absolute for NumPy data, so that commands on the run
/// find it from any working folder.
fn recorded_dir(dataset: &str, dir: &Path) -> String {
    let dir =
        if dataset == "npy" { std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()) } else { dir.into() };
    dir.display().to_string()
}

/// Labelled examples of the run: with partial labels (−1 in train_y.npy) exactly the labelled
/// ones, none without labels, otherwise the balanced subset of `--labels`; and a note saying so
/// where that is not what `--labels` asked for.
fn labels_for(data: &Dataset, requested: usize) -> (usize, Option<String>) {
    if data.partial_labels {
        let n = data.labelled_indices().len();
        (n, Some(format!("the {n} labelled examples of train_y.npy (--labels does not apply)")))
    } else if !data.has_train_labels() {
        // Test labels alone (test_y.npy) name clusters for the error rates; they train nothing.
        (0, (requested > 0).then(|| "no train_y.npy: training unsupervised (CaGeM-0)".to_string()))
    } else {
        (requested, None)
    }
}

fn default_run_dir(cfg: &TrainConfig, m: &ModelConfig) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(format!("{}-l{}-k{}-{}", cfg.dataset, cfg.labels, m.clusters, utc_stamp(secs)))
}

/// YYYYmmdd-HHMMSS in UTC (civil-from-days, Howard Hinnant's algorithm).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamp_known_dates() {
        assert_eq!(super::utc_stamp(0), "19700101-000000");
        assert_eq!(super::utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(super::utc_stamp(1_795_591_845), "20261125-073045");
    }
}
