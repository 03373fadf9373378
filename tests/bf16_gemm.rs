//! bf16 matrix products (oneDNN's matmul, loaded at run time) against an f64 reference.
//! Skips, saying why, where oneDNN or a bf16-capable CPU is missing; fails instead under
//! CAGEM_REQUIRE_BF16=1 (CI installs the library with scripts/install-bf16.sh).

mod common;

use cagem_kernels::bf16::{self, Bf16Buf};
use cagem_kernels::gemm::{GemmShape, Trans, gemm_bf16, runs_transposed};
use cagem_kernels::onednn;
use common::Gen;

/// op(X)[i, j] of X stored row-major with op(X) of shape rows × cols.
fn at(x: &[f64], t: Trans, rows: usize, cols: usize, i: usize, j: usize) -> f64 {
    match t {
        Trans::N => x[i * cols + j],
        Trans::T => x[j * rows + i],
    }
}

/// C = op(A)·op(B) in f64, and Σ_p |a||b| per element (the scale of the rounding error).
fn reference(s: GemmShape, a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut mag) = (vec![0.0; s.m * s.n], vec![0.0; s.m * s.n]);
    for i in 0..s.m {
        for j in 0..s.n {
            for p in 0..s.k {
                let (x, y) = (at(a, s.ta, s.m, s.k, i, p), at(b, s.tb, s.k, s.n, p, j));
                c[i * s.n + j] += x * y;
                mag[i * s.n + j] += (x * y).abs();
            }
        }
    }
    (c, mag)
}

fn rounded(v: &[f64]) -> (Bf16Buf, Vec<f64>) {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let b = Bf16Buf::from_f32(&f);
    let back = b.to_f32_vec().into_iter().map(f64::from).collect();
    (b, back)
}

fn check(what: &str, got: &[f32], want: &[f64], bound: &[f64], seed: u64) {
    for (i, ((&g, &w), &e)) in got.iter().zip(want).zip(bound).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= e, "{what}: element {i}: got {g}, want {w}, |err| {err:e} > bound {e:e} (seed {seed})");
    }
}

#[test]
fn bf16_gemm_every_transpose_against_f64() {
    if onednn::for_test("bf16_gemm_every_transpose_against_f64").is_none() {
        return;
    }
    let mut rnd = Gen::new();
    // Narrow Aᵀ·B products run as (Bᵀ·A)ᵀ (gemm::runs_transposed): 129×5 and 1031×10 here.
    assert!(runs_transposed(GemmShape::new(1031, 10, 213, Trans::T, Trans::N)));
    // Products of ≥ 2 MFLOP are cut into blocks of rows, one per thread (onednn::matmul): the
    // larger shapes here are cut, evenly or not, by pools of 2 and 3 threads; 1 thread runs whole.
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| {
            for (m, n, k) in [(37, 53, 29), (1, 7, 300), (64, 33, 1000), (129, 5, 2), (301, 67, 129), (1031, 10, 213)] {
                for ta in [Trans::N, Trans::T] {
                    for tb in [Trans::N, Trans::T] {
                        check_product(&mut rnd, GemmShape::new(m, n, k, ta, tb), threads);
                    }
                }
            }
        });
    }
}

/// One product against f64, plain and accumulating onto C.
fn check_product(rnd: &mut Gen, s: GemmShape, threads: usize) {
    let (m, n, k) = (s.m, s.n, s.k);
    let (a, b) = (rnd.normal(m * k, 1.0), rnd.normal(k * n, 1.0));
    let (ab, a_r) = rounded(&a);
    let (bb, b_r) = rounded(&b);
    let c0 = rnd.normal(m * n, 1.0);
    // Against the exact product of the original inputs: each input rounded to bf16
    // (relative error ≤ 2⁻⁸) gives |err| ≤ (2·2⁻⁸ + 2⁻¹⁶)·Σ|a||b|, plus f32
    // accumulation (≤ k·2⁻²⁴·Σ|a||b|, doubled for slack) and the output's rounding.
    let (want, mag) = reference(s, &a, &b);
    let f32_acc = |k: usize| (k as f64 + 2.0) * 2f64.powi(-23);
    let bound: Vec<f64> = mag
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (2.0 * 2f64.powi(-8) + 2f64.powi(-16) + f32_acc(k)) * g + 2f64.powi(-23) * w.abs())
        .collect();
    let mut c = vec![f32::NAN; m * n];
    gemm_bf16(s, &ab, &bb, &mut c, false);
    check(&format!("{s:?} ({threads} threads) vs exact"), &c, &want, &bound, rnd.seed);
    // Against the exact product of the rounded inputs: only f32 accumulation remains,
    // which catches a wrong layout that the looser bound might let through.
    let (want_r, mag_r) = reference(s, &a_r, &b_r);
    let tight: Vec<f64> = mag_r.iter().map(|&g| f32_acc(k) * g + 1e-30).collect();
    check(&format!("{s:?} ({threads} threads) vs rounded inputs"), &c, &want_r, &tight, rnd.seed);
    // accumulate = true adds onto C.
    let mut c: Vec<f32> = c0.iter().map(|&x| x as f32).collect();
    gemm_bf16(s, &ab, &bb, &mut c, true);
    let want_acc: Vec<f64> = want_r.iter().zip(&c0).map(|(w, c)| w + (*c as f32) as f64).collect();
    let tight_acc: Vec<f64> = mag_r.iter().zip(&c0).map(|(&g, &c)| f32_acc(k) * (g + c.abs()) + 1e-30).collect();
    check(&format!("{s:?} ({threads} threads) accumulate"), &c, &want_acc, &tight_acc, rnd.seed);
}

