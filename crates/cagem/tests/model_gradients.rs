//! Model-level gradient checks:
//! - the whole semi-supervised loss of a tiny CaGeM (f64) against central finite differences in
//!   every parameter. The objective cuts the labelled terms from every parameter outside
//!   θ_y ∪ φ_y (their z1, z2 samples are treated as constants), so the reference is the finite
//!   difference of the full loss for θ_y ∪ φ_y, and of the unlabelled part for the rest; the
//!   same with the Gaussian likelihood p(x|y,z1) = N(μ, diag σ²) on real-valued data;
//! - the labelled cross-entropies move only θ_y (p(y|z2)) and φ_y (q(y|z1,x)): their gradient
//!   with respect to every other parameter is exactly zero, and adding them leaves those
//!   parameters' gradients bit-for-bit unchanged.

mod tiny;

use cagem::deviation::ObjectiveDeviations;
use cagem::model::objective::{Labelled, LossWeights, semi_supervised_loss};
use cagem::model::{Cagem, NoiseStreams};
use cagem::nn::BnUse;
use cagem::{Likelihood, ModelConfig};
use cagem_autodiff::{Device, Graph, ParamId, Tensor};
use cagem_kernels::rng::HostRng;
use tiny::{binary_batch, tiny_config};

const TEMPERATURE: f64 = 0.7;
const ALPHA: f64 = 2.5;

fn loss_value(model: &mut Cagem<f64>, batch: &Batch, w: LossWeights, with_labels: bool) -> f64 {
    let mut g = Graph::new(&Device::Cpu);
    let (u, l) = (g.constant(batch.xu.clone()), g.constant(batch.xl.clone()));
    let lab = with_labels.then_some(Labelled { x: l, y: &batch.yl });
    let mut noise = NoiseStreams::new(42);
    let s = semi_supervised_loss(model, &mut g, u, lab, w, &mut noise);
    g.value(s.loss).scalar()
}

/// An unlabelled and a labelled batch.
struct Batch {
    xu: Tensor<f64>,
    xl: Tensor<f64>,
    yl: Vec<u32>,
}

#[test]
fn whole_semi_supervised_loss_matches_finite_differences() {
    let mut rng = HostRng::new(5, 0);
    let cfg = tiny_config();
    let xu = binary_batch(&mut rng, 4, cfg.x_dim);
    let xl = binary_batch(&mut rng, 3, cfg.x_dim);
    check_whole_loss(cfg, &Batch { xu, xl, yl: vec![2, 0, 1] }, LossWeights::paper(TEMPERATURE, ALPHA), &[], &[]);
}

#[test]
fn every_deviation_matches_finite_differences() {
    // Each deviation of the objective (and the model without the skip connection x → q(z2|·))
    // has the tape's gradient of what it computes; with hp-grad-to-z2 the labelled terms also
    // reach q(z2|·), so there its finite differences include them.
    let mut rng = HostRng::new(15, 0);
    let cfg = tiny_config();
    let batch =
        Batch { xu: binary_batch(&mut rng, 4, cfg.x_dim), xl: binary_batch(&mut rng, 3, cfg.x_dim), yl: vec![1, 1, 0] };
    let with = |deviations| LossWeights { temperature: TEMPERATURE, alpha: ALPHA, deviations };
    let d = ObjectiveDeviations::default();
    check_whole_loss(cfg.clone(), &batch, with(ObjectiveDeviations { kl_warmup_gaussian_only: true, ..d }), &[], &[]);
    check_whole_loss(cfg.clone(), &batch, with(ObjectiveDeviations { hp_true_label_z2: true, ..d }), &[], &[]);
    check_whole_loss(cfg.clone(), &batch, with(ObjectiveDeviations { hp_grad_to_z2: true, ..d }), &["q_z2"], &[]);
    // bn-qy-weighted holds its weights K·q(y|z1,x) constant: differences in q(z1|x) and
    // q(y|z1,x) would move them, so those are left out; every other network is checked.
    let bn = with(ObjectiveDeviations { bn_qy_weighted: true, ..d });
    check_whole_loss(cfg.clone(), &batch, bn, &[], &["q_z1", "q_y"]);
    let no_skip = ModelConfig { skip_x_to_z2: false, ..cfg };
    check_whole_loss(no_skip, &batch, LossWeights::paper(TEMPERATURE, ALPHA), &[], &[]);
}

