//! `cagem predict`, `encode` and `score`: per-example results of a trained run, written as
//! NumPy arrays (.npz) or CSV. They run the code of `eval` and `latent` (cagem::eval) on a split
//! of the run's data or on new examples (`--input F.npy`).

use cagem::checkpoint::{self, CheckpointMeta};
use cagem::data::{DeviceData, eval_rows, npy};
use cagem::eval::{
    EVAL_SEED, EvalOptions, argmax_rows, class_probabilities, classification_error, iw_per_example, posterior_means,
};
use cagem::model::{Cagem, IwEstimator, NoiseStreams};
use cagem::{Error, Result};
use cagem_autodiff::Tensor;
use cagem_report::export::{self, Column, Values};
use indicatif::ProgressBar;

use crate::args::{EncodeArgs, OutputCommon, PredictArgs, ScoreArgs, checkpoint_file};
use crate::data_source;
use crate::progress::bar;

/// The examples a command runs on, as the model sees them (binarised once or standardised).
struct Examples {
    x: Tensor<f32>,
    /// Their labels where the data has them (UNLABELLED entries allowed).
    labels: Option<Vec<u32>>,
    what: String,
}

fn open(c: &OutputCommon) -> Result<(Cagem<f32>, CheckpointMeta, Examples)> {
    // Refuse a bad --out before any work.
    export::format_of(&c.out)?;
    let device = c.device.open()?;
    let (model, _, meta) = checkpoint::load_file::<f32>(&c.run, checkpoint_file(&c.checkpoint), &device)?;
    let (cfg, st) = (&model.cfg, model.standardizer());
    let examples = if let Some(path) = &c.input {
        let values = npy::examples_for_model(path, cfg.height, cfg.width, cfg.likelihood)?;
        let x = eval_rows(&device, values, cfg.x_dim, cfg.binarizes(), st.as_ref());
        Examples { what: format!("{} ({} examples)", path.display(), x.rows()), x, labels: None }
    } else {
        let data = data_source::for_run(&meta.train, &meta.model, c.data.as_deref())?;
        if data.dim() != cfg.x_dim {
            return Err(Error::config(format!(
                "the run's model expects {} features per example, {} has {}",
                cfg.x_dim,
                data.provenance,
                data.dim()
            )));
        }
        if c.split == "test" && data.n_test() == 0 {
            return Err(data_source::no_test_set(&data));
        }
        let dd = DeviceData::<f32>::for_model(&device, &data, cfg, st.as_ref());
        let has_labels = data.n_classes > 0;
        let (x, labels) = match c.split.as_str() {
            "train" => (dd.train_eval(), data.train_labels),
            _ => (dd.test, data.test_labels),
        };
        Examples {
            what: format!("the {} split of {} ({} examples)", c.split, data.provenance, x.rows()),
            x,
            labels: has_labels.then_some(labels),
        }
    };
    Ok((model, meta, examples))
}

fn progress(c: &OutputCommon, what: &str, n: usize) -> ProgressBar {
    let pb = bar(n as u64, c.quiet);
    pb.set_prefix(what.to_string());
    pb
}

fn finish(c: &OutputCommon, pb: ProgressBar, columns: &[Column], ex: &Examples, seconds: f64) -> Result<()> {
    pb.finish_and_clear();
    export::write(&c.out, columns)?;
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    println!(
        "wrote {} ({}) for {} in {seconds:.1} s ({:.0} examples/s)",
        c.out.display(),
        names.join(", "),
        ex.what,
        ex.x.rows() as f64 / seconds.max(1e-9)
    );
    Ok(())
}

