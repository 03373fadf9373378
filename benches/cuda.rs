//! `cargo bench -p cagem-kernels --features cuda --bench cuda`: the CUDA kernels at the model's
//! shapes, timed with CUDA events (median of 50 after warm-up), each reported as achieved GB/s
//! (bytes it must read and write, once) and as a fraction of the device's measured copy
//! bandwidth (a large device-to-device copy, bytes read + written). cuBLAS products report
//! TFLOP/s in fp32 and TF32. Inputs are random, never zeros. Without a GPU it says why and stops.

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("skipping the CUDA benchmarks: built without the `cuda` feature (add --features cuda)");
}

#[cfg(feature = "cuda")]
fn main() {
    match cagem_kernels::Device::open("cuda") {
        Ok(dev) => gpu::run(&dev),
        Err(e) => eprintln!("skipping the CUDA benchmarks: no GPU ({e})"),
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use cagem_kernels::batchnorm::{self, BnAffine, BnGrads, BnOutput, BnStats};
    use cagem_kernels::gemm::{GemmShape, Trans, gemm};
    use cagem_kernels::logsumexp::{self, Axis};
    use cagem_kernels::rng::{RngStream, fill_normal, fill_uniform};
    use cagem_kernels::{
        Buffer, Device, GradOut, Indices, adam, bernoulli, binarize, elementwise, gather, gaussian, reparam, softmax,
    };

    const F: f64 = 4.0;

    fn randn(dev: &Device, n: usize, seed: u64) -> Buffer<f32> {
        let mut v = vec![0f32; n];
        fill_normal(&mut v, RngStream::new(seed, 0));
        Buffer::from_slice(dev, &v)
    }

    fn uniform(dev: &Device, n: usize, seed: u64) -> Buffer<f32> {
        let mut v = vec![0f32; n];
        fill_uniform(&mut v, RngStream::new(seed, 1));
        Buffer::from_slice(dev, &v)
    }

    /// Median milliseconds of `f` between CUDA events.
    fn time_ms(dev: &Device, mut f: impl FnMut()) -> f64 {
        let Device::Cuda(d) = dev else { unreachable!() };
        for _ in 0..3 {
            f();
        }
        let mut ms = Vec::new();
        for _ in 0..50 {
            let start = d.context().new_event(None).expect("event");
            let end = d.context().new_event(None).expect("event");
            start.record(d.stream()).expect("record");
            f();
            end.record(d.stream()).expect("record");
            end.synchronize().expect("sync");
            ms.push(start.elapsed_ms(&end).expect("elapsed") as f64);
        }
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    }

    pub fn run(dev: &Device) {
        println!("device: {}", dev.name());
        // Copy bandwidth: 256 MiB device-to-device, bytes read plus written.
        let n = 64 << 20;
        let src = randn(dev, n, 1);
        let mut dst = Buffer::<f32>::uninit(dev, n);
        let ms = time_ms(dev, || elementwise::copy(&src, &mut dst));
        let copy = 2.0 * n as f64 * F / (ms / 1e3) / 1e9;
        println!("device copy bandwidth: {copy:.0} GB/s (256 MiB, read + write)\n");
        println!("{:<44} {:>10} {:>10} {:>9}", "kernel (rows x cols)", "median us", "GB/s", "of copy");
        let row = |name: &str, bytes: f64, ms: f64| {
            let gbs = bytes / (ms / 1e3) / 1e9;
            println!("{name:<44} {:>10.1} {gbs:>10.0} {:>8.0}%", ms * 1e3, 100.0 * gbs / copy);
        };

        for rows in [1000usize, 10_000] {
            for cols in [1024usize, 512] {
                let e = (rows * cols) as f64;
                let (x, g) = (randn(dev, rows * cols, 2), randn(dev, rows * cols, 3));
                let (gamma, beta) = (uniform(dev, cols, 4), randn(dev, cols, 5));
                let (mut y, mut mean, mut rstd) =
                    (Buffer::uninit(dev, rows * cols), Buffer::uninit(dev, cols), Buffer::uninit(dev, cols));
                let aff = || BnAffine { gamma: &gamma, beta: &beta, eps: 1e-5, relu: true };
                let ms = time_ms(dev, || {
                    batchnorm::forward_train(
                        rows,
                        cols,
                        &x,
                        None,
                        aff(),
                        BnOutput::F32(&mut y),
                        &mut mean,
                        &mut rstd,
                        None,
                    )
                });
                row(&format!("batchnorm+relu forward {rows}x{cols}"), 2.0 * e * F, ms);
                let (mut dx, mut dg, mut db) =
                    (Buffer::uninit(dev, rows * cols), Buffer::uninit(dev, cols), Buffer::uninit(dev, cols));
                let ms = time_ms(dev, || {
                    batchnorm::backward(
                        rows,
                        cols,
                        &g,
                        &x,
                        None,
                        aff(),
                        BnStats::Batch { mean: &mean, rstd: &rstd },
                        BnGrads {
                            dx: Some(GradOut::new(&mut dx, false)),
                            dgamma: Some(GradOut::new(&mut dg, false)),
                            dbeta: Some(GradOut::new(&mut db, false)),
                        },
                        None,
                    )
                });
                row(&format!("batchnorm+relu backward {rows}x{cols}"), 3.0 * e * F, ms);
            }
            let (b, k, cols) = (rows / 10, 10, 1024);
            let (a, table) = (randn(dev, b * cols, 6), randn(dev, k * cols, 7));
            let idx = Indices::new(dev, &(0..rows).map(|r| (r / b) as u32).collect::<Vec<_>>());
            let mut out = Buffer::uninit(dev, rows * cols);
            let ms = time_ms(dev, || gather::gather_add_rows(cols, &a, &table, &idx, &mut out));
            row(&format!("gather_add_rows {rows}x{cols}"), ((rows + b) * cols) as f64 * F, ms);

            let cols = 784;
            let e = (rows * cols) as f64;
            let (logits, x) = (randn(dev, rows * cols, 8), uniform(dev, (rows / 10) * cols, 9));
            let mut o = Buffer::uninit(dev, rows);
            let ms = time_ms(dev, || bernoulli::loglik(cols, &logits, &x, &mut o));
            row(&format!("bernoulli loglik {rows}x784"), e * F, ms);
            let gr = randn(dev, rows, 10);
            let mut dl = Buffer::uninit(dev, rows * cols);
            let ms = time_ms(dev, || bernoulli::loglik_backward(cols, &gr, &logits, &x, GradOut::new(&mut dl, false)));
            row(&format!("bernoulli backward {rows}x784"), 2.0 * e * F, ms);

            for cols in [64usize, 32] {
                let e = (rows * cols) as f64;
                let (mu, lv, z) =
                    (randn(dev, rows * cols, 11), randn(dev, rows * cols, 12), randn(dev, rows * cols, 13));
                let mut zo = Buffer::uninit(dev, rows * cols);
                let ms = time_ms(dev, || reparam::forward(cols, &mu, &lv, RngStream::new(1, 2), &mut zo));
                row(&format!("reparam forward {rows}x{cols}"), 3.0 * e * F, ms);
                let mut o = Buffer::uninit(dev, rows);
                let ms = time_ms(dev, || gaussian::diag_logdensity(cols, &z, &mu, &lv, &mut o));
                row(&format!("gaussian logpdf {rows}x{cols}"), 3.0 * e * F, ms);
            }
            let x = randn(dev, rows * 10, 14);
            let mut y = Buffer::uninit(dev, rows * 10);
            let ms = time_ms(dev, || softmax::forward(10, true, &x, &mut y));
            row(&format!("log_softmax {rows}x10"), 2.0 * (rows * 10) as f64 * F, ms);
            let mut l = Buffer::uninit(dev, rows);
            let ms = time_ms(dev, || logsumexp::forward(rows, 10, Axis::AlongRow, &x, &mut l));
            row(&format!("logsumexp along {rows}x10"), (rows * 10) as f64 * F, ms);
        }
        let n = 6_838_372;
        let (mut p, g, mut m, mut v) = (randn(dev, n, 15), randn(dev, n, 16), randn(dev, n, 17), uniform(dev, n, 18));
        let ms = time_ms(dev, || {
            adam::step(
                adam::AdamStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    t: 5,
                    grad_scale: 1.0,
                    clip: f64::INFINITY,
                },
                &mut p,
                &g,
                &mut m,
                &mut v,
            )
        });
        row("adam 6.84M parameters", 7.0 * n as f64 * F, ms);
        let probs = uniform(dev, 60_000 * 784, 19);
        for b in [100usize, 1000] {
            let rows = Indices::new(dev, &(0..b as u32).map(|i| i * 37).collect::<Vec<_>>());
            let mut out = Buffer::uninit(dev, b * 784);
            let ms = time_ms(dev, || binarize::binarize_rows(784, &probs, &rows, RngStream::new(3, 4), &mut out));
            row(&format!("binarize {b}x784"), 2.0 * (b * 784) as f64 * F, ms);
        }

        println!("\n{:<44} {:>10} {:>10} {:>9}", "cuBLAS product (m x n x k)", "median us", "TFLOP/s", "");
        let Device::Cuda(d) = dev else { unreachable!() };
        for tf32 in [false, true] {
            d.set_tf32(tf32);
            for (m, n, k) in [(1000, 1024, 512), (1000, 784, 1024), (10_000, 1024, 512), (10_000, 784, 1024)] {
                let s = GemmShape::new(m, n, k, Trans::N, Trans::N);
                let (a, b) = (randn(dev, m * k, 20), randn(dev, k * n, 21));
                let mut c = Buffer::uninit(dev, m * n);
                let ms = time_ms(dev, || gemm(s, &a, &b, &mut c, false));
                let mode = if tf32 { "tf32" } else { "fp32" };
                println!(
                    "{:<44} {:>10.1} {:>10.1}",
                    format!("{mode} {m}x{n}x{k}"),
                    ms * 1e3,
                    s.flops() / (ms / 1e3) / 1e12
                );
            }
        }
        d.set_tf32(false);
    }
}
