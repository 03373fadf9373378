//! Every CPU kernel against a plain serial reference written from the formula, on fresh random
//! inputs, at small awkward shapes and at the model's shapes (which exercise the parallel
//! splits). Outputs start poisoned with NaN; accumulation modes are checked against a prior value.

mod common;

use cagem_kernels::batchnorm::{self, BnAffine, BnGrads, BnOutput, BnStats, RunningStats};
use cagem_kernels::gemm::{GemmShape, Trans, gemm};
use cagem_kernels::logsumexp::{self, Axis};
use cagem_kernels::rng::{RngStream, normal_at, uniform_at};
use cagem_kernels::{
    Buffer, Device, Indices, adam, bernoulli, binarize, broadcast, elementwise, gather, gaussian, reparam, softmax,
    transpose,
};
use common::*;

const BIG: [(usize, usize); 3] = [(1000, 1024), (100, 784), (1000, 64)];
const SMALL: [(usize, usize); 4] = [(1, 1), (1, 7), (5, 1), (13, 9)];

fn shapes() -> impl Iterator<Item = (usize, usize)> {
    SMALL.into_iter().chain(BIG)
}

#[test]
fn gemm_all_transposes_against_triple_loop() {
    let mut rnd = Gen::new();
    for (m, n, k) in [(1, 1, 1), (3, 5, 7), (130, 70, 90), (257, 64, 784)] {
        for ta in [Trans::N, Trans::T] {
            for tb in [Trans::N, Trans::T] {
                let a = rnd.normal(m * k, 1.0);
                let b = rnd.normal(k * n, 1.0);
                let c0 = rnd.normal(m * n, 1.0);
                let at = |i: usize, p: usize| if ta == Trans::N { a[i * k + p] } else { a[p * m + i] };
                let bt = |p: usize, j: usize| if tb == Trans::N { b[p * n + j] } else { b[j * k + p] };
                let mut want = vec![0.0; m * n];
                for i in 0..m {
                    for j in 0..n {
                        want[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                    }
                }
                let s = GemmShape::new(m, n, k, ta, tb);
                let mut c = poisoned::<f64>(m * n);
                gemm(s, &buf(&a), &buf(&b), &mut c, false);
                assert_close("gemm f64", &vals(&c), &want, 1e-12, 1e-12, rnd.seed);
                let mut c = buf::<f64>(&c0);
                gemm(s, &buf(&a), &buf(&b), &mut c, true);
                let want_acc: Vec<f64> = want.iter().zip(&c0).map(|(w, c)| w + c).collect();
                assert_close("gemm f64 accumulate", &vals(&c), &want_acc, 1e-12, 1e-12, rnd.seed);
                let mut c = poisoned::<f32>(m * n);
                gemm(s, &buf::<f32>(&a), &buf::<f32>(&b), &mut c, false);
                let tol = 1e-5 * (k as f64).sqrt();
                assert_close("gemm f32", &vals(&c), &want, tol, tol, rnd.seed);
            }
        }
    }
}

/// Plain batch-norm reference: y from the given per-column statistics (mean, biased var).
fn bn_reference(
    rows: usize,
    cols: usize,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    (mean, var): (&[f64], &[f64]),
    eps: f64,
    relu: bool,
) -> Vec<f64> {
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        for j in 0..cols {
            let v = gamma[j] * (x[r * cols + j] - mean[j]) / (var[j] + eps).sqrt() + beta[j];
            y[r * cols + j] = if relu { v.max(0.0) } else { v };
        }
    }
    y
}

/// Per-column batch statistics with row r counted w_r times (Σw = rows): mean and biased var.
fn weighted_moments(rows: usize, cols: usize, x: &[f64], w: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = rows as f64;
    (0..cols)
        .map(|j| {
            let mu = (0..rows).map(|r| w[r] * x[r * cols + j]).sum::<f64>() / n;
            let v = (0..rows).map(|r| w[r] * (x[r * cols + j] - mu).powi(2)).sum::<f64>() / n;
            (mu, v)
        })
        .unzip()
}

/// Row weights of mean 1 (fresh, positive).
fn row_weights(rnd: &mut Gen, rows: usize) -> Vec<f64> {
    let raw: Vec<f64> = rnd.uniform(rows).iter().map(|v| v + 0.05).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|v| v * rows as f64 / sum).collect()
}

