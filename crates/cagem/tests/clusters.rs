//! Issue 28: the cluster diagnostics on hand-built models, and what the cluster deviations change
//! and leave alone.
//! - Routing is 1/K for a model whose q(z2|x,y,z1) ignores y, and 1 for one whose z2 mean is a
//!   one-hot of y that p(y|z2) reads back (both built by hand, batch norm at its initial running
//!   statistics, where evaluation's normalisation is ≈ the identity).
//! - labelled-elbo, routing-warmup, --routing-floor, hp-grad-all, --free-bits-y and
//!   --marginal-entropy-y: the tape's
//!   gradient against finite differences of what each computes; the values they must not move
//!   stay bit for bit; off (or at T = 1 for routing-warmup) the loss and every gradient are the
//!   paper's bit for bit.

mod tiny;

use cagem::clusters::cluster_report;
use cagem::deviation::ObjectiveDeviations;
use cagem::model::objective::{Labelled, LossWeights, semi_supervised_loss};
use cagem::model::{Cagem, NoiseStreams};
use cagem::{ModelConfig, data::UNLABELLED};
use cagem_autodiff::{Device, Graph, Tensor};
use cagem_kernels::rng::HostRng;
use tiny::{binary_batch, tiny_config};

const ALPHA: f64 = 2.5;

/// Sets a parameter by name to the values `f(row, col)`.
fn set(model: &mut Cagem<f64>, name: &str, f: impl Fn(usize, usize) -> f64) {
    let id = model.store.find(name).unwrap_or_else(|| panic!("no parameter {name}"));
    let (r, c) = model.store.get(id).shape();
    let v: Vec<f64> = (0..r * c).map(|i| f(i / c, i % c)).collect();
    *model.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, r, c, &v);
}

fn eye(scale: f64) -> impl Fn(usize, usize) -> f64 {
    move |r, c| if r == c { scale } else { 0.0 }
}

/// A model with K = 4 clusters, z2 = 4, every hidden width 6 (≥ K).
fn config() -> ModelConfig {
    ModelConfig { clusters: 4, z2: 4, q_hidden: [6, 6], p_hidden: [6, 6], ..tiny_config() }
}

fn images(n: usize, dim: usize) -> Tensor<f64> {
    binary_batch(&mut HostRng::new(9, 0), n, dim)
}

#[test]
fn routing_is_one_over_k_when_z2_ignores_y() {
    let cfg = config();
    let mut model = Cagem::<f64>::new(cfg.clone(), 1, &Device::Cpu);
    set(&mut model, "q_z2.l0.w_y", |_, _| 0.0);
    let x = images(50, cfg.x_dim);
    let labels: Vec<u32> = (0..50).map(|i| i % 4).collect();
    let r = cluster_report(&mut model, &x, &labels, 20, &mut NoiseStreams::new(1));
    assert_eq!(r.routing, 0.25, "{r:?}");
    assert_eq!(r.routing_sampled, r.routing_sampled.clamp(0.0, 1.0));
}

#[test]
fn routing_is_one_when_the_z2_mean_is_a_one_hot_of_y_that_p_reads() {
    let cfg = config();
    let mut model = Cagem::<f64>::new(cfg.clone(), 1, &Device::Cpu);
    // q(z2|x,y,z1): the first layer sees y alone (unit k ← y = k), the second passes units
    // through, the mean head copies them to z2 = 3·onehot(y), the log-variance is small.
    for part in ["q_z2.l0.w_x", "q_z2.l0.w_z1"] {
        set(&mut model, part, |_, _| 0.0);
    }
    set(&mut model, "q_z2.l0.w_y", eye(3.0));
    set(&mut model, "q_z2.l1.w", eye(1.0));
    set(&mut model, "q_z2.mu.w", eye(1.0));
    set(&mut model, "q_z2.logvar.w", |_, _| 0.0);
    set(&mut model, "q_z2.logvar.b", |_, _| -12.0);
    // p(y|z2): logits = 10·z2 through identities.
    set(&mut model, "p_y.l0.w_z2", eye(1.0));
    set(&mut model, "p_y.l1.w", eye(1.0));
    set(&mut model, "p_y.logits.w", eye(10.0));
    let x = images(40, cfg.x_dim);
    let mut labels: Vec<u32> = (0..40).map(|i| i % 4).collect();
    labels[3] = UNLABELLED;
    let r = cluster_report(&mut model, &x, &labels, 16, &mut NoiseStreams::new(2));
    assert_eq!((r.routing, r.routing_sampled), (1.0, 1.0), "{r:?}");
    // E[z2|x] = 3·q(y|x): the clusters used and the separation are defined and in range.
    assert!(r.clusters_used >= 1 && r.clusters_used <= 4);
    assert!((1.0..=4.0).contains(&r.clusters_perplexity));
    assert!(r.z2_separation.is_some_and(|s| (0.0..=1.0).contains(&s)));
}

