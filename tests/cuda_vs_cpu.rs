//! Every CUDA kernel against its CPU twin, on fresh random inputs at awkward shapes and at the
//! model's shapes, in f32 and f64. Outputs are poisoned with NaN before each run (on both
//! devices), so an element a kernel forgets to write fails. Tolerances are relative L2 errors set
//! by precision: ~1e-6 for f32 (reduction order differs), ~1e-12 for f64.
//!
//! Without a GPU these tests print why and pass; with CAGEM_REQUIRE_GPU=1 they fail instead.

mod common;

use cagem_kernels::batchnorm::{self, BnAffine, BnGrads, BnOutput, BnStats, RunningStats};
use cagem_kernels::gemm::{GemmShape, Trans, gemm};
use cagem_kernels::logsumexp::{self, Axis};
use cagem_kernels::rng::RngStream;
use cagem_kernels::{
    Buffer, Device, GradOut, Indices, Real, adam, bernoulli, binarize, broadcast, elementwise, gather, gaussian,
    reparam, softmax, transpose,
};
use common::{Gen, gpu_or_skip, rel_l2};

/// The same values on the CPU and on the GPU.
struct Pair<T: Real> {
    cpu: Buffer<T>,
    gpu: Buffer<T>,
}

fn pair<T: Real>(gpu: &Device, v: &[f64]) -> Pair<T> {
    let t: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    Pair { cpu: Buffer::from_slice(&Device::Cpu, &t), gpu: Buffer::from_slice(gpu, &t) }
}

fn poisoned<T: Real>(gpu: &Device, n: usize) -> Pair<T> {
    let mut p = Pair { cpu: Buffer::uninit(&Device::Cpu, n), gpu: Buffer::uninit(gpu, n) };
    p.cpu.fill(T::nan());
    p.gpu.fill(T::nan());
    p
}

fn idx(gpu: &Device, v: &[u32]) -> (Indices, Indices) {
    (Indices::new(&Device::Cpu, v), Indices::new(gpu, v))
}

/// The CPU (0) or GPU (1) side of a pair.
fn on<T: Real>(p: &Pair<T>, dev: usize) -> &Buffer<T> {
    if dev == 0 { &p.cpu } else { &p.gpu }
}

/// The tolerance on relative L2 error for element type T.
fn tol<T: Real>() -> f64 {
    if T::NAME == "f32" { 2e-6 } else { 1e-12 }
}

#[track_caller]
fn check<T: Real>(what: &str, p: &Pair<T>, rtol: f64, seed: u64) {
    let c: Vec<f64> = p.cpu.to_vec().iter().map(|v| v.as_f64()).collect();
    let g: Vec<f64> = p.gpu.to_vec().iter().map(|v| v.as_f64()).collect();
    let (err, finite) = rel_l2(&g, &c);
    assert!(finite, "{what} ({}): NaN or unwritten elements on the GPU (seed {seed})", T::NAME);
    assert!(err <= rtol, "{what} ({}): relative L2 error {err:.3e} > {rtol:.1e} (seed {seed})", T::NAME);
}

const SHAPES: [(usize, usize); 6] = [(1, 1), (3, 7), (33, 65), (100, 784), (1000, 1024), (1000, 64)];

fn gemm_case<T: Real>(gpu: &Device, r: &mut Gen) {
    for (m, n, k) in [(1, 1, 1), (3, 5, 7), (100, 1024, 784), (1000, 512, 1024), (1024, 512, 1000)] {
        for ta in [Trans::N, Trans::T] {
            for tb in [Trans::N, Trans::T] {
                let s = GemmShape::new(m, n, k, ta, tb);
                let (a, b) = (pair::<T>(gpu, &r.normal(m * k, 1.0)), pair::<T>(gpu, &r.normal(k * n, 1.0)));
                let mut c = poisoned::<T>(gpu, m * n);
                gemm(s, &a.cpu, &b.cpu, &mut c.cpu, false);
                gemm(s, &a.gpu, &b.gpu, &mut c.gpu, false);
                check(&format!("gemm {s:?}"), &c, 10.0 * tol::<T>(), r.seed);
                let mut c = pair::<T>(gpu, &r.normal(m * n, 1.0));
                gemm(s, &a.cpu, &b.cpu, &mut c.cpu, true);
                gemm(s, &a.gpu, &b.gpu, &mut c.gpu, true);
                check(&format!("gemm accumulate {s:?}"), &c, 10.0 * tol::<T>(), r.seed);
            }
        }
    }
}

