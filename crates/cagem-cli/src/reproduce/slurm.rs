//! The sbatch script of `cagem reproduce tableN --emit-slurm FILE`: one array task per
//! configuration (`cagem reproduce tableN --task $SLURM_ARRAY_TASK_ID`, a resumable run plus its
//! final evaluation), and the gathering of the table as a job that depends on the array.

use std::path::Path;

use cagem::{Error, Result};
use cagem_report::paper::{PaperConfig, Table};

use super::plan::shared_options;
use crate::args::ReproduceArgs;

/// Quotes a word for the shell (single quotes; a quote inside becomes '\'').
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The options of the reproduction that every task and the report repeat.
fn common_options(a: &ReproduceArgs, out: &Path) -> Vec<String> {
    let mut v = vec!["--out".to_string(), out.display().to_string()];
    v.extend(shared_options(a));
    v.extend(["--final-k".to_string(), a.final_k.to_string()]);
    if let Some(n) = a.final_n {
        v.extend(["--final-n".to_string(), n.to_string()]);
    }
    v
}

pub fn script(table: Table, configs: &[PaperConfig], out: &Path, a: &ReproduceArgs) -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cagem", "find this program's path", e))?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    // Absolute, so that the jobs find the runs from whatever folder Slurm starts them in.
    let out = std::path::absolute(out).map_err(|e| Error::io(out, "resolve", e))?;
    let opts: Vec<String> = common_options(a, &out).iter().map(|w| sh(w)).collect();
    let opts = opts.join(" ");
    let name = format!("cagem-{}", table.name());
    let mut directives = vec![
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --array=0-{}", configs.len() - 1),
        "#SBATCH --ntasks=1".to_string(),
        format!("#SBATCH --cpus-per-task={}", a.slurm_cpus),
        format!("#SBATCH --mem={}", a.slurm_mem),
        format!("#SBATCH --time={}", a.slurm_time),
        format!("#SBATCH --output={}/slurm-%A_%a.out", out.display()),
        // A pre-empted or timed-out task is sent SIGTERM first: cagem checkpoints and stops, and
        // the requeued task resumes.
        "#SBATCH --requeue".to_string(),
        "#SBATCH --signal=B:TERM@120".to_string(),
    ];
    if let Some(p) = &a.slurm_partition {
        directives.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(g) = a.slurm_gpus {
        directives.push(format!("#SBATCH --gpus-per-task={g}"));
    }
    let rows: Vec<String> = configs.iter().enumerate().map(|(i, c)| format!("#   task {i}: {}", c.name)).collect();
    Ok(format!(
        r#"#!/bin/bash
{directives}
#
# {title}
# Written by `cagem reproduce {table} --emit-slurm`. Submit it with `bash THIS_FILE`: it submits
# itself as an array of {n} tasks, one per configuration, and the table's gathering as a job
# that runs after them. Each task is a resumable `cagem train` plus its final `cagem eval` in
# {out}/<config>/; resubmitting continues unfinished runs.
{rows}
set -euo pipefail
cagem={exe}
if [ -z "${{SLURM_ARRAY_TASK_ID:-}}" ]; then
  mkdir -p {out_q}
  array=$(sbatch --parsable "$0")
  report=$(sbatch --parsable --job-name={name}-report --dependency=afterany:"${{array%%;*}}" \
    --ntasks=1 --cpus-per-task=1 --time=00:30:00 --output={out_q}/slurm-report-%j.out \
    --wrap="$cagem reproduce {table} {opts} --report")
  echo "submitted array job $array ({n} tasks) and report job $report"
  exit 0
fi
# `exec` so that Slurm's SIGTERM reaches cagem, which writes a checkpoint before stopping.
exec "$cagem" --threads "${{SLURM_CPUS_PER_TASK:-1}}" reproduce {table} {opts} --quiet --task "$SLURM_ARRAY_TASK_ID"
"#,
        directives = directives.join("\n"),
        title = table.title(),
        table = table.name(),
        n = configs.len(),
        out = out.display(),
        out_q = sh(&out.display().to_string()),
        rows = rows.join("\n"),
        exe = sh(&exe.display().to_string()),
    ))
}
