//! `cagem train`.

use std::path::PathBuf;

use cagem::data::DeviceData;
use cagem::precision::Precision;
use cagem::train::{checkpoint, open_run};
use cagem::{ModelConfig, Result, TrainConfig};

use crate::args::TrainArgs;
use crate::data_source;
use crate::progress::TrainProgress;

pub fn run(a: TrainArgs) -> Result<()> {
    let device = a.device.open()?;
    let mut data = data_source::load(&a.dataset, a.data.as_deref())?;
    if let Some(n) = a.n_train {
        data = data.truncated(n, data.n_test());
    }
    let model_cfg = ModelConfig {
        x_dim: data.dim(),
        height: data.height,
        width: data.width,
        z1: a.z1,
        z2: a.z2,
        clusters: a.clusters,
        q_hidden: a.q_hidden,
        p_hidden: a.p_hidden,
        ..ModelConfig::default()
    };
    // A resumed run keeps its precision unless --precision names another (then the usual
    // configuration check refuses the mismatch); `auto` on a resume keeps the run's.
    let saved = || a.out.as_ref().and_then(|out| checkpoint::load_meta(out).ok()).map(|m| m.train.precision);
    let precision = match (a.precision.as_deref(), a.resume) {
        (Some("auto") | None, true) => saved().unwrap_or_default(),
        (Some(p), _) => cagem::precision::resolve(p, &device)?,
        (None, false) => Precision::F32,
    };
    let cfg = TrainConfig {
        dataset: a.dataset.clone(),
        data_dir: a.data.as_ref().map(|p| p.display().to_string()),
        n_train: a.n_train,
        labels: a.labels,
        epochs: a.epochs,
        batch: a.batch,
        labelled_batch: a.labelled_batch,
        warmup: a.warmup,
        seed: a.seed,
        lr: a.lr,
        beta: a.beta,
        precision,
        ..TrainConfig::default()
    };
    let out = a.out.clone().unwrap_or_else(|| default_run_dir(&cfg, &model_cfg));
    let mut run = open_run::<f32>(&out, &model_cfg, &cfg, &data, &device, a.resume)?;
    eprintln!("data: {} ({} train, {} test images)", data.provenance, data.n_train(), data.n_test());
    eprintln!(
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
    if a.resume {
        eprintln!("resuming {} after epoch {}", out.display(), run.state.epochs_done);
    }
    eprintln!("run folder: {}", out.display());
    let dev_data = DeviceData::<f32>::new(&device, &data);
    run.train(&data, &dev_data, &mut TrainProgress::new(a.quiet))?;
    println!("trained {} epochs; checkpoint and metrics in {}", run.state.epochs_done, out.display());
    println!("evaluate with: cagem eval --run {}", out.display());
    Ok(())
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