#[test]
fn gemm_matches_cpu() {
    let Some(gpu) = gpu_or_skip("gemm_matches_cpu") else { return };
    let mut r = Gen::new();
    gemm_case::<f32>(&gpu, &mut r);
    gemm_case::<f64>(&gpu, &mut r);
}

#[cfg(feature = "cuda")]
#[test]
fn gemm_tf32_is_within_its_precision() {
    let Some(gpu) = gpu_or_skip("gemm_tf32_is_within_its_precision") else { return };
    let Device::Cuda(dev) = &gpu else { unreachable!() };
    let mut r = Gen::new();
    dev.set_tf32(true);
    let s = GemmShape::new(1000, 1024, 512, Trans::N, Trans::N);
    let (a, b) = (pair::<f32>(&gpu, &r.normal(1000 * 512, 1.0)), pair::<f32>(&gpu, &r.normal(512 * 1024, 1.0)));
    let mut c = poisoned::<f32>(&gpu, 1000 * 1024);
    gemm(s, &a.cpu, &b.cpu, &mut c.cpu, false);
    gemm(s, &a.gpu, &b.gpu, &mut c.gpu, false);
    dev.set_tf32(false);
    check("gemm tf32", &c, 3e-3, r.seed);
}

/// With `weighted`, the statistics are weighted by fresh random row weights of mean 1.
fn batchnorm_case<T: Real>(gpu: &Device, r: &mut Gen, weighted: bool) {
    for (rows, cols) in SHAPES {
        for relu in [true, false] {
            let weights = weighted.then(|| {
                let w: Vec<f64> = r.uniform(rows).iter().map(|v| v + 0.05).collect();
                let sum: f64 = w.iter().sum();
                pair::<T>(gpu, &w.iter().map(|v| v * rows as f64 / sum).collect::<Vec<_>>())
            });
            let x = pair::<T>(gpu, &r.normal(rows * cols, 2.0).iter().map(|v| v + 1.0).collect::<Vec<_>>());
            let gamma = pair::<T>(gpu, &r.normal(cols, 0.5).iter().map(|v| v + 1.0).collect::<Vec<_>>());
            let beta = pair::<T>(gpu, &r.normal(cols, 0.5));
            let rm0 = r.normal(cols, 1.0);
            let rv0: Vec<f64> = r.uniform(cols).iter().map(|v| v + 0.5).collect();
            let (mut rm, mut rv) = (pair::<T>(gpu, &rm0), pair::<T>(gpu, &rv0));
            let (mut y, mut mean, mut rstd) =
                (poisoned::<T>(gpu, rows * cols), poisoned::<T>(gpu, cols), poisoned::<T>(gpu, cols));
            for dev in [0, 1] {
                let aff = BnAffine { gamma: on(&gamma, dev), beta: on(&beta, dev), eps: 1e-5, relu };
                let (xd, yd, md, sd, rmd, rvd) = if dev == 0 {
                    (&x.cpu, &mut y.cpu, &mut mean.cpu, &mut rstd.cpu, &mut rm.cpu, &mut rv.cpu)
                } else {
                    (&x.gpu, &mut y.gpu, &mut mean.gpu, &mut rstd.gpu, &mut rm.gpu, &mut rv.gpu)
                };
                batchnorm::forward_train(
                    rows,
                    cols,
                    xd,
                    weights.as_ref().map(|w| on(w, dev)),
                    aff,
                    BnOutput::F32(yd),
                    md,
                    sd,
                    Some(RunningStats { mean: rmd, var: rvd, momentum: 0.1 }),
                );
            }
            check("bn forward y", &y, tol::<T>(), r.seed);
            check("bn mean", &mean, tol::<T>(), r.seed);
            check("bn rstd", &rstd, tol::<T>(), r.seed);
            check("bn running mean", &rm, tol::<T>(), r.seed);
            check("bn running var", &rv, tol::<T>(), r.seed);

            // Backward on both devices from the same statistics (the CPU's): statistics that differ
            // by an ulp could flip a ReLU mask where the pre-activation is ~0.
            let same = |b: &Buffer<T>| {
                let v: Vec<f64> = b.to_vec().iter().map(|x| x.as_f64()).collect();
                pair::<T>(gpu, &v)
            };
            let (mean, rstd, rm, rv) = (same(&mean.cpu), same(&rstd.cpu), same(&rm.cpu), same(&rv.cpu));
            let g = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
            for running in [false, true] {
                let mut dx = pair::<T>(gpu, &r.normal(rows * cols, 1.0)); // accumulated into
                let (mut dg, mut db) = (poisoned::<T>(gpu, cols), poisoned::<T>(gpu, cols));
                for dev in [0, 1] {
                    let aff = BnAffine { gamma: on(&gamma, dev), beta: on(&beta, dev), eps: 1e-5, relu };
                    let stats = if running {
                        BnStats::Running { mean: on(&rm, dev), var: on(&rv, dev) }
                    } else {
                        BnStats::Batch { mean: on(&mean, dev), rstd: on(&rstd, dev) }
                    };
                    let (dxd, dgd, dbd) = if dev == 0 {
                        (&mut dx.cpu, &mut dg.cpu, &mut db.cpu)
                    } else {
                        (&mut dx.gpu, &mut dg.gpu, &mut db.gpu)
                    };
                    let grads = BnGrads {
                        dx: Some(GradOut::new(dxd, true)),
                        dgamma: Some(GradOut::new(dgd, false)),
                        dbeta: Some(GradOut::new(dbd, false)),
                    };
                    let w = weights.as_ref().map(|w| on(w, dev));
                    batchnorm::backward(rows, cols, on(&g, dev), on(&x, dev), w, aff, stats, grads, None);
                }
                let what = match (running, weighted) {
                    (true, _) => "bn backward (running)",
                    (false, false) => "bn backward (batch)",
                    (false, true) => "bn backward (weighted batch)",
                };
                check(&format!("{what} dx"), &dx, 20.0 * tol::<T>(), r.seed);
                check(&format!("{what} dgamma"), &dg, 20.0 * tol::<T>(), r.seed);
                check(&format!("{what} dbeta"), &db, 20.0 * tol::<T>(), r.seed);
            }
            let mut ye = poisoned::<T>(gpu, rows * cols);
            batchnorm::forward_eval(
                rows,
                cols,
                &x.cpu,
                BnAffine { gamma: &gamma.cpu, beta: &beta.cpu, eps: 1e-5, relu },
                &rm.cpu,
                &rv.cpu,
                BnOutput::F32(&mut ye.cpu),
            );
            batchnorm::forward_eval(
                rows,
                cols,
                &x.gpu,
                BnAffine { gamma: &gamma.gpu, beta: &beta.gpu, eps: 1e-5, relu },
                &rm.gpu,
                &rv.gpu,
                BnOutput::F32(&mut ye.gpu),
            );
            check("bn forward eval", &ye, tol::<T>(), r.seed);
        }
    }
}

