//! `cagem eval`.

use cagem::checkpoint;
use cagem::data::DeviceData;
use cagem::eval::{EvalOptions, evaluate_rows, select_rows, spread_over_classes};
use cagem::model::IwEstimator;
use cagem::{Error, Result};

use crate::args::{EvalArgs, checkpoint_file};
use crate::data_source;
use crate::progress::bar;

pub fn run(a: EvalArgs) -> Result<()> {
    if a.k == 0 {
        return Err(Error::config("--k must be at least 1"));
    }
    let device = a.device.open()?;
    let precision = cagem::precision::resolve(Some(&a.precision), None, &device)?;
    let (mut model, _, meta) = checkpoint::load_file::<f32>(&a.run, checkpoint_file(&a.checkpoint), &device)?;
    model.set_precision(precision);
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
    let dev_data = DeviceData::<f32>::for_model(&device, &data, &model.cfg, model.standardizer().as_ref());
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
    println!(
        "trained epochs    {}{}",
        meta.state.epochs_done,
        if a.checkpoint == "best" { " (the best checkpoint)" } else { "" }
    );
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
    let c = &report.clusters;
    let sep = c.z2_separation.map_or("n/a (no labelled test example)".to_string(), |s| format!("{s:.3}"));
    println!(
        "routing           {:.3} at the posterior means, {:.3} sampled   (1: z2 carries y, {:.3}: ignores it)",
        c.routing,
        c.routing_sampled,
        1.0 / model.cfg.clusters as f64
    );
    let by: Vec<String> = c.routing_by_cluster.iter().map(|r| format!("{r:.2}")).collect();
    println!("  q-weighted      {:.3}   by cluster [{}]", c.routing_q_weighted, by.join(" "));
    println!(
        "z2 separation     {sep} by class, {:.3} by argmax q(y|x)   (between-group share of E[z2|x]'s variance)",
        c.z2_separation_by_q
    );
    println!(
        "clusters used     {} of {}   (argmax q(y|x) of ≥ 1 % of the images; exp-entropy of mean q(y|x) {:.2})",
        c.clusters_used, model.cfg.clusters, c.clusters_perplexity
    );
    println!("time              {:.1} s on {} ({} matrix products)", report.seconds, device.name(), precision.name());
    let finite = report.log_likelihood.is_finite() && report.elbo.is_finite();
    if a.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["run"] = a.run.display().to_string().into();
        v["epochs"] = meta.state.epochs_done.into();
        v["device"] = device.name().into();
        v["precision"] = precision.name().into();
        v["finite"] = finite.into();
        println!("{v}");
    }
    if !finite {
        return Err(Error::config(format!(
            "the bound ({}) or the ELBO ({}) is not finite: the model in {} is broken (a run that diverged?); \
             retrain with a smaller --lr or with --clip-norm",
            report.log_likelihood,
            report.elbo,
            a.run.display()
        )));
    }
    Ok(())
}
