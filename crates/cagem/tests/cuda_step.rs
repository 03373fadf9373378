//! One whole training step on CUDA against the CPU: the same model (initialised on the host),
//! the same batches and noise streams give the same loss and the same gradient for every
//! parameter, within tolerances set by precision; likewise the importance-weighted bound.
//! Skips (printing why) without a GPU; fails under CAGEM_REQUIRE_GPU=1.

mod step;

use cagem::ModelConfig;
use cagem::model::objective::LossWeights;
use cagem::model::{Cagem, NoiseStreams};
use cagem_autodiff::{Device, Graph, Real, Tensor};
use cagem_kernels::device::gpu_for_test as gpu_or_skip;
use cagem_kernels::rng::HostRng;
use step::{loss_and_grads, rel_l2};

struct StepResult {
    loss: f64,
    grads: Vec<(String, Vec<f64>)>,
    iw: Vec<f64>,
}

fn run_step<T: Real>(cfg: &ModelConfig, device: &Device, xu: &[f64], xl: &[f64], yl: &[u32]) -> StepResult {
    let mut model = Cagem::<T>::new(cfg.clone(), 11, device);
    let bu = xu.len() / cfg.x_dim;
    let mut g = Graph::<T>::new(device);
    let (loss, named) = loss_and_grads(&mut model, &mut g, device, (xu, xl, yl));
    drop(g);
    let mut g = Graph::<T>::new(device);
    let x = g.constant(Tensor::from_f64(device, bu, cfg.x_dim, xu));
    let c = model.iw_chunk(&mut g, x, 7, cagem::model::IwEstimator::SumY, &mut NoiseStreams::new(9));
    let iw = g.value(c.log_sum_w).to_f64_vec();
    StepResult { loss, grads: named, iw }
}

fn compare<T: Real>(gpu: &Device, loss_tol: f64, grad_tol: f64) {
    let cfg = ModelConfig { z1: 8, z2: 4, q_hidden: [96, 48], p_hidden: [48, 96], ..ModelConfig::default() };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut rng = HostRng::new(seed, 0);
    let bits = |n: usize, rng: &mut HostRng| -> Vec<f64> {
        (0..n * cfg.x_dim).map(|_| if rng.next_f64() < 0.13 { 1.0 } else { 0.0 }).collect()
    };
    let (xu, xl) = (bits(64, &mut rng), bits(20, &mut rng));
    let yl: Vec<u32> = (0..20).map(|i| (i % 10) as u32).collect();
    let cpu = run_step::<T>(&cfg, &Device::Cpu, &xu, &xl, &yl);
    let dev = run_step::<T>(&cfg, gpu, &xu, &xl, &yl);
    let rel = (cpu.loss - dev.loss).abs() / cpu.loss.abs();
    assert!(rel <= loss_tol, "{}: loss {} on the CPU, {} on the GPU (seed {seed})", T::NAME, cpu.loss, dev.loss);
    assert_eq!(cpu.grads.len(), dev.grads.len(), "different parameters received gradients");
    for ((name, c), (name2, d)) in cpu.grads.iter().zip(&dev.grads) {
        assert_eq!(name, name2);
        let e = rel_l2(d, c);
        assert!(e <= grad_tol, "{}: gradient of {name} differs by {e:.2e} (relative L2, seed {seed})", T::NAME);
    }
    let e = rel_l2(&dev.iw, &cpu.iw);
    assert!(e <= loss_tol, "{}: IW bound differs by {e:.2e} (seed {seed})", T::NAME);
}

#[test]
fn training_step_on_cuda_matches_the_cpu() {
    let Some(gpu) = gpu_or_skip("training_step_on_cuda_matches_the_cpu") else { return };
    compare::<f64>(&gpu, 1e-10, 1e-8);
    compare::<f32>(&gpu, 1e-5, 2e-3);
}

/// `train_step` gathers its scalars on the device and reads them in one transfer once backward is
/// queued: on the GPU they must match the CPU's, and the parameters after the step too.
fn compare_train_step<T: Real>(gpu: &Device, tol: f64, param_tol: f64) {
    let cfg = ModelConfig { z1: 8, z2: 4, q_hidden: [96, 48], p_hidden: [48, 96], ..ModelConfig::default() };
    let mut rng = HostRng::new(17, 0);
    let bits: Vec<f64> = (0..84 * cfg.x_dim).map(|_| if rng.next_f64() < 0.13 { 1.0 } else { 0.0 }).collect();
    let yl: Vec<u32> = (0..20).map(|i| (i % 10) as u32).collect();
    let run = |device: &Device| {
        let mut model = Cagem::<T>::new(cfg.clone(), 11, device);
        let mut adam = cagem_autodiff::Adam::new();
        let xu = Tensor::from_f64(device, 64, cfg.x_dim, &bits[..64 * cfg.x_dim]);
        let xl = Tensor::from_f64(device, 20, cfg.x_dim, &bits[64 * cfg.x_dim..]);
        let mut noise = NoiseStreams::new(5);
        let s = cagem::train::train_step(
            &mut model,
            &mut adam,
            &xu,
            Some((&xl, &yl)),
            LossWeights::paper(0.6, 3.0),
            1e-4,
            &mut noise,
        )
        .expect("step");
        let params: Vec<f64> = model.store.iter().flat_map(|(_, e)| e.value.to_f64_vec()).collect();
        (s, params)
    };
    let (c, cp) = run(&Device::Cpu);
    let (g, gp) = run(gpu);
    let close = |a: f64, b: f64| (a - b).abs() <= tol * a.abs().max(1.0);
    for (what, a, b) in [("loss", c.loss, g.loss), ("elbo", c.elbo, g.elbo), ("recon", c.recon, g.recon)] {
        assert!(close(a, b), "{}: {what} {a} on the CPU, {b} on the GPU", T::NAME);
    }
    assert!(close(c.neg_kl, g.neg_kl), "{}: neg_kl {} vs {}", T::NAME, c.neg_kl, g.neg_kl);
    let (Some(chp), Some(ghp), Some(chq), Some(ghq)) = (c.hp, g.hp, c.hq, g.hq) else {
        panic!("{}: H_p/H_q missing: {c:?} vs {g:?}", T::NAME)
    };
    assert!(close(chp, ghp) && close(chq, ghq), "{}: H_p, H_q {chp}, {chq} vs {ghp}, {ghq}", T::NAME);
    let e = rel_l2(&gp, &cp);
    assert!(e <= param_tol, "{}: parameters after the step differ by {e:.2e} (relative L2)", T::NAME);
}

#[test]
fn train_step_scalars_on_cuda_match_the_cpu() {
    let Some(gpu) = gpu_or_skip("train_step_scalars_on_cuda_match_the_cpu") else { return };
    compare_train_step::<f64>(&gpu, 1e-9, 1e-9);
    compare_train_step::<f32>(&gpu, 1e-4, 1e-4);
}
