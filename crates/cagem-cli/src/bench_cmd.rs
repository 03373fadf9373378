//! `cagem bench`.

use crate::bench::bench;
use cagem::{Error, ModelConfig, Result};

use crate::args::BenchArgs;

pub fn run(a: BenchArgs) -> Result<()> {
    if a.batch < 2 || a.steps == 0 {
        return Err(Error::config("--batch must be at least 2 and --steps at least 1"));
    }
    if a.labelled_batch == 1 {
        return Err(Error::config("--labelled-batch must be 0 or at least 2 (batch normalisation)"));
    }
    let cfg = ModelConfig { clusters: a.clusters, ..ModelConfig::default() };
    cfg.validate()?;
    let device = a.device.open()?;
    let precision = cagem::precision::resolve(Some(&a.precision), None, &device)?;
    eprintln!(
        "benchmarking the paper's MNIST model (K={}) on {} in {}: {} timed steps after {} warm-up, batch {} + {} labelled",
        cfg.clusters,
        device.name(),
        precision.name(),
        a.steps,
        a.warmup,
        a.batch,
        a.labelled_batch
    );
    let r = bench::<f32>(&cfg, a.batch, a.labelled_batch, a.steps, a.warmup, &device, precision);
    if let Some(p) = &r.profile {
        eprintln!("time per op over the {} timed training steps (CAGEM_PROFILE):\n{p}", a.steps);
    }
    println!("device                 {} ({} threads), {} matrix products", r.device, r.threads, r.precision);
    println!("parameters             {}", r.parameters);
    println!(
        "training step          {:.1} ms median  →  {:.0} unlabelled examples/s",
        r.train_step_ms_median, r.train_examples_per_s
    );
    println!(
        "forward ELBO           {:.1} ms median  →  {:.0} examples/s",
        r.forward_ms_median, r.forward_examples_per_s
    );
    println!(
        "IW evaluation          {:.0} importance samples/s with y summed, {:.0} with y sampled (chunks of {} rows)",
        r.iw_samples_per_s, r.iw_sampled_y_samples_per_s, r.iw_chunk_rows
    );
    println!("IW-5000 on 10k images  ≈ {:.0} s at that rate (y summed)", r.iw5000_mnist_test_seconds);
    if let Some(b) = r.peak_device_memory_bytes {
        println!("peak device memory     {:.1} MiB (training steps)", b as f64 / (1u64 << 20) as f64);
    }
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("json"));
    }
    Ok(())
}
