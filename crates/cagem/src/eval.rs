//! Evaluation on the (once-binarised) test set:
//! - the importance-weighted bound log p̂(x) = log (1/k) Σᵢ wᵢ with y summed exactly (see
//!   `Cagem::iw_chunk`), sample chunks combined by logsumexp in f64;
//! - the test ELBO (one sample, temperature 1);
//! - the error rates of the classifiers q(y|x) ≈ E_{q(z1|x)} q(y|z1,x) and
//!   p(y|x) ≈ E [Σ_y' q(y'|z1,x) p(y|z2_y')], estimated from the first chunk of samples;
//! - E_{q(y|x)} KL[q(z2|x,y,z1) ‖ p(z2)] in nats and the active units of z1 and z2 (units whose
//!   posterior mean varies across the test set with variance above 0.01, Burda et al.).
//!
//! Batch norm uses its running (population) statistics throughout.

use std::time::Instant;

use cagem_autodiff::{Graph, Real};
use cagem_kernels::gaussian::clamp_logvar;
use serde::Serialize;

use crate::data::DeviceData;
use crate::model::{Cagem, IwEstimator, NoiseStreams};
use crate::nn::BnUse;

/// Seed of evaluation noise: fixed so that evaluations are reproducible.
pub const EVAL_SEED: u64 = 0xe7a1;
/// Threshold of Burda et al. for an active unit.
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Importance samples per image.
    pub k: usize,
    /// Evaluate the first n test images (None: all).
    pub n_test: Option<usize>,
    /// Rows of one IW forward pass before the K-fold expansion (samples × images).
    pub chunk_rows: usize,
    pub seed: u64,
    pub estimator: IwEstimator,
    /// Whether cluster k was trained to mean class k (a run with labels). Without labels the
    /// clusters are anonymous and each is named by its most frequent true class before counting
    /// errors (the usual unsupervised clustering error).
    pub clusters_are_classes: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: 5000,
            n_test: None,
            chunk_rows: 1000,
            seed: EVAL_SEED,
            estimator: IwEstimator::SumY,
            clusters_are_classes: true,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub iw_k: usize,
    /// Mean IW-k bound in nats (negative).
    pub log_likelihood: f64,
    /// Mean test ELBO in nats.
    pub elbo: f64,
    pub error_p: f64,
    pub error_q: f64,
    /// How predicted clusters were turned into classes for the error rates.
    pub error_mapping: &'static str,
    /// Mean E_{q(y|x)} KL[q(z2|x,y,z1) ‖ p(z2)] in nats.
    pub kl_z2: f64,
    pub active_units_z1: usize,
    pub active_units_z2: usize,
    pub n_test: usize,
    pub estimator: &'static str,
    pub seconds: f64,
}

/// Running sums for per-unit variances across images.
struct UnitVariance {
    n: f64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl UnitVariance {
    fn new(d: usize) -> Self {
        UnitVariance { n: 0.0, sum: vec![0.0; d], sum_sq: vec![0.0; d] }
    }
    fn add(&mut self, v: &[f64]) {
        self.n += 1.0;
        for (i, &x) in v.iter().enumerate() {
            self.sum[i] += x;
            self.sum_sq[i] += x * x;
        }
    }
    fn active(&self) -> usize {
        (0..self.sum.len())
            .filter(|&i| {
                let m = self.sum[i] / self.n;
                self.sum_sq[i] / self.n - m * m > ACTIVE_UNIT_THRESHOLD
            })
            .count()
    }
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0)
}

/// Error rate of cluster predictions. With `clusters_are_classes` cluster k means class k;
/// otherwise each cluster is named by the class most frequent among the images assigned to it.
fn classification_error(predicted: &[usize], truth: &[u32], clusters: usize, clusters_are_classes: bool) -> f64 {
    if predicted.is_empty() {
        return 0.0;
    }
    let names: Vec<usize> = if clusters_are_classes {
        (0..clusters).collect()
    } else {
        let classes = truth.iter().map(|&t| t as usize + 1).max().unwrap_or(1);
        let mut counts = vec![vec![0usize; classes]; clusters];
        for (&p, &t) in predicted.iter().zip(truth) {
            counts[p][t as usize] += 1;
        }
        counts.iter().map(|c| (0..classes).max_by_key(|&j| (c[j], std::cmp::Reverse(j))).unwrap_or(0)).collect()
    };
    let wrong = predicted.iter().zip(truth).filter(|&(&p, &t)| names[p] != t as usize).count();
    wrong as f64 / predicted.len() as f64
}

fn log_sum_exp2(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY { m } else { m + ((a - m).exp() + (b - m).exp()).ln() }
}

