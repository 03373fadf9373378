//! Progress bars on stderr (indicatif), and plain per-epoch lines where no terminal is attached.

use cagem::train::{EpochReport, Observer, StepReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bar(len: u64, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb
}

/// Draws one bar per epoch with the running loss, ELBO and speed, and a line after each epoch;
/// quiet, only the lines of every `log_every`-th epoch and the last.
pub struct TrainProgress {
    quiet: bool,
    log_every: Option<usize>,
    bar: Option<ProgressBar>,
    /// The latest periodic test figures, shown on every bar after them.
    last_test: Option<String>,
}

impl TrainProgress {
    pub fn new(quiet: bool, log_every: Option<usize>) -> Self {
        TrainProgress { quiet, log_every, bar: None, last_test: None }
    }

    fn prints(&self, epoch: usize, epochs: usize) -> bool {
        !self.quiet || self.log_every.is_some_and(|n| epoch.is_multiple_of(n) || epoch == epochs)
    }
}

/// "test IW-100 −90.12 ELBO −94.50 err p 18.2 % q 5.6 %" from an epoch's test_* keys (valid_*
/// for a validation split).
fn test_summary(record: &serde_json::Value) -> Option<String> {
    let (prefix, what) =
        if record.get("valid_log_likelihood").is_some() { ("valid_", "valid") } else { ("test_", "test") };
    let ll = record.get(format!("{prefix}log_likelihood"))?.as_f64()?;
    let g = |k: &str| record.get(format!("{prefix}{k}")).and_then(|v| v.as_f64());
    let mut s = format!("{what} IW-{} {:.2} ELBO {:.2}", g("k").unwrap_or(0.0), ll, g("elbo").unwrap_or(f64::NAN));
    if let (Some(p), Some(q)) = (g("error_p"), g("error_q")) {
        s += &format!(" err p {:.2} % q {:.2} %", 100.0 * p, 100.0 * q);
    }
    s += &format!(" KL(z2) {:.2}", g("kl_z2").unwrap_or(f64::NAN));
    if let (Some(r), Some(u)) = (g("routing"), g("clusters_used")) {
        s += &format!(" routing {r:.2} clusters {u}");
    }
    if let Some(e) = record.get("best_epoch").and_then(|v| v.as_u64()) {
        s += &format!(" (best: epoch {e})");
    }
    Some(s)
}

impl Observer for TrainProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        let pb = bar(steps as u64, self.quiet);
        pb.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(pb);
    }

    fn step(&mut self, r: &StepReport) {
        if let Some(pb) = &self.bar {
            pb.set_position(r.step as u64);
            if r.step.is_multiple_of(5) || r.step == r.steps_per_epoch {
                let mut msg = format!(
                    "loss {:.2} ELBO {:.2} T {:.2} {:.0} ex/s",
                    r.scalars.loss, r.scalars.elbo, r.temperature, r.examples_per_s
                );
                if let Some(t) = &self.last_test {
                    msg += &format!(" | {t}");
                }
                pb.set_message(msg);
            }
        }
    }

    fn evaluating(&mut self, done: usize, total: usize) {
        if let Some(pb) = &self.bar {
            if done == 0 || pb.length() != Some(total as u64) {
                pb.set_prefix("test evaluation");
                pb.set_length(total as u64);
                pb.set_message("");
            }
            pb.set_position(done as u64);
        }
    }

    fn epoch_end(&mut self, r: &EpochReport) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        let g = |k: &str| r.record.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let mut line = format!(
            "epoch {}/{}: loss {:.3}  ELBO {:.3}  recon {:.3}  KL {:.3}  T {:.3}  lr {:.2e}  {:.0} ex/s  {:.1} s",
            r.epoch,
            r.epochs,
            g("loss"),
            g("elbo"),
            g("recon"),
            -g("neg_kl"),
            g("temperature"),
            g("lr"),
            g("examples_per_s"),
            g("epoch_seconds"),
        );
        if r.record.get("hp").is_some() {
            line += &format!("  H_p {:.3}  H_q {:.3}", g("hp"), g("hq"));
        }
        if let Some(t) = test_summary(&r.record) {
            line += &format!("\n  {t}  ({:.1} s)", g("test_seconds").max(g("valid_seconds")));
            self.last_test = Some(t);
        }
        if self.prints(r.epoch, r.epochs) {
            eprintln!("{line}");
        }
    }
}
