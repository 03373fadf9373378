//! `cagem eval`.

use cagem::data::DeviceData;
use cagem::eval::{EvalOptions, evaluate_rows, select_rows, spread_over_classes};
use cagem::model::IwEstimator;
use cagem::train::checkpoint;
use cagem::{Error, Result};

use crate::args::EvalArgs;
use crate::data_source;
use crate::progress::bar;

pub fn run(a: EvalArgs) -> Result<()> {
    if a.k == 0 {
        return Err(Error::config("--k must be at least 1"));
    }
    let device = a.device.open()?;
    let precision = cagem::precision::resolve(&a.precision, &device)?;
    let (mut model, _, meta) = checkpoint::load::<f32>(&a.run, &device)?;
    model.precision = precision;
    let data = data_source::for_run(&meta.train, &meta.model, a.data.as_deref())?;
    if data.dim() != model.cfg.x_dim {
        return Err(Error::config(format!(
            "the run's model expects {} pixels, the data has {}",
            model.cfg.x_dim,
            data.dim()
        )));
    }
    if data.n_test() == 0 {
        return Err(data_source::no_test_set(&data));
    }
    if let Some(n) = a.n_test
        && (n == 0 || n > data.n_test())
    {
        return Err(Error::config(format!("--n-test {n} must be between 1 and {}", data.n_test())));
    }
    let dev_data =
        DeviceData::<f32>::with_likelihood(&device, &data, model.cfg.likelihood, model.standardizer().as_ref());
    // --spread: the images of `train --eval-every`, spread over the classes.
    let (test_x, test_labels) = match (a.n_test, a.spread) {
        (Some(n), true) => {
            let rows = spread_over_classes(&data.test_labels, n);
            (select_rows(&dev_data.test, &rows), rows.iter().map(|&r| data.test_labels[r]).collect())
        }
        _ => (dev_data.test.clone(), data.test_labels.clone()),
    };
    let estimator = if a.estimator == "sample-y" { IwEstimator::SampleY } else { IwEstimator::SumY };
    let opts = EvalOptions {
        k: a.k,
        n_test: a.n_test,
        chunk_rows: a.chunk.max(1),
        estimator,
        clusters_are_classes: meta.train.labels > 0,
        ..EvalOptions::default()
    };
    let pb = bar(1, false);
    pb.set_prefix(format!("eval IW-{}", a.k));
    let report = evaluate_rows(&mut model, &test_x, &test_labels, &opts, &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    println!("run               {}", a.run.display());
    println!("trained epochs    {}", meta.state.epochs_done);
    println!("test images       {}", report.n_test);
    println!("IW-{:<6} bound    {:.3} nats   ({})", report.iw_k, report.log_likelihood, report.estimator);
    println!("test ELBO         {:.3} nats", report.elbo);
    let pct =
        |e: Option<f64>| e.map_or("n/a (no labelled test example)".to_string(), |e| format!("{:.2} %", 100.0 * e));
    println!("error p(y|x)      {}   ({})", pct(report.error_p), report.error_mapping);
    println!("error q(y|x)      {}", pct(report.error_q));
    println!("KL[q(z2|x,y)‖p]   {:.3} nats", report.kl_z2);
    println!(
        "active units      z1 {}/{}  z2 {}/{}",
        report.active_units_z1, model.cfg.z1, report.active_units_z2, model.cfg.z2
    );
    println!("time              {:.1} s on {} ({} matrix products)", report.seconds, device.name(), precision.name());
    if a.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["run"] = a.run.display().to_string().into();
        v["epochs"] = meta.state.epochs_done.into();
        v["device"] = device.name().into();
        v["precision"] = precision.name().into();
        println!("{v}");
    }
    Ok(())
}
