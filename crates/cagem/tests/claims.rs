//! Tests of what the README claims: the IW estimator against an exactly enumerable model,
//! `evaluate()` chunking, KL(z2) and active units against a hand computation, the labelled
//! pass and batch-norm statistics, the schedules at their edges, and the log-variance clamp.

mod tiny;

use cagem::TrainConfig;
use cagem::data::{Dataset, DeviceData};
use cagem::eval::{EvalOptions, evaluate};
use cagem::model::objective::{Labelled, LossWeights, semi_supervised_loss};
use cagem::model::{Cagem, IwEstimator, NoiseStreams};
use cagem_autodiff::{Device, Graph, Tensor};
use cagem_kernels::gaussian::{LN_2PI, LOGVAR_MAX, LOGVAR_MIN};
use cagem_kernels::rng::HostRng;
use tiny::{binary_batch, tiny_config};

/// Per image, the mean importance weight of each of `chunks` chunks of `per` samples (each an
/// unbiased estimate of p(x)).
fn chunk_means(
    model: &mut Cagem<f64>,
    x: &Tensor<f64>,
    est: IwEstimator,
    chunks: usize,
    per: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let mut noise = NoiseStreams::new(seed);
    let n = x.rows();
    let mut out = vec![Vec::new(); n];
    for _ in 0..chunks {
        let mut g = Graph::new(&Device::Cpu);
        g.set_grad_enabled(false);
        let xv = g.constant(x.clone());
        let c = model.iw_chunk(&mut g, xv, per, est, &mut noise);
        for (i, l) in g.value(c.log_sum_w).to_f64_vec().iter().enumerate() {
            out[i].push((l - (per as f64).ln()).exp());
        }
    }
    out
}

/// Σ over all 64 binary 2×3 images of the estimated p(x) is 1 within its standard error, for
/// both estimators; and E[IW-1] ≤ E[IW-k] (the bound tightens with k).
#[test]
fn iw_estimates_of_an_enumerable_model_sum_to_one() {
    let cfg = tiny_config();
    assert_eq!(cfg.x_dim, 6);
    let mut model = Cagem::<f64>::new(cfg.clone(), 4, &Device::Cpu);
    let all: Vec<f64> = (0..64u32).flat_map(|v| (0..6).map(move |b| ((v >> b) & 1) as f64)).collect();
    let x = Tensor::from_f64(&Device::Cpu, 64, 6, &all);
    for (est, seed) in [(IwEstimator::SumY, 1), (IwEstimator::SampleY, 2)] {
        let (chunks, per) = (40, 100);
        let means = chunk_means(&mut model, &x, est, chunks, per, seed);
        let (mut total, mut var) = (0.0, 0.0);
        for m in &means {
            let mean = m.iter().sum::<f64>() / chunks as f64;
            let v = m.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (chunks - 1) as f64;
            total += mean;
            var += v / chunks as f64;
        }
        let se = var.sqrt();
        assert!(se > 0.0 && se < 0.05, "{est:?}: standard error {se}");
        assert!((total - 1.0).abs() < 4.0 * se, "{est:?}: Σ_x p̂(x) = {total} ± {se}, expected 1");

        // E[IW-1] ≤ E[IW-k]: IW-1 averaged over 400 draws against IW-100 averaged over 4.
        let iw1 = chunk_means(&mut model, &x, est, 400, 1, seed + 10);
        let iwk = chunk_means(&mut model, &x, est, 4, 100, seed + 20);
        let mean_log =
            |m: &[Vec<f64>]| m.iter().flatten().map(|w| w.ln()).sum::<f64>() / m.iter().flatten().count() as f64;
        let (a, b) = (mean_log(&iw1), mean_log(&iwk));
        assert!(a < b, "{est:?}: mean IW-1 {a} is not below mean IW-100 {b}");
    }
}