#[test]
fn batchnorm_matches_cpu() {
    let Some(gpu) = gpu_or_skip("batchnorm_matches_cpu") else { return };
    let mut r = Gen::new();
    for weighted in [false, true] {
        batchnorm_case::<f32>(&gpu, &mut r, weighted);
        batchnorm_case::<f64>(&gpu, &mut r, weighted);
    }
}

fn densities_case<T: Real>(gpu: &Device, r: &mut Gen) {
    for (rows, cols, p) in [(1, 1, 1), (6, 3, 2), (1000, 64, 100), (1000, 32, 1000), (1000, 784, 100), (5000, 64, 100)]
    {
        // Gaussian with z repeating (period p), then with μ and λ repeating.
        for (zr, mr) in [(p, rows), (rows, p)] {
            let z = pair::<T>(gpu, &r.normal(zr * cols, 1.0));
            let mu = pair::<T>(gpu, &r.normal(mr * cols, 1.0));
            let lv = pair::<T>(gpu, &r.normal(mr * cols, 1.0));
            let mut out = poisoned::<T>(gpu, rows);
            gaussian::diag_logdensity(cols, &z.cpu, &mu.cpu, &lv.cpu, &mut out.cpu);
            gaussian::diag_logdensity(cols, &z.gpu, &mu.gpu, &lv.gpu, &mut out.gpu);
            check("diag logdensity", &out, tol::<T>(), r.seed);
            let g = pair::<T>(gpu, &r.normal(rows, 1.0));
            let (mut dz, mut dm, mut dl) = (
                pair::<T>(gpu, &r.normal(zr * cols, 1.0)),
                poisoned::<T>(gpu, mr * cols),
                poisoned::<T>(gpu, mr * cols),
            );
            for dev in [0, 1] {
                let (dzd, dmd, dld) = if dev == 0 {
                    (&mut dz.cpu, &mut dm.cpu, &mut dl.cpu)
                } else {
                    (&mut dz.gpu, &mut dm.gpu, &mut dl.gpu)
                };
                gaussian::diag_logdensity_backward(
                    cols,
                    on(&g, dev),
                    on(&z, dev),
                    on(&mu, dev),
                    on(&lv, dev),
                    gaussian::DiagGrads {
                        dz: Some(GradOut::new(dzd, true)),
                        dmu: Some(GradOut::new(dmd, false)),
                        dlogvar: Some(GradOut::new(dld, false)),
                    },
                );
            }
            check("diag dz", &dz, 10.0 * tol::<T>(), r.seed);
            check("diag dmu", &dm, tol::<T>(), r.seed);
            check("diag dlogvar", &dl, tol::<T>(), r.seed);
        }
        let z = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        let mut out = poisoned::<T>(gpu, rows);
        gaussian::std_normal_logdensity(cols, &z.cpu, &mut out.cpu);
        gaussian::std_normal_logdensity(cols, &z.gpu, &mut out.gpu);
        check("std normal", &out, tol::<T>(), r.seed);
        let g = pair::<T>(gpu, &r.normal(rows, 1.0));
        let mut dz = poisoned::<T>(gpu, rows * cols);
        gaussian::std_normal_logdensity_backward(cols, &g.cpu, &z.cpu, GradOut::new(&mut dz.cpu, false));
        gaussian::std_normal_logdensity_backward(cols, &g.gpu, &z.gpu, GradOut::new(&mut dz.gpu, false));
        check("std normal dz", &dz, tol::<T>(), r.seed);

        let x: Vec<f64> = r.uniform(p * cols).iter().map(|&u| if u < 0.3 { 1.0 } else { 0.0 }).collect();
        let (x, logits) = (pair::<T>(gpu, &x), pair::<T>(gpu, &r.normal(rows * cols, 4.0)));
        let mut out = poisoned::<T>(gpu, rows);
        bernoulli::loglik(cols, &logits.cpu, &x.cpu, &mut out.cpu);
        bernoulli::loglik(cols, &logits.gpu, &x.gpu, &mut out.gpu);
        check("bernoulli loglik", &out, tol::<T>(), r.seed);
        let mut dl = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        bernoulli::loglik_backward(cols, &g.cpu, &logits.cpu, &x.cpu, GradOut::new(&mut dl.cpu, true));
        bernoulli::loglik_backward(cols, &g.gpu, &logits.gpu, &x.gpu, GradOut::new(&mut dl.gpu, true));
        check("bernoulli dlogits", &dl, tol::<T>(), r.seed);
    }
}

