//! The importance-weighted bound: with the same draws it is never below the ELBO (per image),
//! and its two estimators (y summed, y sampled) agree when k is large.

mod tiny;

use cagem::deviation::ObjectiveDeviations;
use cagem::model::{Cagem, IwEstimator, NoiseStreams};
use cagem::nn::BnUse;
use cagem_autodiff::{Axis, Device, Graph, Tensor};
use cagem_kernels::rng::HostRng;
use tiny::{binary_batch, tiny_config};

#[test]
fn iw_one_sample_bounds_the_elbo_from_above_per_image() {
    // With the same z1 and z2 draws, log Σ_y p/(q(z1) q(z2_y)) ≥ Σ_y q(y)·log(p/(q(y) q(z1) q(z2_y)))
    // by Jensen, exactly, for every image.
    let mut rng = HostRng::new(12, 0);
    let cfg = tiny_config();
    let mut model = Cagem::<f64>::new(cfg.clone(), 8, &Device::Cpu);
    let x = binary_batch(&mut rng, 7, cfg.x_dim);
    let mut g = Graph::new(&Device::Cpu);
    g.set_grad_enabled(false);
    let xv = g.constant(x.clone());
    let t = model.elbo_terms(&mut g, BnUse::Eval, xv, ObjectiveDeviations::default(), &mut NoiseStreams::new(3));
    let f: Vec<f64> =
        g.value(t.recon).to_f64_vec().iter().zip(g.value(t.neg_kl).to_f64_vec()).map(|(a, b)| a + b).collect();
    let c = model.iw_chunk(&mut g, xv, 1, IwEstimator::SumY, &mut NoiseStreams::new(3));
    let iw = g.value(c.log_sum_w).to_f64_vec();
    for (i, (w, e)) in iw.iter().zip(&f).enumerate() {
        assert!(w >= e && (w - e) < 20.0, "image {i}: IW-1 {w} < ELBO {e}");
    }
}

/// log (1/k) Σ w over `chunks` chunks of `per` samples, combined by logsumexp.
fn iw_bound(model: &mut Cagem<f64>, x: &Tensor<f64>, estimator: IwEstimator, chunks: usize, per: usize) -> Vec<f64> {
    let mut noise = NoiseStreams::new(21);
    let mut g = Graph::new(&Device::Cpu);
    let xv = g.constant(x.clone());
    let parts: Vec<_> = (0..chunks).map(|_| model.iw_chunk(&mut g, xv, per, estimator, &mut noise).log_sum_w).collect();
    let n = x.rows();
    let stacked: Vec<f64> = parts.iter().flat_map(|&p| g.value(p).to_f64_vec()).collect();
    let s = g.constant(Tensor::from_f64(&Device::Cpu, chunks, n, &stacked));
    let total = g.logsumexp(s, Axis::DownColumn);
    let k = (chunks * per) as f64;
    g.value(total).to_f64_vec().iter().map(|l| l - k.ln()).collect()
}

#[test]
fn summed_and_sampled_estimators_agree_for_large_k() {
    let mut rng = HostRng::new(31, 0);
    let cfg = tiny_config();
    let mut model = Cagem::<f64>::new(cfg.clone(), 2, &Device::Cpu);
    let x = binary_batch(&mut rng, 4, cfg.x_dim);
    let sum = iw_bound(&mut model, &x, IwEstimator::SumY, 8, 500);
    let sample = iw_bound(&mut model, &x, IwEstimator::SampleY, 8, 500);
    for (i, (a, b)) in sum.iter().zip(&sample).enumerate() {
        assert!(a.is_finite() && b.is_finite());
        assert!((a - b).abs() < 0.05, "image {i}: IW-4000 with y summed {a}, with y sampled {b}");
    }
}