/// Training mode, unweighted and with fresh row weights of mean 1 (the unweighted case is
/// weights 1 in the same formulas): y, the statistics, the running update with the unbiased
/// (weighted) variance σ²/(1 − Σw²/n²), which is n/(n − 1) for equal weights and 1 for one row,
/// and the backward pass dx = γ·rstd·(g' − w_r·Σg'/n − w_r·x̂·Σg'x̂/n), dβ = Σg', dγ = Σg'x̂.
#[test]
fn batchnorm_training_forward_backward_and_running_update() {
    let mut rnd = Gen::new();
    let eps = 1e-5;
    for (rows, cols) in shapes() {
        for (relu, weighted) in [(true, false), (false, false), (true, true), (false, true)] {
            let x: Vec<f64> = rnd.normal(rows * cols, 2.0).iter().map(|v| v + 3.0).collect();
            let gamma: Vec<f64> = rnd.normal(cols, 0.5).iter().map(|v| v + 1.0).collect();
            let beta = rnd.normal(cols, 0.5);
            let w = if weighted { row_weights(&mut rnd, rows) } else { vec![1.0; rows] };
            let n = rows as f64;
            let (want_mean, want_var) = weighted_moments(rows, cols, &x, &w);
            let want_y = bn_reference(rows, cols, &x, &gamma, &beta, (&want_mean, &want_var), eps, relu);
            let rm0 = rnd.normal(cols, 1.0);
            let rv0: Vec<f64> = rnd.uniform(cols).iter().map(|v| v + 0.5).collect();
            let (gb, bb) = (buf::<f64>(&gamma), buf::<f64>(&beta));
            let wb = weighted.then(|| buf::<f64>(&w));
            let (mut y, mut mean, mut rstd) =
                (poisoned::<f64>(rows * cols), poisoned::<f64>(cols), poisoned::<f64>(cols));
            let (mut rm, mut rv) = (buf::<f64>(&rm0), buf::<f64>(&rv0));
            batchnorm::forward_train(
                rows,
                cols,
                &buf(&x),
                wb.as_ref(),
                BnAffine { gamma: &gb, beta: &bb, eps, relu },
                BnOutput::F32(&mut y),
                &mut mean,
                &mut rstd,
                Some(RunningStats { mean: &mut rm, var: &mut rv, momentum: 0.1 }),
            );
            let what = if weighted { "weighted bn" } else { "bn" };
            assert_close(&format!("{what} y"), &vals(&y), &want_y, 1e-9, 1e-9, rnd.seed);
            assert_close(&format!("{what} mean"), &vals(&mean), &want_mean, 1e-10, 1e-10, rnd.seed);
            let want_rstd: Vec<f64> = want_var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            assert_close(&format!("{what} rstd"), &vals(&rstd), &want_rstd, 1e-8, 1e-8, rnd.seed);
            let f = 1.0 - w.iter().map(|v| v * v).sum::<f64>() / (n * n);
            let unbias = if f > 1e-12 { 1.0 / f } else { 1.0 };
            let want_rm: Vec<f64> = rm0.iter().zip(&want_mean).map(|(r, m)| 0.9 * r + 0.1 * m).collect();
            let want_rv: Vec<f64> = rv0.iter().zip(&want_var).map(|(r, v)| 0.9 * r + 0.1 * v * unbias).collect();
            assert_close(&format!("{what} running mean"), &vals(&rm), &want_rm, 1e-10, 1e-10, rnd.seed);
            assert_close(&format!("{what} running var"), &vals(&rv), &want_rv, 1e-8, 1e-10, rnd.seed);

            // Backward against the closed form, written out plainly.
            let g = rnd.normal(rows * cols, 1.0);
            let (mut dgam, mut dbet) = (vec![0.0; cols], vec![0.0; cols]);
            let mut dx = vec![0.0; rows * cols];
            for j in 0..cols {
                let r_ = want_rstd[j];
                let xhat = |r: usize| (x[r * cols + j] - want_mean[j]) * r_;
                let gp = |r: usize| if relu && gamma[j] * xhat(r) + beta[j] <= 0.0 { 0.0 } else { g[r * cols + j] };
                dbet[j] = (0..rows).map(gp).sum();
                dgam[j] = (0..rows).map(|r| gp(r) * xhat(r)).sum();
                for r in 0..rows {
                    dx[r * cols + j] = gamma[j] * r_ * (gp(r) - w[r] * dbet[j] / n - w[r] * xhat(r) * dgam[j] / n);
                }
            }
            let prior = rnd.normal(rows * cols, 1.0);
            let (mut bdx, mut bdg, mut bdb) = (buf::<f64>(&prior), poisoned::<f64>(cols), poisoned::<f64>(cols));
            batchnorm::backward(
                rows,
                cols,
                &buf(&g),
                &buf(&x),
                wb.as_ref(),
                BnAffine { gamma: &gb, beta: &bb, eps, relu },
                BnStats::Batch { mean: &mean, rstd: &rstd },
                BnGrads {
                    dx: Some(out(&mut bdx, true)),
                    dgamma: Some(out(&mut bdg, false)),
                    dbeta: Some(out(&mut bdb, false)),
                },
                None,
            );
            let want_dx: Vec<f64> = dx.iter().zip(&prior).map(|(a, b)| a + b).collect();
            assert_close(&format!("{what} dx (accumulated)"), &vals(&bdx), &want_dx, 1e-7, 1e-9, rnd.seed);
            assert_close(&format!("{what} dgamma"), &vals(&bdg), &dgam, 1e-8, 1e-8, rnd.seed);
            assert_close(&format!("{what} dbeta"), &vals(&bdb), &dbet, 1e-8, 1e-8, rnd.seed);
        }
    }
}