#[test]
fn densities_match_cpu() {
    let Some(gpu) = gpu_or_skip("densities_match_cpu") else { return };
    let mut r = Gen::new();
    densities_case::<f32>(&gpu, &mut r);
    densities_case::<f64>(&gpu, &mut r);
}

fn random_case<T: Real>(gpu: &Device, r: &mut Gen) {
    // Reparameterisation: same Philox stream, element for element.
    for (rows, cols, pm) in [(1, 1, 1), (5, 3, 5), (1000, 32, 1000), (5000, 64, 100), (7, 5, 7)] {
        let (mu, lv) = (pair::<T>(gpu, &r.normal(pm * cols, 1.0)), pair::<T>(gpu, &r.normal(pm * cols, 1.0)));
        let s = RngStream::new(r.seed, 77);
        let mut z = poisoned::<T>(gpu, rows * cols);
        reparam::forward(cols, &mu.cpu, &lv.cpu, s, &mut z.cpu);
        reparam::forward(cols, &mu.gpu, &lv.gpu, s, &mut z.gpu);
        check("reparam z", &z, tol::<T>(), r.seed);
        let g = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        let (mut dmu, mut dlv) = (pair::<T>(gpu, &r.normal(pm * cols, 1.0)), poisoned::<T>(gpu, pm * cols));
        reparam::backward(
            cols,
            &g.cpu,
            &z.cpu,
            &mu.cpu,
            &lv.cpu,
            Some(GradOut::new(&mut dmu.cpu, true)),
            Some(GradOut::new(&mut dlv.cpu, false)),
        );
        reparam::backward(
            cols,
            &g.gpu,
            &z.gpu,
            &mu.gpu,
            &lv.gpu,
            Some(GradOut::new(&mut dmu.gpu, true)),
            Some(GradOut::new(&mut dlv.gpu, false)),
        );
        check("reparam dmu", &dmu, 10.0 * tol::<T>(), r.seed);
        check("reparam dlogvar", &dlv, 10.0 * tol::<T>(), r.seed);
    }
    // Binarisation: exactly the same bits.
    for (n, b, cols) in [(3, 1, 1), (50, 20, 7), (1000, 100, 784)] {
        let probs = pair::<T>(gpu, &r.uniform(n * cols));
        let rows = r.indices(b, n);
        let (ic, ig) = idx(gpu, &rows);
        let s = RngStream::new(r.seed, 9);
        let mut out = poisoned::<T>(gpu, b * cols);
        binarize::binarize_rows(cols, &probs.cpu, &ic, s, &mut out.cpu);
        binarize::binarize_rows(cols, &probs.gpu, &ig, s, &mut out.gpu);
        check("binarize", &out, 0.0, r.seed);
    }
}