struct Batch {
    xu: Tensor<f64>,
    xl: Tensor<f64>,
    yl: Vec<u32>,
}

fn batch() -> Batch {
    let mut rng = HostRng::new(31, 0);
    let d = tiny_config().x_dim;
    Batch { xu: binary_batch(&mut rng, 5, d), xl: binary_batch(&mut rng, 4, d), yl: vec![0, 2, 1, 2] }
}

/// The loss, ELBO, H_p and H_q values and every parameter's gradient (None where none).
type Outcome = ((f64, f64, f64, f64), Vec<Option<Vec<f64>>>);

fn run(model: &mut Cagem<f64>, b: &Batch, w: LossWeights) -> Outcome {
    let mut g = Graph::new(&Device::Cpu);
    let (u, l) = (g.constant(b.xu.clone()), g.constant(b.xl.clone()));
    let mut noise = NoiseStreams::new(3);
    let s = semi_supervised_loss(model, &mut g, u, Some(Labelled { x: l, y: &b.yl }), w, &mut noise);
    let get = |v| g.value(v).scalar();
    let values = (get(s.loss), get(s.elbo), get(s.hp.unwrap()), get(s.hq.unwrap()));
    let grads = g.backward(s.loss);
    (values, model.store.ids().map(|id| grads.param(id).map(|t| t.to_f64_vec())).collect())
}

fn weights(temperature: f64, deviations: ObjectiveDeviations) -> LossWeights {
    LossWeights { temperature, alpha: ALPHA, deviations }
}

/// Asserts two gradients equal to 1e-12 (relative), element by element.
fn assert_close(a: &[f64], p: &[f64], what: &str) {
    assert_eq!(a.len(), p.len(), "{what}");
    for (a, p) in a.iter().zip(p) {
        assert!((a - p).abs() <= 1e-12 * (1.0 + p.abs()), "{what}: {a} vs {p}");
    }
}

/// Names of the parameters whose gradient differs between two outcomes.
fn moved(model: &Cagem<f64>, a: &Outcome, b: &Outcome) -> Vec<String> {
    model.store.ids().filter(|id| a.1[id.0] != b.1[id.0]).map(|id| model.store.entry(id).name.clone()).collect()
}

#[test]
fn deviations_off_are_the_paper_bit_for_bit() {
    let b = batch();
    let mut model = Cagem::<f64>::new(tiny_config(), 4, &Device::Cpu);
    let d = ObjectiveDeviations::default();
    let paper = run(&mut model, &b, weights(0.6, d));
    // A free-bits floor no batch reaches, and routing-warmup at T = 1, change nothing.
    assert_eq!(paper, run(&mut model, &b, weights(0.6, ObjectiveDeviations { free_bits_y: Some(-1e9), ..d })));
    let at_one = run(&mut model, &b, weights(1.0, d));
    assert_eq!(at_one, run(&mut model, &b, weights(1.0, ObjectiveDeviations { routing_warmup: true, ..d })));
    assert_eq!(paper, run(&mut model, &b, weights(0.6, ObjectiveDeviations { log_py_weight: Some(1.0), ..d })));
    // log-py-qy-held has nothing to hold without a reweighting.
    assert_eq!(paper, run(&mut model, &b, weights(0.6, ObjectiveDeviations { log_py_qy_held: true, ..d })));
}

