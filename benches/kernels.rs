//! `cargo bench -p cagem-kernels`: the CPU kernels at the model's shapes.
//!
//! Rows are 100 and 1000 (a batch, and a batch times K = 10 clusters) and 10 000 (the K-fold
//! nets at batch 1000). GEMMs report GFLOP/s (criterion's "elem/s" counts flops); the other
//! kernels report bytes moved (each input read once, each output written once) per second.
//! `GEMM 1000x1024x1024` runs on one thread and on the whole pool, side by side.
//!
//! `gemm_bf16` (needs oneDNN: scripts/install-bf16.sh; skipped without it) runs the same shapes
//! three ways: "ours" is what a dense layer pays under `--precision bf16` (round the f32
//! activation to bf16, then oneDNN's matmul with the layer's own layout: NN, NT or TN, the weight
//! already rounded); "onednn best" is oneDNN's plain contiguous NN bf16 matmul at the same
//! m×n×k with inputs already in bf16, one call parallelised by oneDNN's own OpenMP team
//! (`Matmul::run_team`: the library's own best, the yardstick for ours); and at one shape
//! "onednn f32 fpmath=bf16", the all-f32 matmul that may down-convert internally, also run so.

use std::hint::black_box;
use std::time::Duration;

use cagem_kernels::batchnorm::{self, BnAffine, BnGrads, BnOutput, BnStats};
use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::gemm::{GemmShape, Trans, gemm, gemm_bf16};
use cagem_kernels::logsumexp::{self, Axis};
use cagem_kernels::rng::{RngStream, fill_normal};
use cagem_kernels::{Buffer, Device, GradOut, Indices, adam, bernoulli, binarize, gather, gaussian, reparam, softmax};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const ROWS: [usize; 3] = [100, 1000, 10_000];
const F: u64 = 4; // bytes per f32

fn randn(n: usize, seed: u64) -> Buffer<f32> {
    let mut v = vec![0f32; n];
    fill_normal(&mut v, RngStream::new(seed, 0));
    Buffer::from_slice(&Device::Cpu, &v)
}

fn rand_uniform(n: usize, seed: u64) -> Buffer<f32> {
    let mut v = vec![0f32; n];
    cagem_kernels::rng::fill_uniform(&mut v, RngStream::new(seed, 1));
    Buffer::from_slice(&Device::Cpu, &v)
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    // (name, m-is-rows, n, k, ta, tb): forward NN, and the two backward forms at 1024→512.
    let layers: [(&str, usize, usize, Trans, Trans); 6] = [
        ("nn 784->1024", 1024, 784, Trans::N, Trans::N),
        ("nn 1024->512", 512, 1024, Trans::N, Trans::N),
        ("nn 512->1024", 1024, 512, Trans::N, Trans::N),
        ("nn 1024->784", 784, 1024, Trans::N, Trans::N),
        ("nt dX 512->1024", 1024, 512, Trans::N, Trans::T),
        ("nn 512->64", 64, 512, Trans::N, Trans::N),
    ];
    for rows in ROWS {
        for (name, n, k, ta, tb) in layers {
            let s = GemmShape::new(rows, n, k, ta, tb);
            let (a, b, mut out) = (randn(rows * k, 1), randn(k * n, 2), randn(rows * n, 3));
            g.throughput(Throughput::Elements(s.flops() as u64));
            g.bench_with_input(BenchmarkId::new(name, rows), &rows, |bch, _| {
                bch.iter(|| gemm(s, black_box(&a), &b, &mut out, false))
            });
        }
        // dW = Xᵀ·dY: the reduction runs over the rows.
        let s = GemmShape::new(1024, 512, rows, Trans::T, Trans::N);
        let (a, b, mut out) = (randn(rows * 1024, 1), randn(rows * 512, 2), randn(1024 * 512, 3));
        g.throughput(Throughput::Elements(s.flops() as u64));
        g.bench_with_input(BenchmarkId::new("tn dW 1024x512", rows), &rows, |bch, _| {
            bch.iter(|| gemm(s, black_box(&a), &b, &mut out, false))
        });
    }
    // The headline shape, single- and multi-threaded, side by side.
    let s = GemmShape::new(1000, 1024, 1024, Trans::N, Trans::N);
    let (a, b, mut out) = (randn(1000 * 1024, 1), randn(1024 * 1024, 2), randn(1000 * 1024, 3));
    g.throughput(Throughput::Elements(s.flops() as u64));
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
    g.bench_function("1000x1024x1024 1 thread", |bch| {
        one.install(|| bch.iter(|| gemm(s, black_box(&a), &b, &mut out, false)))
    });
    let threads = rayon::current_num_threads();
    g.bench_function(format!("1000x1024x1024 {threads} threads"), |bch| {
        bch.iter(|| gemm(s, black_box(&a), &b, &mut out, false))
    });
    g.finish();
}