/// Weights 1 are bit for bit the unweighted kernels (the default path the ablation leaves
/// alone), and integer weights normalise like repeated rows.
#[test]
fn batchnorm_weights_of_one_are_exactly_unweighted_and_counts_repeat_rows() {
    let mut rnd = Gen::new();
    let eps = 1e-5;
    for (rows, cols) in shapes() {
        let x = buf::<f32>(&rnd.normal(rows * cols, 2.0).iter().map(|v| v + 1.0).collect::<Vec<_>>());
        let (gamma, beta) = (buf::<f32>(&rnd.normal(cols, 1.0)), buf::<f32>(&rnd.normal(cols, 1.0)));
        let g = buf::<f32>(&rnd.normal(rows * cols, 1.0));
        let ones = buf::<f32>(&vec![1.0; rows]);
        let run = |w: Option<&Buffer<f32>>| {
            let (mut y, mut mean, mut rstd) =
                (poisoned::<f32>(rows * cols), poisoned::<f32>(cols), poisoned::<f32>(cols));
            let (mut rm, mut rv) = (buf::<f32>(&vec![0.5; cols]), buf::<f32>(&vec![2.0; cols]));
            let aff = || BnAffine { gamma: &gamma, beta: &beta, eps, relu: true };
            let running = Some(RunningStats { mean: &mut rm, var: &mut rv, momentum: 0.1 });
            batchnorm::forward_train(rows, cols, &x, w, aff(), BnOutput::F32(&mut y), &mut mean, &mut rstd, running);
            let (mut dx, mut dg, mut db) = (poisoned::<f32>(rows * cols), poisoned::<f32>(cols), poisoned::<f32>(cols));
            let grads = BnGrads {
                dx: Some(out(&mut dx, false)),
                dgamma: Some(out(&mut dg, false)),
                dbeta: Some(out(&mut db, false)),
            };
            let stats = BnStats::Batch { mean: &mean, rstd: &rstd };
            batchnorm::backward(rows, cols, &g, &x, w, aff(), stats, grads, None);
            [y, mean, rstd, rm, rv, dx, dg, db].map(|b| b.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
        };
        let (plain, weighted) = (run(None), run(Some(&ones)));
        for (i, what) in
            ["y", "mean", "rstd", "running mean", "running var", "dx", "dgamma", "dbeta"].iter().enumerate()
        {
            assert!(plain[i] == weighted[i], "weights 1 changed bn {what} at {rows}×{cols} (seed {})", rnd.seed);
        }
    }
    for (rows, cols) in SMALL.into_iter().chain([(40, 9)]) {
        let x = rnd.normal(rows * cols, 2.0);
        let (gamma, beta) = (rnd.normal(cols, 1.0), rnd.normal(cols, 1.0));
        let counts: Vec<usize> = rnd.uniform(rows).iter().map(|u| 1 + (u * 3.0) as usize).collect();
        let total: usize = counts.iter().sum();
        let w: Vec<f64> = counts.iter().map(|&c| c as f64 * rows as f64 / total as f64).collect();
        let repeated: Vec<f64> = (0..rows)
            .flat_map(|r| std::iter::repeat_n(&x[r * cols..(r + 1) * cols], counts[r]).flatten().copied())
            .collect();
        let (gb, bb) = (buf::<f64>(&gamma), buf::<f64>(&beta));
        let fwd = |rows: usize, x: &[f64], w: Option<&[f64]>| {
            let (mut y, mut mean, mut rstd) =
                (poisoned::<f64>(rows * cols), poisoned::<f64>(cols), poisoned::<f64>(cols));
            let wb = w.map(buf::<f64>);
            let aff = BnAffine { gamma: &gb, beta: &bb, eps, relu: false };
            batchnorm::forward_train(
                rows,
                cols,
                &buf(x),
                wb.as_ref(),
                aff,
                BnOutput::F32(&mut y),
                &mut mean,
                &mut rstd,
                None,
            );
            (vals(&y), vals(&mean), vals(&rstd))
        };
        let (y_w, mean_w, rstd_w) = fwd(rows, &x, Some(&w));
        let (y_r, mean_r, rstd_r) = fwd(total, &repeated, None);
        assert_close("weighted = repeated: mean", &mean_w, &mean_r, 1e-10, 1e-10, rnd.seed);
        assert_close("weighted = repeated: rstd", &rstd_w, &rstd_r, 1e-8, 1e-8, rnd.seed);
        let firsts: Vec<usize> = counts
            .iter()
            .scan(0, |at, &c| {
                let r = *at;
                *at += c;
                Some(r)
            })
            .collect();
        let y_first: Vec<f64> = firsts.iter().flat_map(|&r| y_r[r * cols..(r + 1) * cols].to_vec()).collect();
        assert_close("weighted = repeated: y", &y_w, &y_first, 1e-9, 1e-9, rnd.seed);
    }
}

#[test]
fn batchnorm_inference_mode_uses_running_statistics() {
    let mut rnd = Gen::new();
    let eps = 1e-5;
    for (rows, cols) in shapes() {
        let x = rnd.normal(rows * cols, 1.0);
        let gamma = rnd.normal(cols, 1.0);
        let beta = rnd.normal(cols, 1.0);
        let rm = rnd.normal(cols, 1.0);
        let rv: Vec<f64> = rnd.uniform(cols).iter().map(|v| v + 0.1).collect();
        let want_y = bn_reference(rows, cols, &x, &gamma, &beta, (&rm, &rv), eps, true);
        let (gb, bb, rmb, rvb) = (buf::<f64>(&gamma), buf::<f64>(&beta), buf::<f64>(&rm), buf::<f64>(&rv));
        let mut y = poisoned::<f64>(rows * cols);
        batchnorm::forward_eval(
            rows,
            cols,
            &buf(&x),
            BnAffine { gamma: &gb, beta: &bb, eps, relu: true },
            &rmb,
            &rvb,
            BnOutput::F32(&mut y),
        );
        assert_close("bn eval y", &vals(&y), &want_y, 1e-10, 1e-10, rnd.seed);

        let g = rnd.normal(rows * cols, 1.0);
        let mut want_dx = vec![0.0; rows * cols];
        for r in 0..rows {
            for j in 0..cols {
                let a = gamma[j] / (rv[j] + eps).sqrt();
                let pre = a * (x[r * cols + j] - rm[j]) + beta[j];
                want_dx[r * cols + j] = if pre > 0.0 { g[r * cols + j] * a } else { 0.0 };
            }
        }
        let mut dx = poisoned::<f64>(rows * cols);
        batchnorm::backward(
            rows,
            cols,
            &buf(&g),
            &buf(&x),
            None,
            BnAffine { gamma: &gb, beta: &bb, eps, relu: true },
            BnStats::Running { mean: &rmb, var: &rvb },
            BnGrads { dx: Some(out(&mut dx, false)), dgamma: None, dbeta: None },
            None,
        );
        assert_close("bn eval dx", &vals(&dx), &want_dx, 1e-10, 1e-10, rnd.seed);
    }
}

#[test]
fn broadcast_kernels() {
    let mut rnd = Gen::new();
    for (rows, cols) in shapes() {
        for p in [1, rows] {
            let src = rnd.normal(p * cols, 1.0);
            let prior = rnd.normal(rows * cols, 1.0);
            let mut o = buf::<f64>(&prior);
            broadcast::tile_rows(cols, &buf(&src), 2.0, out(&mut o, true));
            let want: Vec<f64> =
                (0..rows * cols).map(|i| prior[i] + 2.0 * src[(i / cols % p) * cols + i % cols]).collect();
            assert_close("tile_rows", &vals(&o), &want, 1e-12, 1e-12, rnd.seed);

            let a = rnd.normal(rows * cols, 1.0);
            let mut o = poisoned::<f64>(rows * cols);
            broadcast::add_tiled(cols, &buf(&a), &buf(&src), &mut o);
            let want: Vec<f64> = (0..rows * cols).map(|i| a[i] + src[(i / cols % p) * cols + i % cols]).collect();
            assert_close("add_tiled", &vals(&o), &want, 1e-12, 1e-12, rnd.seed);

            let mut o = poisoned::<f64>(p * cols);
            broadcast::fold_rows(cols, &buf(&a), out(&mut o, false));
            let mut want = vec![0.0; p * cols];
            for r in 0..rows {
                for c in 0..cols {
                    want[(r % p) * cols + c] += a[r * cols + c];
                }
            }
            assert_close("fold_rows", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);
        }
        let x = rnd.normal(rows * cols, 1.0);
        let mut o = poisoned::<f64>(rows);
        broadcast::row_sums(cols, &buf(&x), &mut o);
        let want: Vec<f64> = (0..rows).map(|r| x[r * cols..(r + 1) * cols].iter().sum()).collect();
        assert_close("row_sums", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);
        let g = rnd.normal(rows, 1.0);
        let mut o = poisoned::<f64>(rows * cols);
        broadcast::tile_cols(cols, &buf(&g), -1.5, out(&mut o, false));
        let want: Vec<f64> = (0..rows * cols).map(|i| -1.5 * g[i / cols]).collect();
        assert_close("tile_cols", &vals(&o), &want, 1e-12, 1e-12, rnd.seed);
    }
    // Many repeats of several rows (the column-parallel fold path).
    let (rows, cols, p) = (1000, 512, 10);
    let a = rnd.normal(rows * cols, 1.0);
    let mut o = poisoned::<f64>(p * cols);
    broadcast::fold_rows(cols, &buf(&a), out(&mut o, false));
    let mut want = vec![0.0; p * cols];
    for r in 0..rows {
        for c in 0..cols {
            want[(r % p) * cols + c] += a[r * cols + c];
        }
    }
    assert_close("fold_rows (10 of 1000)", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);
}

#[test]
fn gather_and_pick_kernels() {
    let mut rnd = Gen::new();
    let dev = Device::Cpu;
    for (b, k, cols) in [(1, 1, 1), (3, 4, 5), (100, 10, 1024), (100, 10, 512)] {
        let rows = b * k;
        let a = rnd.normal(b * cols, 1.0);
        let table = rnd.normal(k * cols, 1.0);
        let idx = rnd.indices(rows, k);
        let ib = Indices::new(&dev, &idx);
        let mut o = poisoned::<f64>(rows * cols);
        gather::gather_add_rows(cols, &buf(&a), &buf(&table), &ib, &mut o);
        let want: Vec<f64> = (0..rows * cols)
            .map(|i| a[(i / cols % b) * cols + i % cols] + table[idx[i / cols] as usize * cols + i % cols])
            .collect();
        assert_close("gather_add_rows", &vals(&o), &want, 1e-12, 1e-12, rnd.seed);

        let g = rnd.normal(rows * cols, 1.0);
        let mut o = poisoned::<f64>(k * cols);
        gather::scatter_add_rows(cols, &buf(&g), &ib, out(&mut o, false));
        let mut want = vec![0.0; k * cols];
        for r in 0..rows {
            for c in 0..cols {
                want[idx[r] as usize * cols + c] += g[r * cols + c];
            }
        }
        assert_close("scatter_add_rows", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);

        let pidx = rnd.indices(rows, cols);
        let pb = Indices::new(&dev, &pidx);
        let mut o = poisoned::<f64>(rows);
        gather::pick(cols, &buf(&g), &pb, &mut o);
        let want: Vec<f64> = (0..rows).map(|r| g[r * cols + pidx[r] as usize]).collect();
        assert_close("pick", &vals(&o), &want, 0.0, 0.0, rnd.seed);
        let gr = rnd.normal(rows, 1.0);
        let mut o = poisoned::<f64>(rows * cols);
        gather::pick_backward(cols, &buf(&gr), &pb, out(&mut o, false));
        let want: Vec<f64> =
            (0..rows * cols).map(|i| if i % cols == pidx[i / cols] as usize { gr[i / cols] } else { 0.0 }).collect();
        assert_close("pick_backward", &vals(&o), &want, 0.0, 0.0, rnd.seed);
    }
}

#[test]
fn softmax_and_logsumexp_kernels() {
    let mut rnd = Gen::new();
    for (rows, cols) in shapes() {
        let x = rnd.normal(rows * cols, 3.0);
        for log in [false, true] {
            let mut y = poisoned::<f64>(rows * cols);
            softmax::forward(cols, log, &buf(&x), &mut y);
            let mut want = vec![0.0; rows * cols];
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let z: f64 = row.iter().map(|v| v.exp()).sum();
                for c in 0..cols {
                    want[r * cols + c] = if log { row[c] - z.ln() } else { row[c].exp() / z };
                }
            }
            assert_close("softmax", &vals(&y), &want, 1e-10, 1e-12, rnd.seed);
            let g = rnd.normal(rows * cols, 1.0);
            let mut dx = poisoned::<f64>(rows * cols);
            softmax::backward(cols, log, &buf(&g), &y, out(&mut dx, false));
            let mut want_dx = vec![0.0; rows * cols];
            for r in 0..rows {
                let (gr, yr) = (&g[r * cols..(r + 1) * cols], &want[r * cols..(r + 1) * cols]);
                for c in 0..cols {
                    // Jacobian-vector product written out: Σ_j g_j ∂y_j/∂x_c.
                    want_dx[r * cols + c] = if log {
                        gr[c] - yr[c].exp() * gr.iter().sum::<f64>()
                    } else {
                        (0..cols).map(|j| gr[j] * yr[j] * (if j == c { 1.0 } else { 0.0 } - yr[c])).sum()
                    };
                }
            }
            assert_close("softmax backward", &vals(&dx), &want_dx, 1e-9, 1e-11, rnd.seed);
        }
        for axis in [Axis::AlongRow, Axis::DownColumn] {
            let n = axis.out_len(rows, cols);
            let mut o = poisoned::<f64>(n);
            logsumexp::forward(rows, cols, axis, &buf(&x), &mut o);
            let get = |j: usize, i: usize| if axis == Axis::AlongRow { x[j * cols + i] } else { x[i * cols + j] };
            let len = if axis == Axis::AlongRow { cols } else { rows };
            let want: Vec<f64> = (0..n).map(|j| (0..len).map(|i| get(j, i).exp()).sum::<f64>().ln()).collect();
            assert_close("logsumexp", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);
            let g = rnd.normal(n, 1.0);
            let mut dx = poisoned::<f64>(rows * cols);
            logsumexp::backward(rows, cols, axis, &buf(&g), &buf(&x), &o, out(&mut dx, false));
            let want_dx: Vec<f64> = (0..rows * cols)
                .map(|i| {
                    let j = if axis == Axis::AlongRow { i / cols } else { i % cols };
                    g[j] * (x[i] - want[j]).exp()
                })
                .collect();
            assert_close("logsumexp backward", &vals(&dx), &want_dx, 1e-9, 1e-12, rnd.seed);
        }
    }
    // Extreme values: no overflow, and all −∞ gives −∞ with zero gradient.
    let x = [1000.0, 999.0, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut o = poisoned::<f64>(2);
    logsumexp::forward(2, 2, Axis::AlongRow, &buf(&x), &mut o);
    let o = vals(&o);
    assert!((o[0] - (1000.0 + (1.0 + (-1.0f64).exp()).ln())).abs() < 1e-9 && o[1] == f64::NEG_INFINITY);
}

#[test]
fn gaussian_and_bernoulli_kernels_with_broadcast() {
    let mut rnd = Gen::new();
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    for (rows, cols, pz) in [(1, 1, 1), (6, 3, 2), (1000, 64, 100), (1000, 32, 1000), (1000, 784, 100)] {
        let z = rnd.normal(pz * cols, 1.0);
        let mu = rnd.normal(rows * cols, 1.0);
        let lv = rnd.normal(rows * cols, 1.0);
        let mut o = poisoned::<f64>(rows);
        gaussian::diag_logdensity(cols, &buf(&z), &buf(&mu), &buf(&lv), &mut o);
        let zi = |r: usize, c: usize| z[(r % pz) * cols + c];
        let want: Vec<f64> = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| {
                        -0.5 * (ln2pi
                            + lv[r * cols + c]
                            + (zi(r, c) - mu[r * cols + c]).powi(2) * (-lv[r * cols + c]).exp())
                    })
                    .sum()
            })
            .collect();
        assert_close("diag logdensity", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);

        let g = rnd.normal(rows, 1.0);
        let (mut dz, mut dmu, mut dlv) =
            (poisoned::<f64>(pz * cols), poisoned::<f64>(rows * cols), poisoned::<f64>(rows * cols));
        gaussian::diag_logdensity_backward(
            cols,
            &buf(&g),
            &buf(&z),
            &buf(&mu),
            &buf(&lv),
            gaussian::DiagGrads {
                dz: Some(out(&mut dz, false)),
                dmu: Some(out(&mut dmu, false)),
                dlogvar: Some(out(&mut dlv, false)),
            },
        );
        let mut want_dz = vec![0.0; pz * cols];
        let (mut want_dmu, mut want_dlv) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
        for r in 0..rows {
            for c in 0..cols {
                let i = r * cols + c;
                let d = zi(r, c) - mu[i];
                let iv = (-lv[i]).exp();
                want_dz[(r % pz) * cols + c] -= g[r] * d * iv;
                want_dmu[i] = g[r] * d * iv;
                want_dlv[i] = -0.5 * g[r] * (1.0 - d * d * iv);
            }
        }
        assert_close("diag dz", &vals(&dz), &want_dz, 1e-9, 1e-10, rnd.seed);
        assert_close("diag dmu", &vals(&dmu), &want_dmu, 1e-10, 1e-10, rnd.seed);
        assert_close("diag dlogvar", &vals(&dlv), &want_dlv, 1e-10, 1e-10, rnd.seed);

        let zz = rnd.normal(rows * cols, 1.0);
        let mut o = poisoned::<f64>(rows);
        gaussian::std_normal_logdensity(cols, &buf(&zz), &mut o);
        let want: Vec<f64> =
            (0..rows).map(|r| (0..cols).map(|c| -0.5 * (ln2pi + zz[r * cols + c].powi(2))).sum()).collect();
        assert_close("std normal", &vals(&o), &want, 1e-10, 1e-10, rnd.seed);

        let x: Vec<f64> = rnd.uniform(pz * cols).iter().map(|&u| if u < 0.3 { 1.0 } else { 0.0 }).collect();
        let logits = rnd.normal(rows * cols, 4.0);
        let mut o = poisoned::<f64>(rows);
        bernoulli::loglik(cols, &buf(&logits), &buf(&x), &mut o);
        let sig = |l: f64| 1.0 / (1.0 + (-l).exp());
        let want: Vec<f64> = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| {
                        let (p, xv) = (sig(logits[r * cols + c]), x[(r % pz) * cols + c]);
                        xv * p.ln() + (1.0 - xv) * (1.0 - p).ln()
                    })
                    .sum()
            })
            .collect();
        assert_close("bernoulli loglik", &vals(&o), &want, 1e-9, 1e-9, rnd.seed);
        let mut dl = poisoned::<f64>(rows * cols);
        bernoulli::loglik_backward(cols, &buf(&g), &buf(&logits), &buf(&x), out(&mut dl, false));
        let want: Vec<f64> =
            (0..rows * cols).map(|i| g[i / cols] * (x[(i / cols % pz) * cols + i % cols] - sig(logits[i]))).collect();
        assert_close("bernoulli dlogits", &vals(&dl), &want, 1e-10, 1e-12, rnd.seed);
    }
    // Logits far out in the tails: finite, exact limits.
    let mut o = poisoned::<f64>(1);
    bernoulli::loglik(4, &buf(&[200.0, -200.0, 200.0, -200.0]), &buf(&[1.0, 0.0, 0.0, 1.0]), &mut o);
    assert_eq!(vals(&o)[0], -400.0);
}

