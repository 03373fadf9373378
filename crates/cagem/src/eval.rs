//! Evaluation on the (once-binarised) test set:
//! - the importance-weighted bound log p̂(x) = log (1/k) Σᵢ wᵢ with y summed exactly (see
//!   `Cagem::iw_chunk`), sample chunks combined by logsumexp in f64;
//! - the test ELBO (one sample, temperature 1);
//! - the error rates of the classifiers q(y|x) ≈ E_{q(z1|x)} q(y|z1,x) and
//!   p(y|x) ≈ E [Σ_y' q(y'|z1,x) p(y|z2_y')], estimated from the first chunk of samples;
//! - E_{q(y|x)} KL[q(z2|x,y,z1) ‖ p(z2)] in nats and the active units of z1 and z2 (units whose
//!   posterior mean varies across the test set with variance above 0.01, Burda et al.);
//! - whether z2 holds the clusters: routing, z2 class separation, clusters used (crate::clusters).
//!
//! Batch norm uses its running (population) statistics throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cagem_autodiff::{Real, Tensor};
use cagem_kernels::gaussian::clamp_logvar;
use serde::Serialize;

use crate::data::{DeviceData, UNLABELLED};
use crate::deviation::ObjectiveDeviations;
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
    /// Raised (Ctrl-C during `train`'s periodic evaluation): `evaluate_rows_until` stops at the
    /// next chunk and returns None.
    pub stop: Option<Arc<AtomicBool>>,
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
            stop: None,
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
    /// Error rates over the labelled examples (None: no example has a label).
    pub error_p: Option<f64>,
    pub error_q: Option<f64>,
    /// How predicted clusters were turned into classes for the error rates.
    pub error_mapping: &'static str,
    /// Mean E_{q(y|x)} KL[q(z2|x,y,z1) ‖ p(z2)] in nats.
    pub kl_z2: f64,
    pub active_units_z1: usize,
    pub active_units_z2: usize,
    /// Routing, z2 class separation, clusters used.
    #[serde(flatten)]
    pub clusters: crate::clusters::ClusterReport,
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

/// Error rate of cluster predictions over the examples with a label (None if there are none).
/// With `clusters_are_classes` cluster k means class k; otherwise each cluster is named by the
/// class most frequent among the labelled images assigned to it.
pub fn classification_error(
    predicted: &[usize],
    truth: &[u32],
    clusters: usize,
    clusters_are_classes: bool,
) -> Option<f64> {
    let (predicted, truth): (Vec<usize>, Vec<u32>) =
        predicted.iter().zip(truth).filter(|(_, t)| **t != UNLABELLED).map(|(&p, &t)| (p, t)).unzip();
    if predicted.is_empty() {
        return None;
    }
    let names: Vec<usize> = if clusters_are_classes {
        (0..clusters).collect()
    } else {
        let classes = truth.iter().map(|&t| t as usize + 1).max().unwrap_or(1);
        let mut counts = vec![vec![0usize; classes]; clusters];
        for (&p, &t) in predicted.iter().zip(&truth) {
            counts[p][t as usize] += 1;
        }
        counts.iter().map(|c| (0..classes).max_by_key(|&j| (c[j], std::cmp::Reverse(j))).unwrap_or(0)).collect()
    };
    let wrong = predicted.iter().zip(&truth).filter(|&(&p, &t)| names[p] != t as usize).count();
    Some(wrong as f64 / predicted.len() as f64)
}

fn log_sum_exp2(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY { m } else { m + ((a - m).exp() + (b - m).exp()).ln() }
}

/// Per-example results of the IW pass.
pub struct IwPerExample {
    /// The IW-k bound log p̂(x) of each example, in nats.
    pub log_likelihood: Vec<f64>,
    /// p(y|x) and q(y|x), N × K, averaged over the classifier samples (see `iw_per_example`).
    pub p_y: Vec<f64>,
    pub q_y: Vec<f64>,
}