/// Evaluates `model` on the test images of `data` with their `labels`. `progress(done, total)`
/// is called as work completes (total = images of the ELBO pass + images of the IW pass).
pub fn evaluate<T: Real>(
    model: &mut Cagem<T>,
    data: &DeviceData<T>,
    labels: &[u32],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> EvalReport {
    let started = Instant::now();
    let n = opts.n_test.unwrap_or(data.n_test).min(data.n_test);
    let k_clusters = model.cfg.clusters;
    let (dz1, dz2) = (model.cfg.z1, model.cfg.z2);
    let dev = model.device();
    let mut noise = NoiseStreams::new(opts.seed);
    let total = 2 * n;

    // Pass 1: ELBO, KL of z2, active units (one sample per image).
    let batch = 500usize;
    let (mut elbo_sum, mut kl_sum) = (0.0, 0.0);
    let (mut var1, mut var2) = (UnitVariance::new(dz1), UnitVariance::new(dz2));
    let mut start = 0;
    while start < n {
        let b = batch.min(n - start);
        let mut g = Graph::<T>::new(&dev);
        g.set_precision(model.precision);
        g.set_grad_enabled(false);
        let x = g.constant(data.test_batch(start, b));
        let t = model.elbo_terms(&mut g, BnUse::Eval, x, &mut noise);
        let get = |v| g.value(v).to_f64_vec();
        let (recon, neg_kl, qy, mu1, mu2, lv2) =
            (get(t.recon), get(t.neg_kl), get(t.qy), get(t.mu1), get(t.mu2), get(t.logvar2));
        for i in 0..b {
            elbo_sum += recon[i] + neg_kl[i];
            var1.add(&mu1[i * dz1..(i + 1) * dz1]);
            let mut mean2 = vec![0.0; dz2];
            for k in 0..k_clusters {
                let q = qy[i * k_clusters + k];
                let r = (k * b + i) * dz2;
                // The same clamp of log σ² as every Gaussian kernel.
                let kl: f64 = (0..dz2)
                    .map(|d| {
                        let lv = clamp_logvar(lv2[r + d]);
                        0.5 * (mu2[r + d].powi(2) + lv.exp() - 1.0 - lv)
                    })
                    .sum();
                kl_sum += q * kl;
                for d in 0..dz2 {
                    mean2[d] += q * mu2[r + d];
                }
            }
            var2.add(&mean2);
        }
        start += b;
        progress(start, total);
    }

    // Pass 2: the IW-k bound and the classifiers.
    let k = opts.k.max(1);
    let per_group = (opts.chunk_rows / k).clamp(1, n.max(1));
    let mut ll_sum = 0.0;
    let (mut predicted_p, mut predicted_q) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut start = 0;
    while start < n {
        let nimg = per_group.min(n - start);
        let s_per_chunk = (opts.chunk_rows / nimg).clamp(1, k);
        let mut lse = vec![f64::NEG_INFINITY; nimg];
        let mut done = 0;
        let mut first = true;
        while done < k {
            let s = s_per_chunk.min(k - done);
            let mut g = Graph::<T>::new(&dev);
            g.set_precision(model.precision);
            g.set_grad_enabled(false);
            let x = g.constant(data.test_batch(start, nimg));
            let c = model.iw_chunk(&mut g, x, s, opts.estimator, &mut noise);
            for (acc, v) in lse.iter_mut().zip(g.value(c.log_sum_w).to_f64_vec()) {
                *acc = log_sum_exp2(*acc, v);
            }
            if first {
                let (lq, lp) = (g.value(c.log_qy).to_f64_vec(), g.value(c.log_py).to_f64_vec());
                let (sn, kk) = (s * nimg, k_clusters);
                for i in 0..nimg {
                    let (mut pq, mut pp) = (vec![0.0; kk], vec![0.0; kk]);
                    for smp in 0..s {
                        let row = smp * nimg + i;
                        for y1 in 0..kk {
                            let q = lq[row * kk + y1].exp();
                            pq[y1] += q;
                            if c.estimator == IwEstimator::SumY {
                                // Σ_y' q(y'|z1,x) p(y|z2_y')
                                let prow = (y1 * sn + row) * kk;
                                for y in 0..kk {
                                    pp[y] += q * lp[prow + y].exp();
                                }
                            }
                        }
                        if c.estimator == IwEstimator::SampleY {
                            // p(y|z2) with z2 ~ q(z2|x) through the sampled y.
                            for y in 0..kk {
                                pp[y] += lp[row * kk + y].exp();
                            }
                        }
                    }
                    predicted_q.push(argmax(&pq));
                    predicted_p.push(argmax(&pp));
                }
                first = false;
            }
            done += s;
        }
        ll_sum += lse.iter().map(|l| l - (k as f64).ln()).sum::<f64>();
        start += nimg;
        progress(n + start, total);
    }
    let nf = n.max(1) as f64;
    EvalReport {
        iw_k: k,
        log_likelihood: ll_sum / nf,
        elbo: elbo_sum / nf,
        error_p: classification_error(&predicted_p, &labels[..n], k_clusters, opts.clusters_are_classes),
        error_q: classification_error(&predicted_q, &labels[..n], k_clusters, opts.clusters_are_classes),
        error_mapping: if opts.clusters_are_classes {
            "cluster k is class k"
        } else {
            "cluster named by its majority class"
        },
        kl_z2: kl_sum / nf,
        active_units_z1: var1.active(),
        active_units_z2: var2.active(),
        n_test: n,
        estimator: opts.estimator.describe(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::classification_error;

    #[test]
    fn errors_with_named_and_anonymous_clusters() {
        let truth = [0u32, 0, 1, 1, 2, 2];
        // Clusters trained as classes: cluster k must be class k.
        assert_eq!(classification_error(&[0, 0, 1, 2, 2, 2], &truth, 3, true), 1.0 / 6.0);
        // Anonymous clusters, permuted and one extra: each is named by its majority class.
        let predicted = [2, 2, 0, 0, 3, 1];
        assert_eq!(classification_error(&predicted, &truth, 4, true), 1.0);
        assert_eq!(classification_error(&predicted, &truth, 4, false), 0.0);
        // A cluster mixing two classes costs its minority.
        assert_eq!(classification_error(&[1, 1, 1, 0, 0, 0], &truth, 2, false), 2.0 / 6.0);
    }
}