#[test]
fn reparameterisation_uses_the_documented_stream() {
    let mut rnd = Gen::new();
    for (rows, cols, pm) in [(1, 1, 1), (5, 3, 5), (1000, 32, 1000), (5000, 64, 100)] {
        let mu = rnd.normal(pm * cols, 1.0);
        let lv = rnd.normal(pm * cols, 1.0);
        let s = RngStream::new(rnd.seed, 5);
        let mut z = poisoned::<f64>(rows * cols);
        reparam::forward(cols, &buf(&mu), &buf(&lv), s, &mut z);
        let p = |r: usize, c: usize| (r % pm) * cols + c;
        let want: Vec<f64> = (0..rows * cols)
            .map(|i| mu[p(i / cols, i % cols)] + (0.5 * lv[p(i / cols, i % cols)]).exp() * normal_at(s, i as u64))
            .collect();
        assert_close("reparam z", &vals(&z), &want, 1e-12, 1e-12, rnd.seed);
        let g = rnd.normal(rows * cols, 1.0);
        let (mut dmu, mut dlv) = (poisoned::<f64>(pm * cols), poisoned::<f64>(pm * cols));
        reparam::backward(
            cols,
            &buf(&g),
            &z,
            &buf(&mu),
            &buf(&lv),
            Some(out(&mut dmu, false)),
            Some(out(&mut dlv, false)),
        );
        let (mut want_dmu, mut want_dlv) = (vec![0.0; pm * cols], vec![0.0; pm * cols]);
        for i in 0..rows * cols {
            let j = p(i / cols, i % cols);
            want_dmu[j] += g[i];
            want_dlv[j] += 0.5 * g[i] * (want[i] - mu[j]);
        }
        assert_close("reparam dmu", &vals(&dmu), &want_dmu, 1e-10, 1e-10, rnd.seed);
        assert_close("reparam dlogvar", &vals(&dlv), &want_dlv, 1e-9, 1e-10, rnd.seed);
    }
}