fn bench_gemm_bf16(c: &mut Criterion) {
    let Ok(mm) = cagem_kernels::onednn::get() else {
        eprintln!("skipping gemm_bf16: {}", cagem_kernels::gemm::Precision::bf16_available().unwrap_err());
        return;
    };
    eprintln!("gemm_bf16: {}", mm.version());
    let mut g = c.benchmark_group("gemm_bf16");
    let host = |b: &Buffer<f32>| b.host().to_vec();
    // (name, n, k, ta, tb) with m = rows; the dW form (m = 1024, k = rows) follows.
    let layers: [(&str, usize, usize, Trans, Trans); 5] = [
        ("nn 784->1024", 1024, 784, Trans::N, Trans::N),
        ("nn 1024->512", 512, 1024, Trans::N, Trans::N),
        ("nn 512->1024", 1024, 512, Trans::N, Trans::N),
        ("nn 1024->784", 784, 1024, Trans::N, Trans::N),
        ("nt dX 512->1024", 1024, 512, Trans::N, Trans::T),
    ];
    let mut shapes: Vec<(String, GemmShape)> = Vec::new();
    for rows in ROWS {
        for (name, n, k, ta, tb) in layers {
            shapes.push((format!("{name}/{rows}"), GemmShape::new(rows, n, k, ta, tb)));
        }
        shapes.push((format!("tn dW 1024x512/{rows}"), GemmShape::new(1024, 512, rows, Trans::T, Trans::N)));
    }
    for (name, s) in shapes {
        let a32 = host(&randn(s.m * s.k, 1));
        let b16 = Bf16Buf::from_f32(&host(&randn(s.k * s.n, 2)));
        let a16 = Bf16Buf::from_f32(&a32);
        let mut out = vec![0f32; s.m * s.n];
        g.throughput(Throughput::Elements(s.flops() as u64));
        g.bench_function(format!("ours {name}"), |bch| {
            bch.iter(|| {
                let a = Bf16Buf::from_f32(black_box(&a32));
                gemm_bf16(s, &a, &b16, &mut out, false)
            })
        });
        let nn = GemmShape::new(s.m, s.n, s.k, Trans::N, Trans::N);
        let threads = rayon::current_num_threads();
        g.bench_function(format!("onednn best {name}"), |bch| {
            // SAFETY: a16, b16 and out hold m·k, k·n and m·n elements.
            bch.iter(|| unsafe {
                let (a, b) = (black_box(&a16).as_ptr().cast(), b16.as_ptr().cast());
                mm.run_team(nn, a, b, out.as_mut_ptr(), false, cagem_kernels::onednn::Inputs::Bf16, threads)
            })
        });
    }
    // The fpmath question: an all-f32 matmul with dnnl_fpmath_mode_bf16, beside f32 and bf16.
    let s = GemmShape::new(1000, 1024, 784, Trans::N, Trans::N);
    let (a32, b32) = (host(&randn(s.m * s.k, 1)), host(&randn(s.k * s.n, 2)));
    let mut out = vec![0f32; s.m * s.n];
    g.throughput(Throughput::Elements(s.flops() as u64));
    for (label, inputs) in [
        ("onednn f32 fpmath=bf16 1000x1024x784", cagem_kernels::onednn::Inputs::F32AsBf16),
        ("onednn f32 strict 1000x1024x784", cagem_kernels::onednn::Inputs::F32),
    ] {
        eprintln!("{label}: oneDNN implementation {}", mm.impl_name(s, false, inputs).unwrap_or_default());
        g.bench_function(label, |bch| {
            // SAFETY: a32, b32 and out hold m·k, k·n and m·n f32 values.
            bch.iter(|| unsafe {
                let (a, b) = (a32.as_ptr().cast(), b32.as_ptr().cast());
                mm.run_team(s, a, b, out.as_mut_ptr(), false, inputs, rayon::current_num_threads())
            })
        });
    }
    g.finish();
}

