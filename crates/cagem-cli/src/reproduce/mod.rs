//! `cagem reproduce tableN`: every configuration of one of the paper's tables as a normal run
//! folder `DIR/<config>/`, trained (or resumed) with periodic test evaluation, evaluated at the
//! end, and gathered into `DIR/tableN.md` and `DIR/tableN.json`.
//!
//! Each configuration is a child `cagem train` and `cagem eval` of this same binary, so a
//! reproduction is exactly the runs a user could have started by hand, a killed one resumes
//! where it stopped, and a Slurm array task (`--task I`) is the same code for one row.

use std::path::{Path, PathBuf};
use std::process::Command;

use cagem::atomic::write_atomic;
use cagem::checkpoint::CHECKPOINT_FILE;
use cagem::{Error, Result};
use cagem_report::paper::{PaperConfig, Table};

mod plan;
mod report;
mod slurm;

use plan::{FINAL_EVAL_FILE, shared_options};

use crate::args::ReproduceArgs;

pub fn run(a: ReproduceArgs) -> Result<()> {
    let table = Table::parse(&a.table).ok_or_else(|| Error::config(format!("unknown table '{}'", a.table)))?;
    let configs = table.configs();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(table.name()));
    if let Some(file) = &a.emit_slurm {
        let script = slurm::script(table, &configs, &out, &a)?;
        write_atomic(file, script.as_bytes())?;
        println!("wrote {} ({} array tasks and a dependent report job)", file.display(), configs.len());
        println!("submit with: bash {}", file.display());
        return Ok(());
    }
    let chosen: Vec<&PaperConfig> = match a.task {
        Some(i) => vec![configs.get(i).ok_or_else(|| {
            Error::config(format!("--task {i}: {} has configurations 0 to {}", table.name(), configs.len() - 1))
        })?],
        None if a.report => Vec::new(),
        None => configs.iter().collect(),
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, "create the reproduction folder", e))?;
    for c in &chosen {
        run_config(c, &out, &a)?;
    }
    if a.task.is_none() && !a.dry_run {
        let (md, json) = report::gather(table, &configs, &out, a.epochs, a.n_train, a.warmup)?;
        let (md_path, json_path) =
            (out.join(format!("{}.md", table.name())), out.join(format!("{}.json", table.name())));
        write_atomic(&md_path, md.as_bytes())?;
        write_atomic(&json_path, format!("{json:#}\n").as_bytes())?;
        println!("{md}");
        println!("wrote {} and {}", md_path.display(), json_path.display());
    }
    Ok(())
}

/// The `cagem train` arguments of one configuration: a fresh run, or the resumption of the run
/// already in its folder (then only what may change on a resume is passed, and the rest is
/// checked against the run).
pub fn train_args(c: &PaperConfig, dir: &Path, a: &ReproduceArgs) -> Vec<String> {
    let mut v: Vec<String> = vec!["train".into(), "--out".into(), dir.display().to_string()];
    if dir.join(CHECKPOINT_FILE).exists() {
        v.push("--resume".into());
    }
    v.extend(["--dataset".into(), c.dataset.into(), "--labels".into(), c.labels.to_string()]);
    v.extend(["--clusters".into(), c.clusters.to_string()]);
    v.extend(shared_options(a));
    if a.quiet {
        // No bars, but a line per epoch in the job's log.
        v.extend(["--quiet".into(), "--log-every".into(), "1".into()]);
    }
    v
}

/// The final `cagem eval` arguments of one configuration.
pub fn eval_args(dir: &Path, a: &ReproduceArgs) -> Vec<String> {
    let mut v: Vec<String> = vec!["eval".into(), "--run".into(), dir.display().to_string(), "--json".into()];
    v.extend(["--k".into(), a.final_k.to_string(), "--device".into(), a.device.clone()]);
    if let Some(n) = a.final_n {
        v.extend(["--n-test".into(), n.to_string(), "--spread".into()]);
    }
    if let Some(p) = &a.precision {
        v.extend(["--precision".into(), p.clone()]);
    }
    if let Some(d) = &a.data {
        v.extend(["--data".into(), d.display().to_string()]);
    }
    v
}

/// Trains (or resumes) one configuration to `--epochs` and evaluates it, unless its folder
/// already holds a final evaluation of that many epochs with the same k.
fn run_config(c: &PaperConfig, out: &Path, a: &ReproduceArgs) -> Result<()> {
    let dir = out.join(c.name);
    let train = train_args(c, &dir, a);
    let eval = eval_args(&dir, a);
    if a.dry_run {
        println!("{}: cagem {}", c.name, train.join(" "));
        println!("{}: cagem {}", c.name, eval.join(" "));
        return Ok(());
    }
    let done = report::final_eval(&dir)
        .is_some_and(|e| e["epochs"].as_u64() == Some(a.epochs as u64) && e["iw_k"].as_u64() == Some(a.final_k as u64));
    if done {
        eprintln!("{}: already trained {} epochs and evaluated; nothing to do", c.name, a.epochs);
        return Ok(());
    }
    eprintln!("== {} ({} labels, K = {}): cagem {}", c.name, c.labels, c.clusters, train.join(" "));
    child(&train, false)?;
    eprintln!("== {}: final evaluation, IW-{}", c.name, a.final_k);
    let stdout = child(&eval, true)?;
    let json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .ok_or_else(|| Error::config(format!("cagem eval of {} printed no JSON", dir.display())))?;
    write_atomic(&dir.join(FINAL_EVAL_FILE), format!("{json:#}\n").as_bytes())
}

/// Runs this binary with `args`; with `capture`, returns its stdout (stderr still shows).
fn child(args: &[String], capture: bool) -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cagem", "find this program's path", e))?;
    let mut cmd = Command::new(&exe);
    // The children use as many threads as this process was given (all cores by default).
    cmd.arg("--threads").arg(rayon::current_num_threads().to_string()).args(args);
    let (status, stdout) = if capture {
        let o = cmd.stderr(std::process::Stdio::inherit()).output().map_err(|e| Error::io(&exe, "run", e))?;
        (o.status, String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        (cmd.status().map_err(|e| Error::io(&exe, "run", e))?, String::new())
    };
    match status.code() {
        Some(0) => Ok(stdout),
        Some(130) => Err(Error::Interrupted(format!(
            "cagem {} was interrupted; run the same `cagem reproduce` again to continue",
            args[0]
        ))),
        code => Err(Error::config(format!(
            "`cagem {}` failed ({}); its message is above",
            args.join(" "),
            code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"))
        ))),
    }
}