/// A data set of tiny 2×3 binary images (pixels 0 or 255), classes cycling over 0..3.
fn tiny_data(n_test: usize, seed: u64) -> Dataset {
    let mut rng = HostRng::new(seed, 0);
    let mut img = |n: usize| -> Vec<u8> { (0..n * 6).map(|_| if rng.next_f64() < 0.4 { 255 } else { 0 }).collect() };
    let (train_images, test_images) = (img(12), img(n_test));
    Dataset {
        name: "tiny".into(),
        provenance: "test".into(),
        height: 2,
        width: 3,
        n_classes: 3,
        train_images,
        train_labels: (0..12).map(|i| i % 3).collect(),
        test_images,
        test_labels: (0..n_test as u32).map(|i| i % 3).collect(),
        train_values: None,
        test_values: None,
        partial_labels: false,
    }
}

/// chunk_rows 1 (one sample of one image per pass) and 1000 (all at once) estimate the same
/// IW-50 bound: the chunks are combined by logsumexp, not by averaging chunk estimates (which
/// would give about IW-1 for chunk_rows 1).
#[test]
fn evaluate_chunks_agree_within_monte_carlo_error() {
    let data = tiny_data(20, 5);
    let dev = Device::Cpu;
    let dd = DeviceData::<f64>::new(&dev, &data);
    let mut model = Cagem::<f64>::new(tiny_config(), 9, &dev);
    // A sharper decoder widens the gap between IW-1 and IW-50 (what the check below needs).
    let id = model.store.find("p_x.logits.w").unwrap();
    let w = model.store.get(id);
    let (r, c, v) = (w.rows(), w.cols(), w.to_f64_vec().iter().map(|x| 6.0 * x).collect::<Vec<_>>());
    *model.store.get_mut(id) = Tensor::from_f64(&dev, r, c, &v);
    let mut run = |chunk_rows: usize, seed: u64| {
        let opts = EvalOptions { k: 50, chunk_rows, seed, ..EvalOptions::default() };
        evaluate(&mut model, &dd, &data.test_labels, &opts, &mut |_, _| {}).log_likelihood
    };
    let a: Vec<f64> = (0..5).map(|s| run(1, s)).collect();
    let b: Vec<f64> = (0..5).map(|s| run(1000, 100 + s)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var = |v: &[f64]| {
        let m = mean(v);
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    };
    let se = ((var(&a) + var(&b)) / 5.0).sqrt();
    let (ma, mb) = (mean(&a), mean(&b));
    assert!((ma - mb).abs() < 4.0 * se + 1e-9, "chunk_rows 1: {ma}, 1000: {mb}, standard error {se}");
    // Averaging chunk estimates instead would give E[IW-1] for chunk_rows 1, below by more than
    // the tolerance above: this test can fail.
    let iw1: Vec<f64> = (0..40).map(|s| run_k(&mut model, &dd, &data, 1, 1000 + s)).collect();
    let (m1, se1) = (mean(&iw1), (var(&iw1) / 40.0).sqrt());
    eprintln!("IW-50 {ma} {mb} (se {se}), IW-1 {m1} (se {se1})");
    assert!(ma - m1 > 4.0 * se + 3.0 * se1, "IW-50 {ma} is not clearly above IW-1 {m1} (se {se}, {se1})");
}

fn run_k(model: &mut Cagem<f64>, dd: &DeviceData<f64>, data: &Dataset, k: usize, seed: u64) -> f64 {
    let opts = EvalOptions { k, chunk_rows: 1000, seed, ..EvalOptions::default() };
    evaluate(model, dd, &data.test_labels, &opts, &mut |_, _| {}).log_likelihood
}

fn set(model: &mut Cagem<f64>, name: &str, f: impl Fn(usize, usize) -> f64) {
    let id = model.store.find(name).unwrap_or_else(|| panic!("no parameter {name}"));
    let (r, c) = model.store.get(id).shape();
    let v: Vec<f64> = (0..r * c).map(|i| f(i / c, i % c)).collect();
    *model.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, r, c, &v);
}