#[test]
fn binarisation_uses_the_documented_stream() {
    let mut rnd = Gen::new();
    let dev = Device::Cpu;
    for (n, b, cols) in [(3, 1, 1), (50, 20, 7), (1000, 100, 784)] {
        let probs = rnd.uniform(n * cols);
        let rows = rnd.indices(b, n);
        let s = RngStream::new(rnd.seed, 9);
        let mut o = poisoned::<f32>(b * cols);
        binarize::binarize_rows(cols, &buf::<f32>(&probs), &Indices::new(&dev, &rows), s, &mut o);
        let want: Vec<f64> = (0..b * cols)
            .map(|i| {
                let p = probs[rows[i / cols] as usize * cols + i % cols] as f32 as f64;
                if uniform_at(s, i as u64) < p { 1.0 } else { 0.0 }
            })
            .collect();
        assert_close("binarize", &vals(&o), &want, 0.0, 0.0, rnd.seed);
    }
}

#[test]
fn sum_squares_is_exact_in_f64_and_catches_every_non_finite_value() {
    let mut rnd = Gen::new();
    let sizes = [0, 1, 7, 9, 40_000, 100_001];
    let vals: Vec<Vec<f64>> = sizes.iter().map(|&n| rnd.normal(n, 3.0)).collect();
    let bufs: Vec<Buffer<f32>> = vals.iter().map(|v| buf::<f32>(v)).collect();
    let want: f64 = bufs.iter().flat_map(|b| b.to_vec()).map(|x| x as f64 * x as f64).sum();
    let got = adam::sum_squares(&bufs.iter().collect::<Vec<_>>());
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    assert_eq!(adam::sum_squares::<f32>(&[]), 0.0);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for at in [0, 5_000, 100_000] {
            let mut v = bufs[5].to_vec();
            v[at] = bad;
            let b = Buffer::from_slice(&Device::Cpu, &v);
            let s = adam::sum_squares(&[&bufs[1], &b]);
            assert!(!s.is_finite(), "{bad} at {at} was missed: {s}");
        }
    }
    // The largest finite f32 squared is far inside f64: a huge finite gradient stays finite.
    let big = Buffer::from_slice(&Device::Cpu, &vec![f32::MAX; 1000]);
    assert!(adam::sum_squares(&[&big]).is_finite());
}