#[test]
fn bf16_rounding_is_to_nearest_even() {
    let cases: [(f32, u16); 6] = [
        (1.0, 0x3f80),
        (f32::from_bits(0x3f80_8000), 0x3f80), // a tie: to the even 0x3f80
        (f32::from_bits(0x3f81_8000), 0x3f82), // a tie: to the even 0x3f82
        (f32::from_bits(0x3f80_8001), 0x3f81), // above the tie: up
        (-2.5, 0xc020),
        (f32::INFINITY, 0x7f80),
    ];
    for (x, want) in cases {
        assert_eq!(bf16::from_f32(x), want, "{x:e}");
        let mut out = [0u16; 1];
        bf16::convert(&[x], &mut out);
        assert_eq!(out[0], want, "convert({x:e})");
    }
    assert!(bf16::to_f32(bf16::from_f32(f32::NAN)).is_nan());
    let mut out = [0u16; 1];
    bf16::convert(&[f32::NAN], &mut out);
    assert!(bf16::to_f32(out[0]).is_nan());
    // The vectorised loop agrees with the scalar rounding on many values (and long inputs).
    let mut rnd = Gen::new();
    let v: Vec<f32> = rnd.normal(200_003, 3.0).into_iter().map(|x| x as f32).collect();
    let mut out = vec![0u16; v.len()];
    bf16::convert(&v, &mut out);
    for (x, h) in v.iter().zip(&out) {
        assert_eq!(*h, bf16::from_f32(*x));
    }
}

/// Batch norm's fused bf16 outputs (forward y, backward dx) are exactly the rounded f32 outputs.
#[test]
fn batchnorm_writes_its_outputs_rounded_too() {
    use cagem_kernels::batchnorm::{self, BnAffine, BnGrads, BnOutput, BnStats};
    use cagem_kernels::{Buffer, Device, GradOut};
    let mut rnd = Gen::new();
    let (rows, cols) = (301, 67);
    let dev = Device::Cpu;
    let b = |v: Vec<f64>| Buffer::<f32>::from_slice(&dev, &v.iter().map(|&x| x as f32).collect::<Vec<_>>());
    let (x, g) = (b(rnd.normal(rows * cols, 2.0)), b(rnd.normal(rows * cols, 1.0)));
    let (gamma, beta) = (b(rnd.normal(cols, 1.0)), b(rnd.normal(cols, 1.0)));
    for relu in [false, true] {
        let affine = || BnAffine { gamma: &gamma, beta: &beta, eps: 1e-5, relu };
        let (mut y, mut mean, mut rstd) =
            (Buffer::uninit(&dev, rows * cols), Buffer::uninit(&dev, cols), Buffer::uninit(&dev, cols));
        let mut y16 = Bf16Buf::uninit(rows * cols);
        let out = BnOutput::WithBf16(&mut y, &mut y16);
        batchnorm::forward_train(rows, cols, &x, None, affine(), out, &mut mean, &mut rstd, None);
        let want: Vec<u16> = y.host().iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(&y16[..], &want[..], "forward, relu {relu}");
        let (mut ye, mut ye16) = (Buffer::uninit(&dev, rows * cols), Bf16Buf::uninit(rows * cols));
        let var = Buffer::from_slice(&dev, &vec![0.7f32; cols]);
        batchnorm::forward_eval(rows, cols, &x, affine(), &mean, &var, BnOutput::WithBf16(&mut ye, &mut ye16));
        let want: Vec<u16> = ye.host().iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(&ye16[..], &want[..], "forward with running statistics, relu {relu}");
        let mut dx = Buffer::uninit(&dev, rows * cols);
        let mut dx16 = Bf16Buf::uninit(rows * cols);
        let stats = BnStats::Batch { mean: &mean, rstd: &rstd };
        let grads = BnGrads { dx: Some(GradOut::new(&mut dx, false)), dgamma: None, dbeta: None };
        batchnorm::backward(rows, cols, &g, &x, None, affine(), stats, grads, Some(&mut dx16));
        let want: Vec<u16> = dx.host().iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(&dx16[..], &want[..], "backward, relu {relu}");

        // The bf16-only variants write the same bf16 values, and the same statistics and dγ, dβ.
        let mut only16 = Bf16Buf::uninit(rows * cols);
        let (mut mean2, mut rstd2) = (Buffer::uninit(&dev, cols), Buffer::uninit(&dev, cols));
        let out = BnOutput::Bf16Only(&mut only16);
        batchnorm::forward_train(rows, cols, &x, None, affine(), out, &mut mean2, &mut rstd2, None);
        assert_eq!(&only16[..], &y16[..], "bf16-only forward, relu {relu}");
        assert_eq!((mean2.host(), rstd2.host()), (mean.host(), rstd.host()), "bf16-only forward statistics");
        let col = || Buffer::<f32>::uninit(&dev, cols);
        let (mut dg, mut db, mut dg2, mut db2) = (col(), col(), col(), col());
        let stats = || BnStats::Batch { mean: &mean, rstd: &rstd };
        let grads =
            BnGrads { dx: None, dgamma: Some(GradOut::new(&mut dg, false)), dbeta: Some(GradOut::new(&mut db, false)) };
        batchnorm::backward(rows, cols, &g, &x, None, affine(), stats(), grads, Some(&mut only16));
        assert_eq!(&only16[..], &dx16[..], "bf16-only dx, relu {relu}");
        let grads = BnGrads {
            dx: Some(GradOut::new(&mut dx, false)),
            dgamma: Some(GradOut::new(&mut dg2, false)),
            dbeta: Some(GradOut::new(&mut db2, false)),
        };
        batchnorm::backward(rows, cols, &g, &x, None, affine(), stats(), grads, None);
        assert_eq!((dg.host(), db.host()), (dg2.host(), db2.host()), "dγ and dβ beside a bf16-only dx");
        // Without dγ and dβ asked for, the bf16-only dx still gets its batch sums.
        let grads = BnGrads { dx: None, dgamma: None, dbeta: None };
        batchnorm::backward(rows, cols, &g, &x, None, affine(), stats(), grads, Some(&mut only16));
        assert_eq!(&only16[..], &dx16[..], "bf16-only dx alone, relu {relu}");
    }
}