#[test]
fn random_kernels_reproduce_the_cpu_streams() {
    let Some(gpu) = gpu_or_skip("random_kernels_reproduce_the_cpu_streams") else { return };
    let mut r = Gen::new();
    random_case::<f32>(&gpu, &mut r);
    random_case::<f64>(&gpu, &mut r);
}

fn reductions_case<T: Real>(gpu: &Device, r: &mut Gen) {
    for (rows, cols) in SHAPES.into_iter().chain([(1000, 10), (5000, 1), (10, 3000)]) {
        let x = pair::<T>(gpu, &r.normal(rows * cols, 3.0));
        for log in [false, true] {
            let mut y = poisoned::<T>(gpu, rows * cols);
            softmax::forward(cols, log, &x.cpu, &mut y.cpu);
            softmax::forward(cols, log, &x.gpu, &mut y.gpu);
            check("softmax", &y, tol::<T>(), r.seed);
            let g = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
            let mut dx = poisoned::<T>(gpu, rows * cols);
            softmax::backward(cols, log, &g.cpu, &y.cpu, GradOut::new(&mut dx.cpu, false));
            softmax::backward(cols, log, &g.gpu, &y.gpu, GradOut::new(&mut dx.gpu, false));
            check("softmax backward", &dx, 10.0 * tol::<T>(), r.seed);
        }
        for axis in [Axis::AlongRow, Axis::DownColumn] {
            let n = axis.out_len(rows, cols);
            let mut l = poisoned::<T>(gpu, n);
            logsumexp::forward(rows, cols, axis, &x.cpu, &mut l.cpu);
            logsumexp::forward(rows, cols, axis, &x.gpu, &mut l.gpu);
            check("logsumexp", &l, tol::<T>(), r.seed);
            let g = pair::<T>(gpu, &r.normal(n, 1.0));
            let mut dx = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
            logsumexp::backward(rows, cols, axis, &g.cpu, &x.cpu, &l.cpu, GradOut::new(&mut dx.cpu, true));
            logsumexp::backward(rows, cols, axis, &g.gpu, &x.gpu, &l.gpu, GradOut::new(&mut dx.gpu, true));
            check("logsumexp backward", &dx, 10.0 * tol::<T>(), r.seed);
        }
        let mut s = poisoned::<T>(gpu, rows);
        broadcast::row_sums(cols, &x.cpu, &mut s.cpu);
        broadcast::row_sums(cols, &x.gpu, &mut s.gpu);
        check("row_sums", &s, 10.0 * tol::<T>(), r.seed);
    }
}

#[test]
fn softmax_logsumexp_and_sums_match_cpu() {
    let Some(gpu) = gpu_or_skip("softmax_logsumexp_and_sums_match_cpu") else { return };
    let mut r = Gen::new();
    reductions_case::<f32>(&gpu, &mut r);
    reductions_case::<f64>(&gpu, &mut r);
}