#[test]
fn adam_grad_scale_equals_a_scaled_gradient() {
    let mut rnd = Gen::new();
    let n = 70_001;
    let (p, g, m, v) = (rnd.normal(n, 1.0), rnd.normal(n, 1.0), rnd.normal(n, 0.1), rnd.uniform(n));
    let h =
        adam::AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 3, grad_scale: 0.25, clip: f64::INFINITY };
    let (mut pa, mut ma, mut va) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    adam::step(h, &mut pa, &buf(&g), &mut ma, &mut va);
    let g4: Vec<f64> = g.iter().map(|x| x * 0.25).collect();
    let (mut pb, mut mb, mut vb) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    adam::step(adam::AdamStep { grad_scale: 1.0, ..h }, &mut pb, &buf(&g4), &mut mb, &mut vb);
    assert_eq!(vals(&pa), vals(&pb));
    assert_eq!(vals(&ma), vals(&mb));
    assert_eq!(vals(&va), vals(&vb));
}

#[test]
fn adam_clip_equals_a_clamped_gradient_and_infinity_changes_nothing() {
    let mut rnd = Gen::new();
    let n = 70_001;
    let (p, g, m, v) = (rnd.normal(n, 1.0), rnd.normal(n, 1.0), rnd.normal(n, 0.1), rnd.uniform(n));
    let h = adam::AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 3, grad_scale: 0.5, clip: 0.3 };
    let (mut pa, mut ma, mut va) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    adam::step(h, &mut pa, &buf(&g), &mut ma, &mut va);
    let clamped: Vec<f64> = g.iter().map(|x| (x * 0.5).clamp(-0.3, 0.3)).collect();
    assert!(clamped.iter().filter(|x| x.abs() == 0.3).count() > n / 10, "the test must clip some elements");
    let unclipped = adam::AdamStep { grad_scale: 1.0, clip: f64::INFINITY, ..h };
    let (mut pb, mut mb, mut vb) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    adam::step(unclipped, &mut pb, &buf(&clamped), &mut mb, &mut vb);
    assert_eq!((vals(&pa), vals(&ma), vals(&va)), (vals(&pb), vals(&mb), vals(&vb)));
    // +∞ leaves the update bit for bit as a bound of the largest magnitude would.
    let big = adam::AdamStep { clip: 1e300, ..unclipped };
    let (mut pc, mut mc, mut vc) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    let (mut pd, mut md, mut vd) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
    adam::step(unclipped, &mut pc, &buf(&g), &mut mc, &mut vc);
    adam::step(big, &mut pd, &buf(&g), &mut md, &mut vd);
    assert_eq!((vals(&pc), vals(&mc), vals(&vc)), (vals(&pd), vals(&md), vals(&vd)));
}