/// Adam's fused bf16 copy of the updated parameters is exactly their rounding.
#[test]
fn adam_writes_the_updated_weights_rounded_too() {
    use cagem_kernels::adam::{self, AdamStep};
    use cagem_kernels::{Buffer, Device};
    let mut rnd = Gen::new();
    let n = 300_007;
    let b = |v: Vec<f64>| Buffer::<f32>::from_slice(&Device::Cpu, &v.iter().map(|&x| x as f32).collect::<Vec<_>>());
    let (mut p, g, mut m, mut v) =
        (b(rnd.normal(n, 1.0)), b(rnd.normal(n, 1.0)), b(rnd.normal(n, 0.1)), b(rnd.uniform(n)));
    let mut p16 = Bf16Buf::uninit(n);
    let h = AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 3, grad_scale: 1.0, clip: f64::INFINITY };
    adam::step_bf16(h, &mut p, &g, &mut m, &mut v, Some(&mut p16));
    let want: Vec<u16> = p.host().iter().map(|&x| bf16::from_f32(x)).collect();
    assert_eq!(&p16[..], &want[..]);
}

/// The gather and fold adjoints read a bf16-only gradient exactly as the f32 kernels read the
/// same values widened (bf16 → f32 is exact; the sums run in the same order).
#[test]
fn bf16_gradient_reductions_match_the_f32_kernels() {
    use cagem_kernels::broadcast::{fold_rows, fold_rows_bf16};
    use cagem_kernels::gather::{scatter_add_rows, scatter_add_rows_bf16};
    use cagem_kernels::{Buffer, Device, GradOut, Indices};
    let mut rnd = Gen::new();
    let dev = Device::Cpu;
    let (rows, cols, k) = (1000, 67, 10);
    let g16 = Bf16Buf::from_f32(&rnd.normal(rows * cols, 1.0).iter().map(|&v| v as f32).collect::<Vec<_>>());
    let g = Buffer::<f32>::from_slice(&dev, &g16.to_f32_vec());
    let bits = |b: &Buffer<f32>| b.host().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let idx: Vec<u32> = (0..rows).map(|r| (r * 7 % k) as u32).collect();
    let idx = Indices::new(&dev, &idx);
    for acc in [false, true] {
        let start = Buffer::<f32>::from_slice(&dev, &vec![0.25; k * cols]);
        let (mut a, mut b) = (start.duplicate(), start);
        scatter_add_rows(cols, &g, &idx, GradOut::new(&mut a, acc));
        scatter_add_rows_bf16(cols, &g16, &idx, GradOut::new(&mut b, acc));
        assert_eq!(bits(&a), bits(&b), "scatter_add_rows, accumulate {acc}");
        for period in [1, 100, 500] {
            let start = Buffer::<f32>::from_slice(&dev, &vec![0.5; period * cols]);
            let (mut a, mut b) = (start.duplicate(), start);
            fold_rows(cols, &g, GradOut::new(&mut a, acc));
            fold_rows_bf16(cols, &g16, GradOut::new(&mut b, acc));
            assert_eq!(bits(&a), bits(&b), "fold_rows, period {period}, accumulate {acc}");
        }
    }
}