#[test]
fn gaussian_likelihood_loss_matches_finite_differences() {
    // Real-valued data, p(x|y,z1) = N(μ, diag σ²) with the learned log-variance head.
    let mut rng = HostRng::new(6, 0);
    let cfg = ModelConfig { likelihood: Likelihood::Gaussian, ..tiny_config() };
    let normal = |rng: &mut HostRng, n: usize| {
        let v: Vec<f64> = (0..n * cfg.x_dim).map(|_| 1.5 * rng.normal() + 0.3).collect();
        Tensor::from_f64(&Device::Cpu, n, cfg.x_dim, &v)
    };
    let (xu, xl) = (normal(&mut rng, 4), normal(&mut rng, 3));
    let model = Cagem::<f64>::new(cfg.clone(), 3, &Device::Cpu);
    assert!(model.store.iter().any(|(_, e)| e.name == "p_x.logvar.w"), "no log-variance head");
    check_whole_loss(cfg, &Batch { xu, xl, yl: vec![2, 0, 1] }, LossWeights::paper(TEMPERATURE, ALPHA), &[], &[]);
}

/// The tape's gradient of the whole loss against central differences in every parameter. The
/// labelled terms reach θ_y ∪ φ_y and the parameters whose names start with one of `reached`.
/// Parameters whose names start with one of `held` are not checked: moving them also moves a
/// quantity the loss holds constant (bn-qy-weighted's batch-norm weights, from q(y|z1,x)).
fn check_whole_loss(cfg: ModelConfig, batch: &Batch, w: LossWeights, reached: &[&str], held: &[&str]) {
    let mut model = Cagem::<f64>::new(cfg.clone(), 3, &Device::Cpu);

    let mut g = Graph::new(&Device::Cpu);
    let (u, l) = (g.constant(batch.xu.clone()), g.constant(batch.xl.clone()));
    let mut noise = NoiseStreams::new(42);
    let s = semi_supervised_loss(&mut model, &mut g, u, Some(Labelled { x: l, y: &batch.yl }), w, &mut noise);
    let grads = g.backward(s.loss);
    let analytic: Vec<(ParamId, Vec<f64>)> = grads.params().map(|(id, t)| (id, t.to_f64_vec())).collect();
    drop(g);

    let mut labelled_reach = model.classifier_params();
    labelled_reach
        .extend(model.store.iter().filter(|(_, e)| reached.iter().any(|r| e.name.starts_with(r))).map(|(id, _)| id));
    let h = 1e-6;
    let mut checked = 0;
    for id in model.store.ids().collect::<Vec<_>>() {
        let name = &model.store.entry(id).name;
        if !model.store.entry(id).trainable || held.iter().any(|h| name.starts_with(h)) {
            continue;
        }
        let a = analytic.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone());
        let a = a.unwrap_or_else(|| panic!("no gradient for {}", model.store.entry(id).name));
        let base = model.store.get(id).to_f64_vec();
        let (rows, cols) = model.store.get(id).shape();
        let with_labels = labelled_reach.contains(&id);
        for j in 0..base.len() {
            let set = |model: &mut Cagem<f64>, v: f64| {
                let mut p = base.clone();
                p[j] = v;
                *model.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, rows, cols, &p);
            };
            set(&mut model, base[j] + h);
            let fp = loss_value(&mut model, batch, w, with_labels);
            set(&mut model, base[j] - h);
            let fm = loss_value(&mut model, batch, w, with_labels);
            set(&mut model, base[j]);
            let numeric = (fp - fm) / (2.0 * h);
            let tol = 1e-6 + 2e-5 * a[j].abs().max(numeric.abs());
            assert!(
                (a[j] - numeric).abs() <= tol,
                "{}[{j}]: tape {:.9e}, finite difference {numeric:.9e}",
                model.store.entry(id).name,
                a[j]
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} parameters checked");
}