fn layout_case<T: Real>(gpu: &Device, r: &mut Gen) {
    for (rows, cols) in SHAPES {
        for p in [1, rows, if rows % 10 == 0 { rows / 10 } else { rows }] {
            let src = pair::<T>(gpu, &r.normal(p * cols, 1.0));
            let mut o = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
            broadcast::tile_rows(cols, &src.cpu, T::c(2.0), GradOut::new(&mut o.cpu, true));
            broadcast::tile_rows(cols, &src.gpu, T::c(2.0), GradOut::new(&mut o.gpu, true));
            check("tile_rows", &o, tol::<T>(), r.seed);
            let a = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
            let mut o = poisoned::<T>(gpu, rows * cols);
            broadcast::add_tiled(cols, &a.cpu, &src.cpu, &mut o.cpu);
            broadcast::add_tiled(cols, &a.gpu, &src.gpu, &mut o.gpu);
            check("add_tiled", &o, tol::<T>(), r.seed);
            let mut f = poisoned::<T>(gpu, p * cols);
            broadcast::fold_rows(cols, &a.cpu, GradOut::new(&mut f.cpu, false));
            broadcast::fold_rows(cols, &a.gpu, GradOut::new(&mut f.gpu, false));
            check("fold_rows", &f, 10.0 * tol::<T>(), r.seed);
        }
        let g = pair::<T>(gpu, &r.normal(rows, 1.0));
        let mut o = poisoned::<T>(gpu, rows * cols);
        broadcast::tile_cols(cols, &g.cpu, T::c(-1.5), GradOut::new(&mut o.cpu, false));
        broadcast::tile_cols(cols, &g.gpu, T::c(-1.5), GradOut::new(&mut o.gpu, false));
        check("tile_cols", &o, tol::<T>(), r.seed);
        let x = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        let mut t = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        transpose::transpose(rows, cols, &x.cpu, GradOut::new(&mut t.cpu, true));
        transpose::transpose(rows, cols, &x.gpu, GradOut::new(&mut t.gpu, true));
        check("transpose", &t, tol::<T>(), r.seed);
    }
    for (b, k, cols) in [(1, 1, 1), (3, 4, 5), (100, 10, 1024), (100, 10, 784), (500, 50, 64)] {
        let rows = b * k;
        let (a, table) = (pair::<T>(gpu, &r.normal(b * cols, 1.0)), pair::<T>(gpu, &r.normal(k * cols, 1.0)));
        let (ic, ig) = idx(gpu, &r.indices(rows, k));
        let mut o = poisoned::<T>(gpu, rows * cols);
        gather::gather_add_rows(cols, &a.cpu, &table.cpu, &ic, &mut o.cpu);
        gather::gather_add_rows(cols, &a.gpu, &table.gpu, &ig, &mut o.gpu);
        check("gather_add_rows", &o, tol::<T>(), r.seed);
        let g = pair::<T>(gpu, &r.normal(rows * cols, 1.0));
        let mut dt = pair::<T>(gpu, &r.normal(k * cols, 1.0));
        gather::scatter_add_rows(cols, &g.cpu, &ic, GradOut::new(&mut dt.cpu, true));
        gather::scatter_add_rows(cols, &g.gpu, &ig, GradOut::new(&mut dt.gpu, true));
        check("scatter_add_rows", &dt, 10.0 * tol::<T>(), r.seed);
        let (pc, pg) = idx(gpu, &r.indices(rows, cols));
        let mut o = poisoned::<T>(gpu, rows);
        gather::pick(cols, &g.cpu, &pc, &mut o.cpu);
        gather::pick(cols, &g.gpu, &pg, &mut o.gpu);
        check("pick", &o, 0.0, r.seed);
        let gr = pair::<T>(gpu, &r.normal(rows, 1.0));
        let mut dx = poisoned::<T>(gpu, rows * cols);
        gather::pick_backward(cols, &gr.cpu, &pc, GradOut::new(&mut dx.cpu, false));
        gather::pick_backward(cols, &gr.gpu, &pg, GradOut::new(&mut dx.gpu, false));
        check("pick_backward", &dx, 0.0, r.seed);
    }
}

#[test]
fn broadcast_gather_and_transpose_match_cpu() {
    let Some(gpu) = gpu_or_skip("broadcast_gather_and_transpose_match_cpu") else { return };
    let mut r = Gen::new();
    layout_case::<f32>(&gpu, &mut r);
    layout_case::<f64>(&gpu, &mut r);
}