#[test]
fn log_py_qy_held_keeps_the_values_and_gives_q_the_papers_gradient() {
    let b = batch();
    let mut model = Cagem::<f64>::new(tiny_config(), 4, &Device::Cpu);
    let d = ObjectiveDeviations::default();
    for reweighting in [
        ObjectiveDeviations { log_py_weight: Some(3.0), ..d },
        // W·(1 − u) − 1 = 0.5 of the q-weighted sum beside the uniform share (u = 0.5).
        ObjectiveDeviations { log_py_weight: Some(3.0), routing_floor: Some(0.5), ..d },
    ] {
        let paper = run(&mut model, &b, weights(0.6, d));
        let free = run(&mut model, &b, weights(0.6, reweighting));
        let held = run(&mut model, &b, weights(0.6, ObjectiveDeviations { log_py_qy_held: true, ..reweighting }));
        // Holding the weights changes no value, only where the gradient goes.
        assert_eq!(held.0, free.0);
        assert!(moved(&model, &free, &held).iter().any(|n| n.starts_with("q_y")), "nothing held");
        for id in model.store.ids() {
            let name = &model.store.entry(id).name;
            let get = |o: &Outcome| o.1[id.0].clone().unwrap_or_default();
            if name.starts_with("q_y") {
                // q(y|z1,x) is where the weights come from: its gradient is the paper's.
                assert_close(&get(&held), &get(&paper), name);
            } else if name.starts_with("q_z1") && model.store.entry(id).trainable {
                // z1 reaches the loss through q(y|z1,x) as well as through z2: only the first
                // path is held, so q(z1|x)'s gradient is neither the paper's nor the free one's.
                assert_ne!(get(&held), get(&free), "{name}");
            } else {
                // Every other network gets the reweighted objective's gradient (checked against
                // finite differences in new_deviations_match_finite_differences).
                assert_close(&get(&held), &get(&free), name);
            }
        }
    }
}