#[test]
fn adam_matches_the_textbook_update() {
    let mut rnd = Gen::new();
    for n in [1, 7, 100_000] {
        let (p, g, m, v) = (rnd.normal(n, 1.0), rnd.normal(n, 1.0), rnd.normal(n, 0.1), rnd.uniform(n));
        let h = adam::AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 7,
            grad_scale: 1.0,
            clip: f64::INFINITY,
        };
        let (mut pb, mut mb, mut vb) = (buf::<f64>(&p), buf::<f64>(&m), buf::<f64>(&v));
        adam::step(h, &mut pb, &buf(&g), &mut mb, &mut vb);
        let mut want = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            let mi = 0.9 * m[i] + 0.1 * g[i];
            let vi = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mhat = mi / (1.0 - 0.9f64.powi(7));
            let vhat = vi / (1.0 - 0.999f64.powi(7));
            want.0[i] = p[i] - 1e-3 * mhat / (vhat.sqrt() + 1e-8);
            want.1[i] = mi;
            want.2[i] = vi;
        }
        // ε enters slightly differently in the folded form (ε·√(1−β₂ᵗ) vs ε): a 1e-8-level effect.
        assert_close("adam p", &vals(&pb), &want.0, 1e-9, 1e-9, rnd.seed);
        assert_close("adam m", &vals(&mb), &want.1, 1e-12, 1e-14, rnd.seed);
        assert_close("adam v", &vals(&vb), &want.2, 1e-12, 1e-14, rnd.seed);
    }
}