/// Adds, for the S samples of each of `nimg` images, q(y|z1,x) to `pq` and
/// Σ_y' q(y'|z1,x) p(y|z2_y') (y summed; with y sampled, p(y|z2) through the sampled y) to `pp`
/// (both nimg × K). `lq` and `lp` are laid out as in `IwChunk`.
pub fn accumulate_class_probs(
    lq: &[f64],
    lp: &[f64],
    s: usize,
    nimg: usize,
    kk: usize,
    estimator: IwEstimator,
    pq: &mut [f64],
    pp: &mut [f64],
) {
    let sn = s * nimg;
    for i in 0..nimg {
        let (pq, pp) = (&mut pq[i * kk..(i + 1) * kk], &mut pp[i * kk..(i + 1) * kk]);
        for smp in 0..s {
            let row = smp * nimg + i;
            for y1 in 0..kk {
                let q = lq[row * kk + y1].exp();
                pq[y1] += q;
                if estimator == IwEstimator::SumY {
                    // Σ_y' q(y'|z1,x) p(y|z2_y')
                    let prow = (y1 * sn + row) * kk;
                    for y in 0..kk {
                        pp[y] += q * lp[prow + y].exp();
                    }
                }
            }
            if estimator == IwEstimator::SampleY {
                // p(y|z2) with z2 ~ q(z2|x) through the sampled y.
                for y in 0..kk {
                    pp[y] += lp[row * kk + y].exp();
                }
            }
        }
    }
}

/// The IW-k bound of every row of `x` (N × x_dim, already binarised or standardised), sample
/// chunks combined by logsumexp in f64, and the classifiers p(y|x), q(y|x) from the first chunk
/// of samples. `progress(done)` counts images. Includes the log-Jacobian of the model's
/// standardisation, so the bound is a density of the data in its own units.
pub fn iw_per_example<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    opts: &EvalOptions,
    noise: &mut NoiseStreams,
    progress: &mut dyn FnMut(usize),
) -> IwPerExample {
    let n = x.rows();
    let kk = model.cfg.clusters;
    let jacobian = model.standardizer().map_or(0.0, |s| s.log_jacobian());
    let k = opts.k.max(1);
    let per_group = (opts.chunk_rows / k).clamp(1, n.max(1));
    let mut out =
        IwPerExample { log_likelihood: Vec::with_capacity(n), p_y: vec![0.0; n * kk], q_y: vec![0.0; n * kk] };
    let mut start = 0;
    while start < n {
        let nimg = per_group.min(n - start);
        let s_per_chunk = (opts.chunk_rows / nimg).clamp(1, k);
        let mut lse = vec![f64::NEG_INFINITY; nimg];
        let mut done = 0;
        let mut first = true;
        while done < k {
            let s = s_per_chunk.min(k - done);
            let mut g = model.inference_graph();
            let xv = g.constant(x.rows_range(start, nimg));
            let c = model.iw_chunk(&mut g, xv, s, opts.estimator, noise);
            for (acc, v) in lse.iter_mut().zip(g.value(c.log_sum_w).to_f64_vec()) {
                *acc = log_sum_exp2(*acc, v);
            }
            if first {
                let (lq, lp) = (g.value(c.log_qy).to_f64_vec(), g.value(c.log_py).to_f64_vec());
                let range = start * kk..(start + nimg) * kk;
                let (pq, pp) = (&mut out.q_y[range.clone()], &mut out.p_y[range]);
                accumulate_class_probs(&lq, &lp, s, nimg, kk, c.estimator, pq, pp);
                pq.iter_mut().chain(pp.iter_mut()).for_each(|v| *v /= s as f64);
                first = false;
            }
            done += s;
            if stopped(opts) {
                break;
            }
        }
        out.log_likelihood.extend(lse.iter().map(|l| l - (k as f64).ln() + jacobian));
        start += nimg;
        progress(start);
        if stopped(opts) {
            break;
        }
    }
    out
}

fn stopped(opts: &EvalOptions) -> bool {
    opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
}