#[test]
fn each_deviation_moves_what_it_names_and_nothing_else() {
    let b = batch();
    let mut model = Cagem::<f64>::new(tiny_config(), 4, &Device::Cpu);
    let d = ObjectiveDeviations::default();
    let t = 0.6;
    let paper = run(&mut model, &b, weights(t, d));
    let logged = |o: &Outcome| (o.0.1, o.0.2, o.0.3); // ELBO (T = 1), H_p, H_q
    let all = |m: &Cagem<f64>| m.store.iter().filter(|(_, e)| e.trainable).count();

    // labelled-elbo: the loss, and the gradient of every network but q(y|z1,x) (y is observed
    // there); not the logged figures.
    let lab = run(&mut model, &b, weights(t, ObjectiveDeviations { labelled_elbo: true, ..d }));
    assert_eq!(logged(&paper), logged(&lab));
    assert_ne!(paper.0.0, lab.0.0);
    let m = moved(&model, &paper, &lab);
    for net in ["q_z1", "q_z2", "p_y", "p_z1", "p_x"] {
        assert!(m.iter().any(|n| n.starts_with(net)), "labelled-elbo left {net} alone");
    }
    assert!(!m.iter().any(|n| n.starts_with("q_y")), "labelled-elbo moved q(y|z1,x): {m:?}");

    // routing-warmup and the floor: the unlabelled loss; at T = 1 the floor still acts.
    let warm = run(&mut model, &b, weights(t, ObjectiveDeviations { routing_warmup: true, ..d }));
    assert_eq!(logged(&paper), logged(&warm));
    assert_ne!(paper.0.0, warm.0.0);
    let floor = ObjectiveDeviations { routing_floor: Some(0.3), ..d };
    let (paper1, floor1) = (run(&mut model, &b, weights(1.0, d)), run(&mut model, &b, weights(1.0, floor)));
    assert_ne!(paper1.0.0, floor1.0.0);
    // The floor below 1 − T is routing-warmup exactly.
    assert_eq!(warm, run(&mut model, &b, weights(t, ObjectiveDeviations { routing_floor: Some(0.2), ..d })));
    // Only networks on the path of log p(y|z2_y) or its weights q(y|z1,x) move.
    for name in moved(&model, &paper, &warm) {
        assert!(!name.starts_with("p_x") && !name.starts_with("p_z1"), "routing moved {name}");
    }

    // hp-grad-all: no value; the gradients of q(z1|x) and q(z2|·) and nothing else.
    let all_grad = run(&mut model, &b, weights(t, ObjectiveDeviations { hp_grad_all: true, ..d }));
    assert_eq!(paper.0, all_grad.0);
    let m = moved(&model, &paper, &all_grad);
    assert!(m.iter().any(|n| n.starts_with("q_z1")) && m.iter().any(|n| n.starts_with("q_z2")), "{m:?}");
    // q(y|z1,x) gets H_p's part through a second forward pass of its own (same values), so its
    // gradient may differ in the last bits only.
    for id in model.store.ids() {
        let name = &model.store.entry(id).name;
        if name.starts_with("q_z1") || name.starts_with("q_z2") {
            continue;
        }
        let (a, p) = (all_grad.1[id.0].clone().unwrap_or_default(), paper.1[id.0].clone().unwrap_or_default());
        assert_close(&a, &p, &format!("hp-grad-all moved {name}"));
        if !name.starts_with("q_y") {
            assert_eq!(all_grad.1[id.0], paper.1[id.0], "hp-grad-all moved {name}");
        }
    }

    // free bits above the batch's categorical KL: the loss and the gradients of the networks that
    // reach it; not the logged figures.
    let free = run(&mut model, &b, weights(t, ObjectiveDeviations { free_bits_y: Some(50.0), ..d }));
    assert_eq!(logged(&paper), logged(&free));
    assert_ne!(paper.0.0, free.0.0);
    let m = moved(&model, &paper, &free);
    assert!(!m.is_empty() && m.len() < all(&model), "{m:?}");
    assert!(m.iter().all(|n| !n.starts_with("p_x")), "free bits moved p(x|y,z1): {m:?}");

    // The marginal entropy: the loss by exactly −λ·H[q̄], and only the gradients of q(y|z1,x)
    // and of q(z1|x) below it; not the logged figures.
    let lambda = 2.0;
    let ent = run(&mut model, &b, weights(t, ObjectiveDeviations { marginal_entropy_y: Some(lambda), ..d }));
    assert_eq!(logged(&paper), logged(&ent));
    let mut g = Graph::new(&Device::Cpu);
    let u = g.constant(b.xu.clone());
    let bn = cagem::nn::BnUse::Train { update_running: true };
    let terms = model.elbo_terms(&mut g, bn, u, d, &mut NoiseStreams::new(3));
    let (q, k) = (g.value(terms.qy).to_f64_vec(), model.cfg.clusters);
    let rows = q.len() / k;
    let mean: Vec<f64> = (0..k).map(|c| (0..rows).map(|r| q[r * k + c]).sum::<f64>() / rows as f64).collect();
    let h: f64 = -mean.iter().map(|p| p * p.ln()).sum::<f64>();
    assert!(h > 0.1, "{h}");
    assert!((paper.0.0 - ent.0.0 - lambda * h).abs() < 1e-12, "{} − {} vs λ·H = {}", paper.0.0, ent.0.0, lambda * h);
    let m = moved(&model, &paper, &ent);
    assert!(m.iter().any(|n| n.starts_with("q_y")) && m.iter().any(|n| n.starts_with("q_z1")), "{m:?}");
    assert!(m.iter().all(|n| n.starts_with("q_y") || n.starts_with("q_z1")), "marginal entropy moved {m:?}");
}