#[test]
fn elementwise_and_transpose_kernels() {
    let mut rnd = Gen::new();
    for (rows, cols) in shapes() {
        let n = rows * cols;
        let (a, b) = (rnd.normal(n, 1.0), rnd.normal(n, 1.0));
        for (op, f) in [
            (elementwise::BinaryOp::Add, (|x, y| x + y) as fn(f64, f64) -> f64),
            (elementwise::BinaryOp::Sub, |x, y| x - y),
            (elementwise::BinaryOp::Mul, |x, y| x * y),
        ] {
            let mut o = poisoned::<f64>(n);
            elementwise::binary(op, &buf(&a), &buf(&b), &mut o);
            let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
            assert_close("binary", &vals(&o), &want, 1e-15, 0.0, rnd.seed);
        }
        let mut o = buf::<f64>(&b);
        elementwise::mul_into(&buf(&a), &buf(&b), 3.0, out(&mut o, true));
        let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| y + 3.0 * x * y).collect();
        assert_close("mul_into", &vals(&o), &want, 1e-14, 1e-14, rnd.seed);
        let mut o = poisoned::<f64>(n);
        elementwise::scale_into(&buf(&a), -0.5, out(&mut o, false));
        let want: Vec<f64> = a.iter().map(|&x| -0.5 * x).collect();
        assert_close("scale_into", &vals(&o), &want, 0.0, 0.0, rnd.seed);
        let mut o = poisoned::<f64>(n);
        transpose::transpose(rows, cols, &buf(&a), out(&mut o, false));
        let want: Vec<f64> = (0..n).map(|i| a[(i % rows) * cols + i / rows]).collect();
        assert_close("transpose", &vals(&o), &want, 0.0, 0.0, rnd.seed);
        let mut o = Buffer::<f64>::zeros(&Device::Cpu, n);
        elementwise::fill(&mut o, 2.5);
        assert!(vals(&o).iter().all(|&v| v == 2.5));
    }
}
