//! Generating from a trained model (batch norm with population statistics, no gradients):
//! - from z2: y from p(y|z2) (random), fixed (class-conditional) or its most likely value;
//!   z1 ~ p(z1|y,z2); the picture is the mean of p(x|y,z1) (σ(logits) for Bernoulli, μ for
//!   Gaussian, in the data's units);
//! - z2 from its prior N(0, I), or from p(z2|y=c) ∝ p(y=c|z2) p(z2) by rejection sampling, so
//!   that class-conditional samples come from p(x|y=c) and not from p(x|y=c, z2 ~ prior);
//! - reconstructions through the bottom layer: z1 = mean of q(z1|x), y = argmax q(y|z1,x),
//!   x̂ = mean of p(x|y,z1);
//! - posterior means for latent-space plots: E[z1|x] = μ of q(z1|x) and
//!   E[z2|x] = Σ_y q(y|z1,x)·μ of q(z2|x,y,z1) at z1 = E[z1|x].

use std::sync::Arc;

use cagem_autodiff::{Graph, Indices, Real, Tensor, Var};

use super::cagem::{Cagem, cluster_rows, sample_categorical};
use super::noise::NoiseStreams;
use crate::nn::BnUse;

/// How y is chosen when generating from z2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterChoice {
    /// y ~ p(y|z2): random generations.
    Sample,
    /// y fixed: class-conditional generations.
    Fixed(u32),
    /// y = argmax p(y|z2).
    MostLikely,
}

/// Generated pictures (n × pixels, Bernoulli means in [0, 1]) and the y behind each.
pub struct Generated {
    pub x: Vec<f64>,
    pub y: Vec<u32>,
}

/// Keeps the `n` entries with the largest first value.
fn keep_most_likely(v: &mut Vec<(f64, Vec<f64>)>, n: usize) {
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    v.truncate(n);
}

fn argmax_rows(v: &[f64], k: usize) -> Vec<u32> {
    v.chunks_exact(k).map(|r| (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0) as u32).collect()
}

impl<T: Real> Cagem<T> {
    /// `n` draws of z2 ~ N(0, I) (on the model's device).
    pub fn prior_z2(&self, n: usize, noise: &mut NoiseStreams) -> Tensor<T> {
        let s = noise.take();
        let v: Vec<f64> = (0..n * self.cfg.z2).map(|i| cagem_kernels::rng::normal_at(s, i as u64)).collect();
        Tensor::from_f64(&self.device(), n, self.cfg.z2, &v)
    }

    /// log p(y|z2) for the rows of `z2` (n × K, row-major).
    pub fn log_p_y_given_z2(&mut self, z2: &Tensor<T>) -> Vec<f64> {
        let dev = self.device();
        let mut g = Graph::<T>::new(&dev);
        g.set_grad_enabled(false);
        let (n, mut fwd) = self.fwd(&mut g, BnUse::Eval);
        let f = &mut fwd;
        let z2v = f.g.constant(z2.clone());
        let h = n.p_y.forward(f, &[z2v], None);
        let logits = n.p_y_head.forward(f, h);
        let log_py = f.g.log_softmax(logits);
        f.g.value(log_py).to_f64_vec()
    }

