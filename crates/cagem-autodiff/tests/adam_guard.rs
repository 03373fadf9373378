//! Adam's guard: a step whose gradients hold a NaN or ±∞ touches nothing (parameters, moments,
//! step count), and global-norm clipping equals Adam on the rescaled gradient.

use cagem_autodiff::{Adam, Device, Graph, ParamId, ParamStore, Tensor};
use cagem_kernels::gemm::Precision;

fn store() -> (ParamStore<f32>, ParamId, ParamId) {
    let dev = Device::Cpu;
    let mut s = ParamStore::new();
    let a = s.add("a", Tensor::from_f64(&dev, 2, 3, &[0.5, -1.0, 2.0, 0.25, 3.0, -0.75]), true);
    let b = s.add("b", Tensor::from_f64(&dev, 1, 4, &[1.0, 2.0, -3.0, 4.0]), true);
    (s, a, b)
}

/// One Adam step whose gradient with respect to `a` is `ga` and to `b` is `gb`: the loss is
/// sum(a ⊙ ga) + sum(b ⊙ gb), with ga and gb constants.
fn step(adam: &mut Adam<f32>, s: &mut ParamStore<f32>, ids: (ParamId, ParamId), ga: &[f64], gb: &[f64]) -> bool {
    let dev = Device::Cpu;
    let mut g = Graph::new(&dev);
    let (va, vb) = (g.param(s, ids.0), g.param(s, ids.1));
    let (ca, cb) = (g.constant(Tensor::from_f64(&dev, 2, 3, ga)), g.constant(Tensor::from_f64(&dev, 1, 4, gb)));
    let (pa, pb) = (g.mul(va, ca), g.mul(vb, cb));
    let (sa, sb) = (g.sum(pa), g.sum(pb));
    let loss = g.add(sa, sb);
    let grads = g.backward(loss);
    drop(g);
    adam.step(s, &grads, 1e-2, Precision::F32).applied
}

fn snapshot(s: &ParamStore<f32>, adam: &Adam<f32>) -> Vec<Vec<u32>> {
    let bits = |t: &Tensor<f32>| t.to_vec().iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut out = Vec::new();
    for (id, e) in s.iter() {
        out.push(bits(&e.value));
        if let Some((m, v)) = adam.moments(id) {
            out.push(bits(m));
            out.push(bits(v));
        }
    }
    out.push(vec![adam.t as u32]);
    out
}

#[test]
fn a_non_finite_gradient_touches_nothing() {
    let (mut s, a, b) = store();
    let mut adam = Adam::new();
    assert!(step(&mut adam, &mut s, (a, b), &[0.1, 0.2, -0.3, 0.4, 0.5, 0.6], &[1.0, -1.0, 0.5, 0.0]));
    let before = snapshot(&s, &adam);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        // The bad element sits in b; a's gradient is fine, and must not be applied either.
        assert!(!step(&mut adam, &mut s, (a, b), &[0.1, 0.2, -0.3, 0.4, 0.5, 0.6], &[1.0, bad, 0.5, 0.0]));
        assert_eq!(snapshot(&s, &adam), before, "a step with a {bad} gradient changed something");
    }
    assert_eq!(adam.t, 1);
    assert!(step(&mut adam, &mut s, (a, b), &[0.1; 6], &[0.1; 4]));
    assert_eq!(adam.t, 2);
}

#[test]
fn clipping_equals_adam_on_the_rescaled_gradient() {
    let (ga, gb) = ([3.0, 0.0, -4.0, 1.0, 2.0, -2.0], [5.0, 1.0, -1.0, 3.0]);
    let norm = ga.iter().chain(&gb).map(|x| x * x).sum::<f64>().sqrt(); // √70
    let (mut s1, a, b) = store();
    let mut clipped = Adam::new();
    clipped.clip_norm = Some(2.0);
    assert!(step(&mut clipped, &mut s1, (a, b), &ga, &gb));
    let (mut s2, _, _) = store();
    let mut plain = Adam::new();
    let scale = |g: &[f64]| g.iter().map(|x| (*x as f32 * (2.0 / norm) as f32) as f64).collect::<Vec<_>>();
    assert!(step(&mut plain, &mut s2, (a, b), &scale(&ga), &scale(&gb)));
    for ((_, x), (_, y)) in s1.iter().zip(s2.iter()) {
        assert_eq!(x.value.to_vec(), y.value.to_vec(), "{}", x.name);
    }
    // Under the threshold nothing changes: the same as no clipping, bit for bit.
    let (mut s3, _, _) = store();
    let mut loose = Adam::new();
    loose.clip_norm = Some(100.0);
    assert!(step(&mut loose, &mut s3, (a, b), &ga, &gb));
    let (mut s4, _, _) = store();
    assert!(step(&mut Adam::new(), &mut s4, (a, b), &ga, &gb));
    for ((_, x), (_, y)) in s3.iter().zip(s4.iter()) {
        assert_eq!(x.value.to_vec(), y.value.to_vec(), "{}", x.name);
    }
}