/// p(y|x) and q(y|x) (N × K each) of the rows of `x`, averaged over `samples` draws of z1 (and
/// of z2 per cluster): the classifiers of `evaluate` without the rest of the model.
/// `progress(done)` counts images.
pub fn class_probabilities<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    samples: usize,
    chunk_rows: usize,
    noise: &mut NoiseStreams,
    progress: &mut dyn FnMut(usize),
) -> (Vec<f64>, Vec<f64>) {
    let (n, kk) = (x.rows(), model.cfg.clusters);
    let samples = samples.max(1);
    let per_group = (chunk_rows / samples).clamp(1, n.max(1));
    let (mut p_y, mut q_y) = (vec![0.0; n * kk], vec![0.0; n * kk]);
    let mut start = 0;
    while start < n {
        let nimg = per_group.min(n - start);
        let s_per_chunk = (chunk_rows / nimg).clamp(1, samples);
        let range = start * kk..(start + nimg) * kk;
        let mut done = 0;
        while done < samples {
            let s = s_per_chunk.min(samples - done);
            let mut g = model.inference_graph();
            let xv = g.constant(x.rows_range(start, nimg));
            let (lq, lp) = model.class_chunk(&mut g, xv, s, noise);
            let (lq, lp) = (g.value(lq).to_f64_vec(), g.value(lp).to_f64_vec());
            let (pq, pp) = (&mut q_y[range.clone()], &mut p_y[range.clone()]);
            accumulate_class_probs(&lq, &lp, s, nimg, kk, IwEstimator::SumY, pq, pp);
            done += s;
        }
        p_y[range.clone()].iter_mut().chain(q_y[range].iter_mut()).for_each(|v| *v /= samples as f64);
        start += nimg;
        progress(start);
    }
    (p_y, q_y)
}

/// Posterior means E[z1|x] (N × z1) and E[z2|x] (N × z2) of the rows of `x`, in batches of 500
/// (what `latent` plots and `encode` writes). `progress(done)` counts images.
pub fn posterior_means<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    progress: &mut dyn FnMut(usize),
) -> (Vec<f64>, Vec<f64>) {
    let n = x.rows();
    let (mut z1, mut z2) = (Vec::new(), Vec::new());
    let chunk = 500;
    for start in (0..n).step_by(chunk) {
        let b = chunk.min(n - start);
        let (m1, m2) = model.latent_means(&x.rows_range(start, b));
        z1.extend(m1);
        z2.extend(m2);
        progress(start + b);
    }
    (z1, z2)
}

/// `n` row indices of a set with these labels, spread over the classes: taken in turn from each
/// class (in index order within a class) so that every class is represented as evenly as the
/// counts allow, returned in ascending order. Unlabelled rows form a group of their own; with no
/// labels at all the rows are evenly spaced. OMNIGLOT's and many users' test files are sorted by
/// class, where the first n would cover only the first classes.
pub fn spread_over_classes(labels: &[u32], n: usize) -> Vec<usize> {
    let total = labels.len();
    if n >= total {
        return (0..total).collect();
    }
    let mut groups: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i);
    }
    if groups.len() <= 1 {
        return (0..n).map(|j| j * total / n).collect();
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let mut picked = Vec::with_capacity(n);
    let mut depth = 0;
    while picked.len() < n {
        for g in &groups {
            if let Some(&i) = g.get(depth)
                && picked.len() < n
            {
                picked.push(i);
            }
        }
        depth += 1;
    }
    picked.sort_unstable();
    picked
}

/// The rows `rows` of `x`, as a new tensor on the same device.
pub fn select_rows<T: Real>(x: &Tensor<T>, rows: &[usize]) -> Tensor<T> {
    let (all, d) = (x.to_vec(), x.cols());
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        out.extend_from_slice(&all[r * d..(r + 1) * d]);
    }
    Tensor::from_slice(&x.device(), rows.len(), d, &out)
}

/// The most likely cluster of each row of an N × K matrix.
pub fn argmax_rows(p: &[f64], k: usize) -> Vec<usize> {
    p.chunks_exact(k).map(argmax).collect()
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
    evaluate_rows(model, &data.test, labels, opts, progress)
}

/// Evaluates `model` on the rows of `x` (binarised or standardised as the model needs) with
/// their `labels` (UNLABELLED where unknown; errors count the labelled rows only).
pub fn evaluate_rows<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    labels: &[u32],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> EvalReport {
    let opts = EvalOptions { stop: None, ..opts.clone() };
    evaluate_rows_until(model, x, labels, &opts, progress).expect("an evaluation without a stop flag completes")
}