    /// `n` draws of z2 ~ p(z2|y=c): prior draws accepted with probability p(y=c|z2), exact since
    /// p(z2|y=c) = p(y=c|z2) p(z2) / p(y=c) ≤ p(z2) / p(y=c); about K·n prior draws when the
    /// clusters are balanced. After `max_draws` prior draws the missing rows are filled with the
    /// draws most likely under c; the second value counts them (0 when the sample is exact).
    pub fn class_z2(&mut self, n: usize, class: u32, max_draws: usize, noise: &mut NoiseStreams) -> (Tensor<T>, usize) {
        let (k, dz2) = (self.cfg.clusters, self.cfg.z2);
        assert!((class as usize) < k, "class {class} out of range for {k} clusters");
        let round = (4 * n * k).clamp(256, 50_000);
        let (mut accepted, mut fallback): (Vec<f64>, Vec<(f64, Vec<f64>)>) = (Vec::new(), Vec::new());
        let mut drawn = 0;
        while accepted.len() < n * dz2 && drawn < max_draws {
            let z2 = self.prior_z2(round, noise);
            let lp = self.log_p_y_given_z2(&z2);
            let u = noise.take();
            let z = z2.to_f64_vec();
            for r in 0..round {
                if accepted.len() == n * dz2 {
                    break;
                }
                let p = lp[r * k + class as usize].exp();
                let row = &z[r * dz2..(r + 1) * dz2];
                if cagem_kernels::rng::uniform_at(u, r as u64) < p {
                    accepted.extend_from_slice(row);
                } else {
                    fallback.push((p, row.to_vec()));
                    if fallback.len() >= 2 * n {
                        keep_most_likely(&mut fallback, n);
                    }
                }
            }
            drawn += round;
        }
        let missing = n - accepted.len() / dz2;
        keep_most_likely(&mut fallback, missing);
        for (_, row) in fallback {
            accepted.extend(row);
        }
        (Tensor::from_f64(&self.device(), n, dz2, &accepted), missing)
    }

    /// Pictures generated from the rows of `z2` (n × z2).
    pub fn generate(&mut self, z2: &Tensor<T>, choice: ClusterChoice, noise: &mut NoiseStreams) -> Generated {
        let (k, rows) = (self.cfg.clusters, z2.rows());
        if let ClusterChoice::Fixed(c) = choice {
            assert!((c as usize) < k, "class {c} out of range for {k} clusters");
        }
        let dev = self.device();
        let mut g = Graph::<T>::new(&dev);
        g.set_grad_enabled(false);
        let lp = self.log_p_y_given_z2(z2);
        let (n, mut fwd) = self.fwd(&mut g, BnUse::Eval);
        let f = &mut fwd;
        let z2v = f.g.constant(z2.clone());
        // Taken whatever the choice, so that z1's noise does not depend on it.
        let y_stream = noise.take();
        let y = match choice {
            ClusterChoice::Sample => sample_categorical(&lp, k, y_stream),
            ClusterChoice::Fixed(c) => vec![c; rows],
            ClusterChoice::MostLikely => argmax_rows(&lp, k),
        };
        let idx = Arc::new(Indices::new(&dev, &y));
        let h = n.p_z1.forward(f, &[z2v], Some(&idx));
        let (mu, lv) = n.p_z1_head.forward(f, h);
        let z1 = f.g.reparameterize(mu, lv, rows, noise.take());
        let h = n.p_x.forward(f, &[z1], Some(&idx));
        let logits = n.p_x_head.forward(f, h);
        let out = f.g.value(logits).to_f64_vec();
        Generated { x: self.x_mean(out), y }
    }

    /// The means of q(z1|x) and the most likely y under q(y|z1,x) at that z1.
    fn encode_mean(&mut self, g: &mut Graph<T>, x: Var) -> (Var, Var, Vec<f64>) {
        let (n, mut fwd) = self.fwd(g, BnUse::Eval);
        let f = &mut fwd;
        let h = n.q_z1.forward(f, &[x], None);
        let (mu1, _) = n.q_z1_head.forward(f, h);
        let h = n.q_y.forward(f, &[x, mu1], None);
        let logits = n.q_y_head.forward(f, h);
        let qy = f.g.softmax(logits);
        let qy_host = f.g.value(qy).to_f64_vec();
        (mu1, qy, qy_host)
    }