/// With q(z2|·) made constant (mean c, log-variance l), E_q(y) KL[q(z2) ‖ N(0, I)] is
/// ½ Σ_d (c_d² + e^{l_d} − 1 − l_d) for every image, and no unit of z2 is active; one unit of
/// z1 and one of z2 made to follow the data are the only active ones.
#[test]
fn kl_and_active_units_match_a_hand_computation() {
    let data = tiny_data(30, 6);
    let dev = Device::Cpu;
    let dd = DeviceData::<f64>::new(&dev, &data);
    let mut model = Cagem::<f64>::new(tiny_config(), 3, &dev);
    let (c, l) = ([0.5, -1.25], [0.3, -0.7]);
    set(&mut model, "q_z2.mu.w", |_, _| 0.0);
    set(&mut model, "q_z2.mu.b", |_, j| c[j]);
    set(&mut model, "q_z2.logvar.w", |_, _| 0.0);
    set(&mut model, "q_z2.logvar.b", |_, j| l[j]);
    set(&mut model, "q_z1.mu.w", |_, _| 0.0);
    let opts = EvalOptions { k: 2, ..EvalOptions::default() };
    let r = evaluate(&mut model, &dd, &data.test_labels, &opts, &mut |_, _| {});
    let want: f64 = (0..2).map(|d| 0.5 * (c[d] * c[d] + f64::exp(l[d]) - 1.0 - l[d])).sum();
    assert!((r.kl_z2 - want).abs() < 1e-12, "KL(z2) {} vs {want}", r.kl_z2);
    assert_eq!((r.active_units_z1, r.active_units_z2), (0, 0));

    // Unit 0 of z1 and unit 1 of z2 follow the hidden activations with a large weight.
    set(&mut model, "q_z1.mu.w", |_, j| if j == 0 { 5.0 } else { 0.0 });
    set(&mut model, "q_z2.mu.w", |_, j| if j == 1 { 5.0 } else { 0.0 });
    let r = evaluate(&mut model, &dd, &data.test_labels, &opts, &mut |_, _| {});
    assert_eq!((r.active_units_z1, r.active_units_z2), (1, 1));
}