#[test]
fn labelled_terms_move_only_the_classifier_parameters() {
    let mut rng = HostRng::new(9, 0);
    let cfg = tiny_config();
    let mut model = Cagem::<f64>::new(cfg.clone(), 4, &Device::Cpu);
    let xu = binary_batch(&mut rng, 5, cfg.x_dim);
    let xl = binary_batch(&mut rng, 4, cfg.x_dim);
    let yl = [0u32, 1, 2, 1];
    let classifier = model.classifier_params();
    assert!(classifier.len() >= 2 * 10, "θ_y and φ_y not found");

    // The labelled cross-entropies alone.
    let mut g = Graph::new(&Device::Cpu);
    let l = g.constant(xl.clone());
    let mut noise = NoiseStreams::new(1);
    let (hp, hq) = model.classifier_terms(
        &mut g,
        BnUse::Train { update_running: false },
        l,
        &yl,
        ObjectiveDeviations::default(),
        &mut noise,
    );
    let s = g.add(hp, hq);
    let total = g.sum(s);
    let grads = g.backward(total);
    let mut classifier_moved = 0;
    for id in model.store.ids() {
        let e = model.store.entry(id);
        match grads.param(id) {
            Some(t) if !classifier.contains(&id) => {
                assert!(t.to_f64_vec().iter().all(|&v| v == 0.0), "labelled terms move {}", e.name)
            }
            Some(t) => classifier_moved += usize::from(t.to_f64_vec().iter().any(|&v| v != 0.0)),
            None => {}
        }
    }
    assert!(classifier_moved >= 10, "the labelled terms should move the classifiers ({classifier_moved} params moved)");

    // With and without the labelled terms: identical gradients outside θ_y ∪ φ_y.
    let grads_of = |model: &mut Cagem<f64>, with_labels: bool| {
        let mut g = Graph::new(&Device::Cpu);
        let (u, l) = (g.constant(xu.clone()), g.constant(xl.clone()));
        let lab = with_labels.then_some(Labelled { x: l, y: &yl });
        let mut noise = NoiseStreams::new(77);
        let s = semi_supervised_loss(model, &mut g, u, lab, LossWeights::paper(1.0, ALPHA), &mut noise);
        let grads = g.backward(s.loss);
        model.store.ids().map(|id| grads.param(id).map(|t| t.to_f64_vec())).collect::<Vec<_>>()
    };
    let without = grads_of(&mut model, false);
    let with = grads_of(&mut model, true);
    let mut differ = 0;
    for id in model.store.ids() {
        if classifier.contains(&id) {
            differ += usize::from(with[id.0] != without[id.0]);
        } else {
            assert_eq!(with[id.0], without[id.0], "{} changed by the labelled terms", model.store.entry(id).name);
        }
    }
    assert!(differ > 0, "the labelled terms changed no classifier gradient");
}

#[test]
fn deviations_change_only_what_they_name() {
    let mut rng = HostRng::new(21, 0);
    let cfg = tiny_config();
    let batch = Batch {
        xu: binary_batch(&mut rng, 5, cfg.x_dim),
        xl: binary_batch(&mut rng, 4, cfg.x_dim),
        yl: vec![0, 2, 1, 2],
    };
    let mut model = Cagem::<f64>::new(cfg, 8, &Device::Cpu);
    let d = ObjectiveDeviations::default();
    let terms = |model: &mut Cagem<f64>, temperature: f64, deviations: ObjectiveDeviations| {
        let mut g = Graph::new(&Device::Cpu);
        let (u, l) = (g.constant(batch.xu.clone()), g.constant(batch.xl.clone()));
        let mut noise = NoiseStreams::new(3);
        let w = LossWeights { temperature, alpha: ALPHA, deviations };
        let s = semi_supervised_loss(model, &mut g, u, Some(Labelled { x: l, y: &batch.yl }), w, &mut noise);
        let get = |v| g.value(v).scalar();
        (get(s.loss), get(s.elbo), get(s.hp.unwrap()), get(s.hq.unwrap()))
    };
    // kl-warmup-gaussian-only: the loss moves by −(1 − T)·(the categorical part), the same part
    // at every T, and not at all at T = 1; the ELBO and the labelled terms do not move.
    let gaussian_only = ObjectiveDeviations { kl_warmup_gaussian_only: true, ..d };
    let mut shift = Vec::new();
    for t in [0.3, 0.6, 1.0] {
        let (paper, dev) = (terms(&mut model, t, d), terms(&mut model, t, gaussian_only));
        assert_eq!((paper.1, paper.2, paper.3), (dev.1, dev.2, dev.3));
        shift.push((paper.0 - dev.0) / (1.0 - t).max(1e-300));
    }
    assert!(shift[0].abs() > 1e-3, "the categorical part is {}", shift[0]);
    assert!((shift[0] - shift[1]).abs() < 1e-9 * shift[0].abs(), "{shift:?}");
    assert_eq!(terms(&mut model, 1.0, d).0, terms(&mut model, 1.0, gaussian_only).0);
    // hp-true-label-z2 changes H_p only; hp-grad-to-z2 changes no value.
    let (paper, true_label) =
        (terms(&mut model, 0.5, d), terms(&mut model, 0.5, ObjectiveDeviations { hp_true_label_z2: true, ..d }));
    assert_eq!((paper.1, paper.3), (true_label.1, true_label.3));
    assert_ne!(paper.2, true_label.2);
    assert_eq!(paper, terms(&mut model, 0.5, ObjectiveDeviations { hp_grad_to_z2: true, ..d }));
    // bn-qy-weighted changes the statistics of the K·B-row networks: the ELBO and H_p, not H_q.
    let weighted = terms(&mut model, 0.5, ObjectiveDeviations { bn_qy_weighted: true, ..d });
    assert_eq!(paper.3, weighted.3);
    assert!((paper.1 - weighted.1).abs() > 1e-6 && (paper.2 - weighted.2).abs() > 1e-9, "{paper:?} {weighted:?}");
}