/// Central differences of `f` in every element of every trainable parameter whose name starts
/// with one of `prefixes`, against `grads` (as from `run`).
fn check_fd(
    model: &mut Cagem<f64>,
    prefixes: &[&str],
    grads: &[Option<Vec<f64>>],
    f: &mut dyn FnMut(&mut Cagem<f64>) -> f64,
) -> usize {
    let h = 1e-6;
    let mut checked = 0;
    for id in model.store.ids().collect::<Vec<_>>() {
        let e = model.store.entry(id);
        if !e.trainable || !prefixes.iter().any(|p| e.name.starts_with(p)) {
            continue;
        }
        let name = e.name.clone();
        let base = model.store.get(id).to_f64_vec();
        let (r, c) = model.store.get(id).shape();
        let a = grads[id.0].clone().unwrap_or_else(|| vec![0.0; base.len()]);
        for j in 0..base.len() {
            let mut at = |model: &mut Cagem<f64>, v: f64| {
                let mut p = base.clone();
                p[j] = v;
                *model.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, r, c, &p);
                f(model)
            };
            let fd = (at(model, base[j] + h) - at(model, base[j] - h)) / (2.0 * h);
            *model.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, r, c, &base);
            let tol = 1e-5 * (1.0 + fd.abs().max(a[j].abs()));
            assert!((fd - a[j]).abs() <= tol, "{name}[{j}]: tape {} vs differences {fd}", a[j]);
            checked += 1;
        }
    }
    checked
}

#[test]
fn new_deviations_match_finite_differences() {
    let b = batch();
    let d = ObjectiveDeviations::default();
    let every = ["q_", "p_"];
    // With α = 0 the loss is −F_T − L_T (labelled-elbo) or the reweighted −F_T: every parameter
    // gets the gradient of the whole loss.
    for dev in [
        ObjectiveDeviations { labelled_elbo: true, ..d },
        ObjectiveDeviations { labelled_elbo: true, kl_warmup_gaussian_only: true, ..d },
        ObjectiveDeviations { routing_warmup: true, ..d },
        ObjectiveDeviations { routing_floor: Some(0.3), kl_warmup_gaussian_only: true, ..d },
        ObjectiveDeviations { free_bits_y: Some(50.0), ..d },
        ObjectiveDeviations { marginal_entropy_y: Some(2.0), ..d },
        ObjectiveDeviations { log_py_weight: Some(3.0), ..d },
        ObjectiveDeviations { log_py_weight: Some(2.0), routing_floor: Some(0.5), ..d },
    ] {
        let mut model = Cagem::<f64>::new(tiny_config(), 6, &Device::Cpu);
        let w = LossWeights { temperature: 0.7, alpha: 0.0, deviations: dev };
        let (_, grads) = run(&mut model, &b, w);
        let n = check_fd(&mut model, &every, &grads, &mut |m| run(m, &b, w).0.0);
        assert!(n > 100, "{dev:?}: {n} elements checked");
    }
    // hp-grad-all: what it adds to the paper's gradient is α·∂H_p in q(z1|x) and q(z2|·).
    let mut model = Cagem::<f64>::new(tiny_config(), 6, &Device::Cpu);
    let (paper, all) = (weights(0.7, d), weights(0.7, ObjectiveDeviations { hp_grad_all: true, ..d }));
    let (_, g_paper) = run(&mut model, &b, paper);
    let (_, g_all) = run(&mut model, &b, all);
    let added: Vec<Option<Vec<f64>>> = g_all
        .iter()
        .zip(&g_paper)
        .map(|(a, p)| match (a, p) {
            (Some(a), Some(p)) => Some(a.iter().zip(p).map(|(a, p)| a - p).collect()),
            (a, _) => a.clone(),
        })
        .collect();
    let n = check_fd(&mut model, &["q_z1", "q_z2"], &added, &mut |m| ALPHA * run(m, &b, paper).0.2);
    assert!(n > 50, "{n} elements checked");
}