fn elementwise_case<T: Real>(gpu: &Device, r: &mut Gen) {
    for n in [1usize, 7, 100_003, 6_838_372] {
        let (a, b) = (pair::<T>(gpu, &r.normal(n, 1.0)), pair::<T>(gpu, &r.normal(n, 1.0)));
        for op in [elementwise::BinaryOp::Add, elementwise::BinaryOp::Sub, elementwise::BinaryOp::Mul] {
            let mut o = poisoned::<T>(gpu, n);
            elementwise::binary(op, &a.cpu, &b.cpu, &mut o.cpu);
            elementwise::binary(op, &a.gpu, &b.gpu, &mut o.gpu);
            check("binary", &o, tol::<T>(), r.seed);
        }
        let mut o = pair::<T>(gpu, &r.normal(n, 1.0));
        elementwise::mul_into(&a.cpu, &b.cpu, T::c(3.0), GradOut::new(&mut o.cpu, true));
        elementwise::mul_into(&a.gpu, &b.gpu, T::c(3.0), GradOut::new(&mut o.gpu, true));
        check("mul_into", &o, tol::<T>(), r.seed);
        let mut o = poisoned::<T>(gpu, n);
        elementwise::scale_into(&a.cpu, T::c(-0.5), GradOut::new(&mut o.cpu, false));
        elementwise::scale_into(&a.gpu, T::c(-0.5), GradOut::new(&mut o.gpu, false));
        check("scale_into", &o, tol::<T>(), r.seed);
        let mut c = pair::<T>(gpu, &r.normal(n, 1.0));
        elementwise::copy(&a.cpu, &mut c.cpu);
        elementwise::copy(&a.gpu, &mut c.gpu);
        check("copy", &c, 0.0, r.seed);
        // Adam on the model's parameter count.
        let g = pair::<T>(gpu, &r.normal(n, 1.0));
        let (mut p, mut m, mut v) =
            (pair::<T>(gpu, &r.normal(n, 1.0)), pair::<T>(gpu, &r.normal(n, 0.1)), pair::<T>(gpu, &r.uniform(n)));
        let h = adam::AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 11,
            grad_scale: 1.0,
            clip: f64::INFINITY,
        };
        adam::step(h, &mut p.cpu, &g.cpu, &mut m.cpu, &mut v.cpu);
        adam::step(h, &mut p.gpu, &g.gpu, &mut m.gpu, &mut v.gpu);
        check("adam p", &p, tol::<T>(), r.seed);
        check("adam m", &m, tol::<T>(), r.seed);
        check("adam v", &v, tol::<T>(), r.seed);
        let h = adam::AdamStep { grad_scale: 0.3, t: 12, ..h };
        adam::step(h, &mut p.cpu, &g.cpu, &mut m.cpu, &mut v.cpu);
        adam::step(h, &mut p.gpu, &g.gpu, &mut m.gpu, &mut v.gpu);
        check("adam p, scaled gradient", &p, tol::<T>(), r.seed);
        check("adam m, scaled gradient", &m, tol::<T>(), r.seed);
        let h = adam::AdamStep { clip: 0.5, t: 13, ..h };
        adam::step(h, &mut p.cpu, &g.cpu, &mut m.cpu, &mut v.cpu);
        adam::step(h, &mut p.gpu, &g.gpu, &mut m.gpu, &mut v.gpu);
        check("adam p, clipped gradient", &p, tol::<T>(), r.seed);
        check("adam v, clipped gradient", &v, tol::<T>(), r.seed);
        // The gradient norm and finiteness pass, over several buffers at once.
        let (a2, b2) = (pair::<T>(gpu, &r.normal(7, 1.0)), pair::<T>(gpu, &r.normal(1, 1.0)));
        let cpu = adam::sum_squares(&[&g.cpu, &a2.cpu, &b2.cpu]);
        let gpu_s = adam::sum_squares(&[&g.gpu, &a2.gpu, &b2.gpu]);
        assert!((cpu - gpu_s).abs() <= 1e-12 * cpu, "sum_squares ({}): {gpu_s} vs {cpu} (seed {})", T::NAME, r.seed);
        let mut bad = g.cpu.to_vec();
        bad[n / 2] = T::nan();
        let bad = pair::<T>(gpu, &bad.iter().map(|x| x.as_f64()).collect::<Vec<_>>());
        assert!(!adam::sum_squares(&[&a2.gpu, &bad.gpu]).is_finite(), "sum_squares ({}) missed a NaN", T::NAME);
    }
}

