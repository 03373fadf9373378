//! What every run of a reproduction shares, read by the command, its Slurm script and its report.

use crate::args::ReproduceArgs;

/// The file in a run folder holding the final `cagem eval --json`.
pub const FINAL_EVAL_FILE: &str = "eval-final.json";

/// The options every run of a reproduction shares (its schedule, evaluation, device and data),
/// as `cagem train` takes them; a Slurm task passes the same to `reproduce --task`.
pub fn shared_options(a: &ReproduceArgs) -> Vec<String> {
    let mut v = Vec::new();
    let mut opt = |k: &str, val: String| v.extend([k.to_string(), val]);
    opt("--epochs", a.epochs.to_string());
    opt("--seed", a.seed.to_string());
    opt("--warmup", a.warmup.to_string());
    opt("--eval-every", a.eval_every.to_string());
    opt("--eval-k", a.eval_k.to_string());
    opt("--eval-n", a.eval_n.to_string());
    opt("--device", a.device.clone());
    if let Some(n) = a.n_train {
        opt("--n-train", n.to_string());
    }
    if let Some(p) = &a.precision {
        opt("--precision", p.clone());
    }
    if let Some(d) = &a.data {
        opt("--data", d.display().to_string());
    }
    v
}