pub fn predict(a: PredictArgs) -> Result<()> {
    if a.samples == 0 {
        return Err(Error::config("--samples must be at least 1"));
    }
    let c = &a.common;
    let (mut model, meta, ex) = open(c)?;
    let (n, k) = (ex.x.rows(), model.cfg.clusters);
    let started = std::time::Instant::now();
    let pb = progress(c, "predict", n);
    let mut noise = NoiseStreams::new(EVAL_SEED);
    let chunk = EvalOptions::default().chunk_rows;
    let (p_y, q_y) =
        class_probabilities(&mut model, &ex.x, a.samples, chunk, &mut noise, &mut |d| pb.set_position(d as u64));
    let (pred_p, pred_q) = (argmax_rows(&p_y, k), argmax_rows(&q_y, k));
    let seconds = started.elapsed().as_secs_f64();
    if let Some(labels) = &ex.labels {
        let named = meta.train.labels > 0;
        let error = |p: &[usize]| classification_error(p, labels, k, named);
        let labelled = labels.iter().filter(|&&l| l != cagem::data::UNLABELLED).count();
        if let (Some(ep), Some(eq)) = (error(&pred_p), error(&pred_q)) {
            let mapping = if named { "cluster k is class k" } else { "cluster named by its majority class" };
            println!(
                "error p(y|x) {:.2} %, q(y|x) {:.2} % over the {labelled} labelled examples ({mapping})",
                100.0 * ep,
                100.0 * eq
            );
        }
    }
    let (use_p, why) = classifier_choice(&c.run, &meta);
    if !c.quiet {
        eprintln!("pred: {why}");
    }
    let pred = if use_p { pred_p.clone() } else { pred_q.clone() };
    let to_i64 = |v: Vec<usize>| Values::I64(v.into_iter().map(|c| c as i64).collect());
    let columns = [
        Column::matrix("p_y", k, p_y),
        Column::matrix("q_y", k, q_y),
        Column::vector("pred_p", to_i64(pred_p)),
        Column::vector("pred_q", to_i64(pred_q)),
        Column::vector("pred", to_i64(pred)),
    ];
    finish(c, pb, &columns, &ex, seconds)
}

/// Which classifier `pred` follows: q(y|x), the one trained on the labels directly, unless the
/// run's latest evaluation of a validation split (--valid-fraction) found p(y|x) better.
pub fn classifier_choice(run: &std::path::Path, meta: &CheckpointMeta) -> (bool, String) {
    let q = (false, "q(y|x) (trained on the labels directly; `pred_p` holds p(y|x)'s)".to_string());
    if meta.train.valid_fraction.is_none() {
        return q;
    }
    let text = std::fs::read_to_string(run.join(cagem::train::metrics::METRICS_FILE)).unwrap_or_default();
    let last = text.lines().rev().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|r| {
        let prefix = if r.get("valid_error_q").is_some() { "valid_" } else { "test_" };
        let g = |k: &str| r.get(format!("{prefix}{k}")).and_then(|v| v.as_f64());
        Some((g("error_p")?, g("error_q")?, r.get("epoch")?.as_u64()?))
    });
    match last {
        Some((p, q, epoch)) if p < q => (
            true,
            format!(
                "p(y|x), better on the validation split at epoch {epoch} ({:.2} % against q(y|x)'s {:.2} %)",
                100.0 * p,
                100.0 * q
            ),
        ),
        _ => q,
    }
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let c = &a.common;
    let (mut model, _, ex) = open(c)?;
    let started = std::time::Instant::now();
    let pb = progress(c, "encode", ex.x.rows());
    let (z1, z2) = posterior_means(&mut model, &ex.x, &mut |d| pb.set_position(d as u64));
    let seconds = started.elapsed().as_secs_f64();
    let columns = [Column::matrix("z1_mean", model.cfg.z1, z1), Column::matrix("z2_mean", model.cfg.z2, z2)];
    finish(c, pb, &columns, &ex, seconds)
}

pub fn score(a: ScoreArgs) -> Result<()> {
    if a.k == 0 {
        return Err(Error::config("--k must be at least 1"));
    }
    let c = &a.common;
    let (mut model, _, ex) = open(c)?;
    let started = std::time::Instant::now();
    let pb = progress(c, &format!("score IW-{}", a.k), ex.x.rows());
    let estimator = if a.estimator == "sample-y" { IwEstimator::SampleY } else { IwEstimator::SumY };
    let opts = EvalOptions { k: a.k, chunk_rows: a.chunk.max(1), estimator, ..EvalOptions::default() };
    let mut noise = NoiseStreams::new(opts.seed);
    let iw = iw_per_example(&mut model, &ex.x, &opts, &mut noise, &mut |d| pb.set_position(d as u64));
    let seconds = started.elapsed().as_secs_f64();
    let mean = iw.log_likelihood.iter().sum::<f64>() / iw.log_likelihood.len().max(1) as f64;
    println!("mean IW-{} bound {mean:.3} nats ({})", a.k, estimator.describe());
    finish(c, pb, &[Column::vector("log_likelihood", Values::F64(iw.log_likelihood))], &ex, seconds)
}