/// The labelled pass normalises with its own batch statistics and leaves every running
/// statistic as the unlabelled pass left it.
#[test]
fn the_labelled_pass_leaves_batch_norm_statistics_untouched() {
    let cfg = tiny_config();
    let mut rng = HostRng::new(8, 0);
    let xu = binary_batch(&mut rng, 9, cfg.x_dim);
    let xl = binary_batch(&mut rng, 6, cfg.x_dim);
    let labels = [0u32, 1, 2, 0, 1, 2];
    let stats = |with_labels: bool| -> Vec<Vec<u64>> {
        let mut model = Cagem::<f64>::new(cfg.clone(), 1, &Device::Cpu);
        let mut g = Graph::new(&Device::Cpu);
        let (u, l) = (g.constant(xu.clone()), g.constant(xl.clone()));
        let lab = with_labels.then_some(Labelled { x: l, y: &labels });
        let out =
            semi_supervised_loss(&mut model, &mut g, u, lab, LossWeights::paper(0.5, 3.0), &mut NoiseStreams::new(4));
        assert_eq!(out.hp.is_some(), with_labels);
        drop(g);
        model
            .store
            .iter()
            .filter(|(_, e)| !e.trainable)
            .map(|(_, e)| e.value.to_f64_vec().iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let fresh: Vec<Vec<u64>> = Cagem::<f64>::new(cfg.clone(), 1, &Device::Cpu)
        .store
        .iter()
        .filter(|(_, e)| !e.trainable)
        .map(|(_, e)| e.value.to_f64_vec().iter().map(|v| v.to_bits()).collect())
        .collect();
    let (without, with) = (stats(false), stats(true));
    assert!(!fresh.is_empty());
    assert_ne!(without, fresh, "the unlabelled pass did not update the running statistics");
    assert_eq!(with, without, "the labelled pass changed a running statistic");
}

#[test]
fn schedules_at_their_edges() {
    let t = TrainConfig::default();
    assert_eq!(t.lr_at(0), 1e-3);
    assert_eq!(t.lr_at(49), 1e-3);
    assert_eq!(t.lr_at(50), 1e-3 * 0.75);
    assert_eq!(t.lr_at(99), 1e-3 * 0.75);
    assert_eq!(t.lr_at(100), 1e-3 * 0.75 * 0.75);
    // The last epoch of the default 1000: 0.75^19 (the README's "≈ 4.2e-6").
    let last = t.lr_at(999);
    assert!((last - 4.228e-6).abs() < 1e-9, "{last}");
    // A resumed --lr replaces the base; the decay keeps its place.
    assert_eq!(TrainConfig { lr: 5e-4, ..t.clone() }.lr_at(120), 5e-4 * 0.75 * 0.75);
    assert_eq!(TrainConfig { lr_decay_every: 0, ..t.clone() }.lr_at(3), 1e-3 * 0.75f64.powi(3));

    assert_eq!(t.temperature_at(0.0), 0.0);
    assert_eq!(t.temperature_at(50.0), 0.5);
    assert_eq!(t.temperature_at(100.0), 1.0);
    assert_eq!(t.temperature_at(250.0), 1.0);
    assert_eq!(TrainConfig { warmup: 0.0, ..t.clone() }.temperature_at(0.0), 1.0);
    assert_eq!(TrainConfig { warmup: 1.0, ..t.clone() }.temperature_at(0.25), 0.25);

    // α = β(N_u + N_l)/N_l; none without labels.
    assert!((t.alpha(60_000) - 0.1 * 60_100.0 / 100.0).abs() < 1e-12);
    assert_eq!(TrainConfig { labels: 0, ..t.clone() }.alpha(60_000), 0.0);
    assert!((TrainConfig { labels: 1, ..t }.alpha(1) - 0.2).abs() < 1e-15);
}

/// The Gaussian log-density uses log σ² clamped to [−30, 30]: the forward pass equals the
/// formula at the clamped value, and the gradient with respect to log σ² is exactly zero outside.
#[test]
fn log_variance_clamp_forward_and_gradient() {
    let dev = Device::Cpu;
    let lvs = [-45.0, -30.5, -29.0, -1.0, 0.0, 2.5, 29.5, 30.25, 80.0];
    let n = lvs.len();
    let z: Vec<f64> = (0..n).map(|i| 0.3 * i as f64 - 1.0).collect();
    let mu: Vec<f64> = (0..n).map(|i| 0.1 * i as f64).collect();
    let mut g = Graph::<f64>::new(&dev);
    let (zv, muv) = (g.leaf(Tensor::from_f64(&dev, n, 1, &z), true), g.leaf(Tensor::from_f64(&dev, n, 1, &mu), true));
    let lv = g.leaf(Tensor::from_f64(&dev, n, 1, &lvs), true);
    let d = g.diag_gaussian_logpdf(zv, muv, lv);
    let got = g.value(d).to_f64_vec();
    let s = g.sum(d);
    let grads = g.backward(s);
    let glv = grads.wrt(lv).unwrap().to_f64_vec();
    for i in 0..n {
        let c = lvs[i].clamp(LOGVAR_MIN, LOGVAR_MAX);
        let want = -0.5 * (LN_2PI + c + (z[i] - mu[i]).powi(2) * (-c).exp());
        assert!((got[i] - want).abs() <= 1e-12 * want.abs().max(1.0), "log σ² {}: {} vs {want}", lvs[i], got[i]);
        let inside = (LOGVAR_MIN..=LOGVAR_MAX).contains(&lvs[i]);
        if inside {
            let dwant = -0.5 * (1.0 - (z[i] - mu[i]).powi(2) * (-c).exp());
            assert!(
                (glv[i] - dwant).abs() <= 1e-12 * dwant.abs().max(1.0),
                "log σ² {}: gradient {} vs {dwant}",
                lvs[i],
                glv[i]
            );
        } else {
            assert_eq!(glv[i], 0.0, "log σ² {} is outside the clamp, yet its gradient is {}", lvs[i], glv[i]);
        }
    }

    // The reparameterisation clamps the same way: z = μ + e^{clamp(λ)/2}·ε, gradient 0 outside.
    let mut g = Graph::<f64>::new(&dev);
    let muv = g.leaf(Tensor::from_f64(&dev, n, 1, &mu), true);
    let lv = g.leaf(Tensor::from_f64(&dev, n, 1, &lvs), true);
    let zr = g.reparameterize(muv, lv, n, NoiseStreams::new(1).take());
    let s = g.sum(zr);
    let grads = g.backward(s);
    let glv = grads.wrt(lv).unwrap().to_f64_vec();
    for i in 0..n {
        if !(LOGVAR_MIN..=LOGVAR_MAX).contains(&lvs[i]) {
            assert_eq!(glv[i], 0.0, "reparameterisation: log σ² {} gradient {}", lvs[i], glv[i]);
        }
    }
}