fn bench_batchnorm(c: &mut Criterion) {
    let mut g = c.benchmark_group("batchnorm_relu");
    for rows in ROWS {
        for cols in [1024usize, 512] {
            let n = rows * cols;
            let (x, gy) = (randn(n, 1), randn(n, 2));
            let (gamma, beta) = (randn(cols, 3), randn(cols, 4));
            let (mut y, mut mean, mut rstd) = (randn(n, 5), randn(cols, 6), randn(cols, 7));
            let (mut dx, mut dgam, mut dbet) = (randn(n, 8), randn(cols, 9), randn(cols, 10));
            let affine = || BnAffine { gamma: &gamma, beta: &beta, eps: 1e-5, relu: true };
            // Forward: read x, write y. Backward: read g and x, write dx.
            g.throughput(Throughput::Bytes(2 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("forward train x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| {
                    batchnorm::forward_train(
                        rows,
                        cols,
                        black_box(&x),
                        None,
                        affine(),
                        BnOutput::F32(&mut y),
                        &mut mean,
                        &mut rstd,
                        None,
                    )
                })
            });
            // The same, also writing y rounded to bf16 (what --precision bf16 runs): +2 bytes each.
            let mut y16 = Bf16Buf::uninit(n);
            g.throughput(Throughput::Bytes(2 * n as u64 * F + 2 * n as u64));
            g.bench_with_input(BenchmarkId::new(format!("forward train +bf16 x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| {
                    let (xb, a) = (black_box(&x), affine());
                    batchnorm::forward_train(
                        rows,
                        cols,
                        xb,
                        None,
                        a,
                        BnOutput::WithBf16(&mut y, &mut y16),
                        &mut mean,
                        &mut rstd,
                        None,
                    )
                })
            });
            g.throughput(Throughput::Bytes(3 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("backward x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| {
                    batchnorm::backward(
                        rows,
                        cols,
                        black_box(&gy),
                        &x,
                        None,
                        affine(),
                        BnStats::Batch { mean: &mean, rstd: &rstd },
                        BnGrads {
                            dx: Some(GradOut::new(&mut dx, false)),
                            dgamma: Some(GradOut::new(&mut dgam, false)),
                            dbeta: Some(GradOut::new(&mut dbet, false)),
                        },
                        None,
                    )
                })
            });
        }
    }
    g.finish();
}