/// `evaluate_rows`, stopping early (None) once `opts.stop` is raised.
pub fn evaluate_rows_until<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    labels: &[u32],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Option<EvalReport> {
    let started = Instant::now();
    let n = opts.n_test.unwrap_or(x.rows()).min(x.rows());
    let x = x.rows_range(0, n);
    let k_clusters = model.cfg.clusters;
    let (dz1, dz2) = (model.cfg.z1, model.cfg.z2);
    let jacobian = model.standardizer().map_or(0.0, |s| s.log_jacobian());
    let mut noise = NoiseStreams::new(opts.seed);
    let total = 2 * n;

    // Pass 1: ELBO, KL of z2, active units (one sample per image).
    let batch = 500usize;
    let (mut elbo_sum, mut kl_sum) = (0.0, 0.0);
    let (mut var1, mut var2) = (UnitVariance::new(dz1), UnitVariance::new(dz2));
    let mut start = 0;
    while start < n {
        let b = batch.min(n - start);
        let mut g = model.inference_graph();
        let xv = g.constant(x.rows_range(start, b));
        let t = model.elbo_terms(&mut g, BnUse::Eval, xv, ObjectiveDeviations::default(), &mut noise);
        let get = |v| g.value(v).to_f64_vec();
        let (recon, neg_kl, qy, mu1, mu2, lv2) =
            (get(t.recon), get(t.neg_kl), get(t.qy), get(t.mu1), get(t.mu2), get(t.logvar2));
        for i in 0..b {
            elbo_sum += recon[i] + neg_kl[i] + jacobian;
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
        if stopped(opts) {
            return None;
        }
    }

    // Pass 2: the IW-k bound and the classifiers.
    let iw = iw_per_example(model, &x, opts, &mut noise, &mut |done| progress(n + done, total));
    if stopped(opts) {
        return None;
    }
    // Pass 3: routing, separation, clusters used (after the IW pass: its noise is unchanged).
    let clusters = crate::clusters::cluster_report(model, &x, &labels[..n], batch, &mut noise);
    let k = opts.k.max(1);
    let ll_sum: f64 = iw.log_likelihood.iter().sum();
    let (predicted_p, predicted_q) = (argmax_rows(&iw.p_y, k_clusters), argmax_rows(&iw.q_y, k_clusters));
    let nf = n.max(1) as f64;
    let error =
        |predicted: &[usize]| classification_error(predicted, &labels[..n], k_clusters, opts.clusters_are_classes);
    Some(EvalReport {
        iw_k: k,
        log_likelihood: ll_sum / nf,
        elbo: elbo_sum / nf,
        error_p: error(&predicted_p),
        error_q: error(&predicted_q),
        error_mapping: if opts.clusters_are_classes {
            "cluster k is class k"
        } else {
            "cluster named by its majority class"
        },
        kl_z2: kl_sum / nf,
        active_units_z1: var1.active(),
        active_units_z2: var2.active(),
        clusters,
        n_test: n,
        estimator: opts.estimator.describe(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::classification_error;

    #[test]
    fn spread_subset_covers_every_class() {
        // Sorted by class, as OMNIGLOT's test set is: 3 classes of 4, 4 and 2 rows.
        let labels = [0u32, 0, 0, 0, 1, 1, 1, 1, 2, 2];
        assert_eq!(super::spread_over_classes(&labels, 3), vec![0, 4, 8]);
        assert_eq!(super::spread_over_classes(&labels, 7), vec![0, 1, 2, 4, 5, 8, 9]);
        assert_eq!(super::spread_over_classes(&labels, 99), (0..10).collect::<Vec<_>>());
        // No labels: evenly spaced.
        assert_eq!(super::spread_over_classes(&[super::UNLABELLED; 10], 5), vec![0, 2, 4, 6, 8]);
    }

    #[test]
    fn errors_with_named_and_anonymous_clusters() {
        let truth = [0u32, 0, 1, 1, 2, 2];
        // Clusters trained as classes: cluster k must be class k.
        assert_eq!(classification_error(&[0, 0, 1, 2, 2, 2], &truth, 3, true), Some(1.0 / 6.0));
        // Anonymous clusters, permuted and one extra: each is named by its majority class.
        let predicted = [2, 2, 0, 0, 3, 1];
        assert_eq!(classification_error(&predicted, &truth, 4, true), Some(1.0));
        assert_eq!(classification_error(&predicted, &truth, 4, false), Some(0.0));
        // A cluster mixing two classes costs its minority.
        assert_eq!(classification_error(&[1, 1, 1, 0, 0, 0], &truth, 2, false), Some(2.0 / 6.0));
        // Unlabelled examples do not count; none labelled: no error rate.
        let u = super::UNLABELLED;
        assert_eq!(classification_error(&[0, 1, 1], &[0, u, 0], 2, true), Some(0.5));
        assert_eq!(classification_error(&[0, 1], &[u, u], 2, true), None);
    }
}
