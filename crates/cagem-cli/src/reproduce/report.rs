//! Gathers the run folders of a reproduction into the paper's table: our figure beside the
//! paper's for every row, as Markdown and JSON.

use std::path::Path;

use cagem::{Error, Result};
use cagem_report::paper::{PaperConfig, Reported, Table};
use serde_json::{Value, json};

use super::plan::FINAL_EVAL_FILE;

/// The epochs of the full schedule (`cagem train`'s default); fewer is a shortened schedule.
const FULL_EPOCHS: usize = 1000;
/// The paper's KL warm-up, in epochs.
const PAPER_WARMUP: f64 = 100.0;

/// The final evaluation saved in a run folder, if there is one.
pub fn final_eval(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(FINAL_EVAL_FILE)).ok()?).ok()
}

/// What a run folder holds: its configuration, its epoch lines and its final evaluation.
struct RunRecord {
    config: Option<Value>,
    epochs: Vec<Value>,
    final_eval: Option<Value>,
}

fn read_run(dir: &Path) -> Result<RunRecord> {
    let config = match std::fs::read_to_string(dir.join("config.json")) {
        Ok(t) => Some(
            serde_json::from_str(&t)
                .map_err(|e| Error::config(format!("{}: not valid JSON ({e})", dir.join("config.json").display())))?,
        ),
        Err(_) => None,
    };
    let metrics = dir.join("metrics.jsonl");
    let epochs = std::fs::read_to_string(&metrics)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_none())
        .collect();
    Ok(RunRecord { config, epochs, final_eval: final_eval(dir) })
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn pct(e: Option<f64>) -> String {
    e.map_or("–".into(), |e| format!("{:.2} %", 100.0 * e))
}

fn nats(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn duration(s: f64) -> String {
    match s {
        s if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        s if s >= 60.0 => format!("{:.0} min", s / 60.0),
        s => format!("{s:.0} s"),
    }
}

/// The table's Markdown and JSON from the run folders `out/<config>/`.
pub fn gather(
    table: Table,
    configs: &[PaperConfig],
    out: &Path,
    epochs: usize,
    n_train: Option<usize>,
    warmup: f64,
) -> Result<(String, Value)> {
    let shortened = epochs < FULL_EPOCHS || n_train.is_some() || warmup != PAPER_WARMUP;
    let mut title = format!("{} — cagem, {epochs} epochs", table.title());
    if let Some(n) = n_train {
        title += &format!(", first {n} training images");
    }
    if warmup != PAPER_WARMUP {
        title += &format!(", warm-up over {warmup} epochs");
    }
    if shortened {
        title += &format!(
            " (SHORTENED schedule: the full one is {FULL_EPOCHS} epochs on all training images, warm-up over {PAPER_WARMUP})"
        );
    }
    let mut rows = Vec::new();
    let mut md = format!("# {title}\n\n");
    md += "| configuration | labels | K | epochs | IW-k (ours) | paper | Δ nats | test ELBO | error p(y\\|x) | paper | \
           error q(y\\|x) | KL(z2) | active z1/z2 | routing | z2 separation | clusters used | precision | train | eval |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for c in configs {
        let r = read_run(&out.join(c.name))?;
        let (paper_ll, paper_err) = match c.reported {
            Reported::LogLikelihood(v) => (Some(v), None),
            Reported::ErrorP(v) => (None, Some(v)),
        };
        let done = r.epochs.last().and_then(|e| e["epoch"].as_u64()).unwrap_or(0);
        let target = r.config.as_ref().and_then(|c| c["train"]["epochs"].as_u64()).unwrap_or(epochs as u64);
        let precision = r.config.as_ref().and_then(|c| c["train"]["precision"].as_str()).unwrap_or("f32").to_string();
        let train_s = r.epochs.last().and_then(|e| num(e, "seconds")).unwrap_or(0.0);
        let status = match (&r.final_eval, done) {
            (Some(_), _) => "evaluated".to_string(),
            (None, 0) => "not started".to_string(),
            (None, d) => format!("training ({d} of {target} epochs)"),
        };
        let f = r.final_eval.as_ref();
        let ours_ll = f.and_then(|e| num(e, "log_likelihood"));
        let ours_err = f.and_then(|e| num(e, "error_p"));
        let iw =
            f.map_or("–".to_string(), |e| format!("{} (IW-{}, {} images)", nats(ours_ll), e["iw_k"], e["n_test"]));
        let delta = match (ours_ll, paper_ll) {
            (Some(o), Some(p)) => format!("{:+.2}", o - p),
            _ => "–".into(),
        };
        let active = f.map_or("–".to_string(), |e| format!("{}/{}", e["active_units_z1"], e["active_units_z2"]));
        let eval_s = f.and_then(|e| num(e, "seconds")).unwrap_or(0.0);
        let fig = |k: &str| f.and_then(|e| num(e, k)).map_or("–".to_string(), |v| format!("{v:.2}"));
        let used =
            f.and_then(|e| e["clusters_used"].as_u64()).map_or("–".to_string(), |u| format!("{u}/{}", c.clusters));
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.name,
            c.labels,
            c.clusters,
            if f.is_some() { done.to_string() } else { status.clone() },
            iw,
            nats(paper_ll),
            delta,
            nats(f.and_then(|e| num(e, "elbo"))),
            pct(ours_err),
            pct(paper_err),
            pct(f.and_then(|e| num(e, "error_q"))),
            nats(f.and_then(|e| num(e, "kl_z2"))),
            active,
            fig("routing"),
            fig("z2_separation"),
            used,
            precision,
            duration(train_s),
            duration(eval_s),
        );
        rows.push(json!({
            "config": c.name,
            "dataset": c.dataset,
            "labels": c.labels,
            "clusters": c.clusters,
            "status": status,
            "epochs_done": done,
            "precision": precision,
            "ours": f,
            "paper": { "log_likelihood": paper_ll, "error_p": paper_err },
            "train_seconds": train_s,
            "eval_seconds": eval_s,
        }));
    }
    let schedule = configs.iter().find_map(|c| read_run(&out.join(c.name)).ok()?.config).map(|c| {
        let t = &c["train"];
        format!(
            "Schedule: {} epochs, KL warm-up over {} epochs, Adam lr {} × {} every {} epochs, batches of {} \
             unlabelled and {} labelled, β = {}, seed {}.\n",
            t["epochs"],
            t["warmup"],
            t["lr"],
            t["lr_decay"],
            t["lr_decay_every"],
            t["batch"],
            t["labelled_batch"],
            t["beta"],
            t["seed"]
        )
    });
    md += &format!("\n{}", schedule.unwrap_or_default());
    md += "IW-k: the importance-weighted bound on the test log-likelihood (the paper's F5000 is k = 5000). \
           Errors: cluster k read as class k for runs with labels, clusters named by their majority class for \
           CaGeM-0. One labelled subset (seed of the run); the paper's Table 3 averages three.\n";
    let json = json!({
        "table": table.name(),
        "title": title,
        "shortened": shortened,
        "epochs": epochs,
        "n_train": n_train,
        "rows": rows,
    });
    Ok((md, json))
}