#[test]
fn elementwise_and_adam_match_cpu() {
    let Some(gpu) = gpu_or_skip("elementwise_and_adam_match_cpu") else { return };
    let mut r = Gen::new();
    elementwise_case::<f32>(&gpu, &mut r);
    elementwise_case::<f64>(&gpu, &mut r);
}

#[test]
fn buffers_round_trip_and_slice() {
    let Some(gpu) = gpu_or_skip("buffers_round_trip_and_slice") else { return };
    let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
    let b = Buffer::from_slice(&gpu, &v);
    assert_eq!(b.to_vec(), v);
    assert_eq!(b.copy_range(10, 5).to_vec(), v[10..15].to_vec());
    assert_eq!(b.duplicate().to_vec(), v);
    let i = Indices::new(&gpu, &[3, 1, 4]);
    assert_eq!(i.to_vec(), vec![3, 1, 4]);
    // Empty buffers and indices, dropped, then ordinary work: no error may surface later.
    let e = Buffer::<f64>::zeros(&gpu, 0);
    assert_eq!(e.len(), 0);
    assert!(e.to_vec().is_empty());
    assert!(Indices::new(&gpu, &[]).to_vec().is_empty());
    drop(e);
    let mut b = Buffer::<f32>::uninit(&gpu, 17);
    b.fill(2.0);
    gpu.synchronize();
    assert_eq!(b.to_vec(), vec![2.0; 17]);
}

#[test]
fn zero_length_buffers_allocate_and_copy() {
    let Some(gpu) = gpu_or_skip("zero_length_buffers_allocate_and_copy") else { return };
    // Each of these asks for a one-element allocation behind a zero logical length.
    let mut empties: Vec<Buffer<f32>> = (0..64).map(|_| Buffer::uninit(&gpu, 0)).collect();
    for e in &mut empties {
        e.fill(1.0);
        e.copy_from_host(&[]);
        assert_eq!(e.len(), 0);
        assert!(e.duplicate().to_vec().is_empty());
    }
    let v: Vec<f32> = (0..9).map(|i| i as f32).collect();
    let b = Buffer::from_slice(&gpu, &v);
    assert!(b.copy_range(9, 0).to_vec().is_empty());
    let parts: Vec<&Buffer<f32>> = vec![&empties[0], &b, &empties[1]];
    assert_eq!(Buffer::concat(&gpu, &parts).to_vec(), v);
    assert!(Buffer::concat(&gpu, &[&empties[2]]).to_vec().is_empty());
    drop(empties);
    gpu.synchronize();
    assert_eq!(b.to_vec(), v);
}

#[test]
fn concat_gathers_scalars_like_the_cpu() {
    let Some(gpu) = gpu_or_skip("concat_gathers_scalars_like_the_cpu") else { return };
    let vals = [1.5f64, -2.25, f64::INFINITY, 1e-300, 7.0];
    let g: Vec<Buffer<f64>> = vals.iter().map(|&x| Buffer::from_slice(&gpu, &[x])).collect();
    let c: Vec<Buffer<f64>> = vals.iter().map(|&x| Buffer::from_slice(&Device::Cpu, &[x])).collect();
    let on_gpu = Buffer::concat(&gpu, &g.iter().collect::<Vec<_>>()).to_vec();
    let on_cpu = Buffer::concat(&Device::Cpu, &c.iter().collect::<Vec<_>>()).to_vec();
    assert_eq!(on_gpu, vals);
    assert_eq!(on_cpu, vals);
}

#[cfg(feature = "cuda")]
#[test]
fn the_gpu_can_run_the_embedded_ptx() {
    let Some(gpu) = gpu_or_skip("the_gpu_can_run_the_embedded_ptx") else { return };
    let Device::Cuda(d) = &gpu else { panic!("gpu_or_skip returned {gpu:?}") };
    let (major, minor) = d.compute_capability().expect("compute capability");
    eprintln!("{}: compute capability {major}.{minor}, PTX built for {}", d.name(), cagem_kernels::cuda::PTX_ARCH);
    // Device::open checked this already; a GPU that opened must pass it.
    cagem_kernels::cuda::check_capability(major, minor, cagem_kernels::cuda::PTX_ARCH).expect("capability");
}