fn bench_densities(c: &mut Criterion) {
    let mut g = c.benchmark_group("densities");
    for rows in ROWS {
        for cols in [64usize, 32] {
            let n = rows * cols;
            let (mu, lv, gz) = (randn(n, 1), randn(n, 2), randn(n, 3));
            let mut z = randn(n, 4);
            g.throughput(Throughput::Bytes(3 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("reparam forward x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| reparam::forward(cols, black_box(&mu), &lv, RngStream::new(1, 2), &mut z))
            });
            let (mut dmu, mut dlv) = (randn(n, 5), randn(n, 6));
            g.throughput(Throughput::Bytes(6 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("reparam backward x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| {
                    reparam::backward(
                        cols,
                        black_box(&gz),
                        &z,
                        &mu,
                        &lv,
                        Some(GradOut::new(&mut dmu, false)),
                        Some(GradOut::new(&mut dlv, false)),
                    )
                })
            });
            let mut out = randn(rows, 7);
            g.throughput(Throughput::Bytes(3 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("gaussian logpdf x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| gaussian::diag_logdensity(cols, black_box(&z), &mu, &lv, &mut out))
            });
            let gr = randn(rows, 8);
            let mut dz = randn(n, 9);
            g.throughput(Throughput::Bytes(6 * n as u64 * F));
            g.bench_with_input(BenchmarkId::new(format!("gaussian logpdf backward x{cols}"), rows), &rows, |bch, _| {
                bch.iter(|| {
                    gaussian::diag_logdensity_backward(
                        cols,
                        black_box(&gr),
                        &z,
                        &mu,
                        &lv,
                        gaussian::DiagGrads {
                            dz: Some(GradOut::new(&mut dz, false)),
                            dmu: Some(GradOut::new(&mut dmu, false)),
                            dlogvar: Some(GradOut::new(&mut dlv, false)),
                        },
                    )
                })
            });
        }
        let cols = 784;
        let n = rows * cols;
        let (logits, x) = (randn(n, 1), randn(100 * cols, 2));
        let mut out = randn(rows, 3);
        g.throughput(Throughput::Bytes(2 * n as u64 * F));
        g.bench_with_input(BenchmarkId::new("bernoulli loglik x784", rows), &rows, |bch, _| {
            bch.iter(|| bernoulli::loglik(cols, black_box(&logits), &x, &mut out))
        });
        let gr = randn(rows, 4);
        let mut dl = randn(n, 5);
        g.throughput(Throughput::Bytes(3 * n as u64 * F));
        g.bench_with_input(BenchmarkId::new("bernoulli backward x784", rows), &rows, |bch, _| {
            bch.iter(|| bernoulli::loglik_backward(cols, black_box(&gr), &logits, &x, GradOut::new(&mut dl, false)))
        });
    }
    g.finish();
}

fn bench_small_reductions(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_logsumexp");
    for rows in ROWS {
        let cols = 10;
        let n = rows * cols;
        let x = randn(n, 1);
        let mut y = randn(n, 2);
        g.throughput(Throughput::Bytes(2 * n as u64 * F));
        g.bench_with_input(BenchmarkId::new("log_softmax x10", rows), &rows, |bch, _| {
            bch.iter(|| softmax::forward(cols, true, black_box(&x), &mut y))
        });
        let mut l = randn(rows, 3);
        g.throughput(Throughput::Bytes(n as u64 * F));
        g.bench_with_input(BenchmarkId::new("logsumexp along x10", rows), &rows, |bch, _| {
            bch.iter(|| logsumexp::forward(rows, cols, Axis::AlongRow, black_box(&x), &mut l))
        });
    }
    // Over importance samples: 5000 samples of 100 images.
    let (rows, cols) = (5000, 100);
    let x = randn(rows * cols, 1);
    let mut l = randn(cols, 2);
    g.throughput(Throughput::Bytes((rows * cols) as u64 * F));
    g.bench_function("logsumexp down 5000x100", |bch| {
        bch.iter(|| logsumexp::forward(rows, cols, Axis::DownColumn, black_box(&x), &mut l))
    });
    g.finish();
}

fn bench_data_and_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("gather_binarize_adam");
    let dev = Device::Cpu;
    for (b, k, cols) in [(100usize, 10usize, 1024usize), (1000, 10, 1024), (100, 10, 512)] {
        let rows = b * k;
        let (a, table) = (randn(b * cols, 1), randn(k * cols, 2));
        let idx = Indices::new(&dev, &(0..rows).map(|r| (r / b) as u32).collect::<Vec<_>>());
        let mut out = randn(rows * cols, 3);
        g.throughput(Throughput::Bytes(((rows + b) * cols) as u64 * F));
        g.bench_function(format!("gather_add_rows {rows}x{cols}"), |bch| {
            bch.iter(|| gather::gather_add_rows(cols, black_box(&a), &table, &idx, &mut out))
        });
        let mut dt = randn(k * cols, 4);
        g.throughput(Throughput::Bytes((rows * cols) as u64 * F));
        g.bench_function(format!("scatter_add_rows {rows}x{cols}"), |bch| {
            bch.iter(|| gather::scatter_add_rows(cols, black_box(&out), &idx, GradOut::new(&mut dt, false)))
        });
    }
    let probs = rand_uniform(60_000 * 784, 1);
    for b in [100usize, 1000] {
        let rows = Indices::new(&dev, &(0..b as u32).map(|i| i * 37).collect::<Vec<_>>());
        let mut out = randn(b * 784, 2);
        g.throughput(Throughput::Bytes(2 * (b * 784) as u64 * F));
        g.bench_function(format!("binarize {b}x784"), |bch| {
            bch.iter(|| binarize::binarize_rows(784, black_box(&probs), &rows, RngStream::new(3, 4), &mut out))
        });
    }
    let n = 6_838_372; // CaGeM's parameter count with K = 10
    let (mut p, gr, mut m, mut v) = (randn(n, 1), randn(n, 2), randn(n, 3), rand_uniform(n, 4));
    g.throughput(Throughput::Bytes(7 * n as u64 * F));
    g.bench_function("adam 6.84M params", |bch| {
        bch.iter(|| {
            adam::step(
                adam::AdamStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    t: 10,
                    grad_scale: 1.0,
                    clip: f64::INFINITY,
                },
                &mut p,
                black_box(&gr),
                &mut m,
                &mut v,
            )
        })
    });
    // The pass before every Adam step: global norm and finiteness of the gradients.
    g.throughput(Throughput::Bytes(n as u64 * F));
    g.bench_function("grad sum_squares 6.84M params", |bch| bch.iter(|| adam::sum_squares(&[black_box(&gr)])));
    g.finish();
}

criterion_group! {
    name = kernels;
    config = config();
    targets = bench_gemm, bench_gemm_bf16, bench_batchnorm, bench_densities, bench_small_reductions, bench_data_and_update
}
criterion_main!(kernels);