    /// Reconstructions (n × pixels) of the images x through the bottom layer.
    pub fn reconstruct(&mut self, x: &Tensor<T>) -> Vec<f64> {
        let dev = self.device();
        let mut g = Graph::<T>::new(&dev);
        g.set_grad_enabled(false);
        let xv = g.constant(x.clone());
        let (mu1, _, qy) = self.encode_mean(&mut g, xv);
        let y = argmax_rows(&qy, self.cfg.clusters);
        let idx = Arc::new(Indices::new(&dev, &y));
        let (n, mut fwd) = self.fwd(&mut g, BnUse::Eval);
        let f = &mut fwd;
        let h = n.p_x.forward(f, &[mu1], Some(&idx));
        let logits = n.p_x_head.forward(f, h);
        let out = f.g.value(logits).to_f64_vec();
        self.x_mean(out)
    }

    /// Posterior means E[z1|x] (n × z1) and E[z2|x] (n × z2) of the images x.
    pub fn latent_means(&mut self, x: &Tensor<T>) -> (Vec<f64>, Vec<f64>) {
        let (k, dz2, b) = (self.cfg.clusters, self.cfg.z2, x.rows());
        let dev = self.device();
        let mut g = Graph::<T>::new(&dev);
        g.set_grad_enabled(false);
        let xv = g.constant(x.clone());
        let (mu1, _, qy) = self.encode_mean(&mut g, xv);
        let idx = cluster_rows(&dev, k, b);
        let (n, mut fwd) = self.fwd(&mut g, BnUse::Eval);
        let f = &mut fwd;
        let (mu2, _) = n.q_z2(f, xv, mu1, &idx);
        let z2 = mix_over_clusters(&qy, &f.g.value(mu2).to_f64_vec(), b, k, dz2);
        (f.g.value(mu1).to_f64_vec(), z2)
    }
}

/// E[z2|x] = Σ_y q(y|x)·μ_y per image from q(y|x) (b × k) and the means μ of q(z2|x,y,z1) in
/// the cluster-major layout (k·b × dz2).
fn mix_over_clusters(q_y: &[f64], mu2: &[f64], b: usize, k: usize, dz2: usize) -> Vec<f64> {
    let mut z2 = vec![0.0; b * dz2];
    for i in 0..b {
        for y in 0..k {
            let q = q_y[i * k + y];
            for d in 0..dz2 {
                z2[i * dz2 + d] += q * mu2[(y * b + i) * dz2 + d];
            }
        }
    }
    z2
}

/// What the cluster diagnostics read of a batch of images (crate::clusters), at the posterior
/// means: z1 = mean of q(z1|x), and for every cluster k, z2 = mean of q(z2|x,k,z1).
pub struct RoutingView {
    /// log p(y|z2) at z2 = mean of q(z2|x,k,z1), K·N × K (row k·N + n).
    pub log_py: Vec<f64>,
    /// q(y|z1,x) at z1 = mean of q(z1|x), N × K.
    pub q_y: Vec<f64>,
    /// E[z2|x] = Σ_k q(k|z1,x)·mean of q(z2|x,k,z1), N × z2 (what `latent` plots).
    pub z2_mean: Vec<f64>,
}

impl<T: Real> Cagem<T> {
    /// The routing view of the images x (see `RoutingView`).
    pub fn routing_view(&mut self, x: &Tensor<T>) -> RoutingView {
        let (k, dz2, b) = (self.cfg.clusters, self.cfg.z2, x.rows());
        let dev = self.device();
        let mut g = self.inference_graph();
        let xv = g.constant(x.clone());
        let (mu1, _, q_y) = self.encode_mean(&mut g, xv);
        let idx = cluster_rows(&dev, k, b);
        let (n, mut fwd) = self.fwd(&mut g, BnUse::Eval);
        let f = &mut fwd;
        let (mu2, _) = n.q_z2(f, xv, mu1, &idx);
        let h = n.p_y.forward(f, &[mu2], None);
        let logits = n.p_y_head.forward(f, h);
        let log_py = f.g.log_softmax(logits);
        let log_py = f.g.value(log_py).to_f64_vec();
        let z2_mean = mix_over_clusters(&q_y, &f.g.value(mu2).to_f64_vec(), b, k, dz2);
        RoutingView { log_py, q_y, z2_mean }
    }
}
