//! Whether z2 holds the clusters (issue 28): three figures on a set of images.
//! - *Routing*: over every image and cluster k, with z1 = mean of q(z1|x) and z2 = mean of
//!   q(z2|x,k,z1), the fraction where argmax p(y|z2) = k. 1: z2 carries the y it is given, so
//!   p(y|x) = Σ_k q(k|x) p(y|z2_k) follows q(y|x); 1/K: z2 ignores it. *Sampled routing*: the
//!   same with z1 and z2 drawn from q, as p(y|x) sees them.
//! - *z2 class separation*: the share of the variance of E[z2|x] explained by a grouping,
//!   between-group over total (0: groups mixed; 1: one point per group): by the true class where
//!   images have labels, and by argmax q(y|x).
//! - *Clusters used*: how many clusters are argmax q(y|x) for at least 1 % of the images, and
//!   exp(entropy) of the mean q(y|x) (K when all are used alike, 1 when one takes everything).
//!
//! q(y|x) here is q(y|z1,x) at z1 = mean of q(z1|x).

use cagem_autodiff::{Real, Tensor};
use serde::Serialize;

use crate::data::UNLABELLED;
use crate::model::{Cagem, NoiseStreams};

/// The share of images a cluster must take (as argmax q(y|x)) to count as used.
pub const USED_SHARE: f64 = 0.01;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterReport {
    pub routing: f64,
    pub routing_sampled: f64,
    /// Routing at the posterior means weighted by q(k|x): the share of the branches p(y|x)
    /// actually reads whose p(y|z2) puts its maximum on their own k.
    pub routing_q_weighted: f64,
    /// Routing at the posterior means of each cluster k alone (over the images).
    pub routing_by_cluster: Vec<f64>,
    /// By the true class (None: no image has a label).
    pub z2_separation: Option<f64>,
    /// By argmax q(y|x).
    pub z2_separation_by_q: f64,
    pub clusters_used: usize,
    pub clusters_perplexity: f64,
}

/// The fraction of (image, cluster k) rows whose most likely y is k, from log p(y|z2) laid out
/// K·N × K (row k·N + n). Ties count as misses unless k is the first maximum.
pub fn routing_hits(log_py: &[f64], k: usize, n: usize) -> usize {
    assert_eq!(log_py.len(), k * n * k, "routing: {} values for {k}·{n} rows of {k}", log_py.len());
    log_py.chunks_exact(k).enumerate().filter(|(r, row)| argmax(row) == r / n).count()
}

/// Between-group over total variance of the rows of `z` (N × d), grouped by `groups` (None:
/// the row is left out). None where fewer than two rows count or the rows do not vary.
pub fn separation(z: &[f64], d: usize, groups: &[Option<usize>]) -> Option<f64> {
    let rows: Vec<(usize, &[f64])> = z.chunks_exact(d).zip(groups).filter_map(|(r, g)| g.map(|g| (g, r))).collect();
    if rows.len() < 2 {
        return None;
    }
    let n = rows.len() as f64;
    let mut mean = vec![0.0; d];
    let mut by_group: std::collections::BTreeMap<usize, (f64, Vec<f64>)> = Default::default();
    for (g, r) in &rows {
        let e = by_group.entry(*g).or_insert_with(|| (0.0, vec![0.0; d]));
        e.0 += 1.0;
        for j in 0..d {
            e.1[j] += r[j];
            mean[j] += r[j] / n;
        }
    }
    let total: f64 = rows.iter().map(|(_, r)| r.iter().zip(&mean).map(|(a, m)| (a - m).powi(2)).sum::<f64>()).sum();
    let between: f64 =
        by_group.values().map(|(c, s)| c * s.iter().zip(&mean).map(|(s, m)| (s / c - m).powi(2)).sum::<f64>()).sum();
    (total > 0.0).then(|| between / total)
}

/// Clusters that are argmax of at least `USED_SHARE` of the rows of `q_y` (N × K), and
/// exp(entropy) of the mean row.
pub fn clusters_used(q_y: &[f64], k: usize) -> (usize, f64) {
    let n = (q_y.len() / k.max(1)).max(1) as f64;
    let mut wins = vec![0usize; k];
    let mut mean = vec![0.0; k];
    for row in q_y.chunks_exact(k) {
        wins[argmax(row)] += 1;
        for (m, q) in mean.iter_mut().zip(row) {
            *m += q / n;
        }
    }
    let used = wins.iter().filter(|&&w| w as f64 >= USED_SHARE * n).count();
    let entropy: f64 = mean.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum();
    (used, entropy.exp())
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap_or(0)
}

/// The three figures for the rows of `x` (binarised or standardised as the model needs) with
/// their `labels` (UNLABELLED where unknown), in batches of `batch` images.
pub fn cluster_report<T: Real>(
    model: &mut Cagem<T>,
    x: &Tensor<T>,
    labels: &[u32],
    batch: usize,
    noise: &mut NoiseStreams,
) -> ClusterReport {
    let (n, k, dz2) = (x.rows(), model.cfg.clusters, model.cfg.z2);
    let (mut hits, mut hits_sampled) = (0usize, 0usize);
    let (mut q_weighted, mut by_cluster) = (0.0, vec![0usize; k]);
    let (mut q_y, mut z2) = (Vec::with_capacity(n * k), Vec::with_capacity(n * dz2));
    for start in (0..n).step_by(batch.max(1)) {
        let b = batch.max(1).min(n - start);
        let xb = x.rows_range(start, b);
        let view = model.routing_view(&xb);
        hits += routing_hits(&view.log_py, k, b);
        for (r, row) in view.log_py.chunks_exact(k).enumerate() {
            let (cluster, image) = (r / b, r % b);
            if argmax(row) == cluster {
                by_cluster[cluster] += 1;
                q_weighted += view.q_y[image * k + cluster];
            }
        }
        q_y.extend(view.q_y);
        z2.extend(view.z2_mean);
        let mut g = model.inference_graph();
        let xv = g.constant(xb);
        let (_, lp) = model.class_chunk(&mut g, xv, 1, noise);
        hits_sampled += routing_hits(&g.value(lp).to_f64_vec(), k, b);
    }
    let rows = (n * k).max(1) as f64;
    let by_class: Vec<Option<usize>> =
        labels.iter().take(n).map(|&l| (l != UNLABELLED).then_some(l as usize)).collect();
    let by_q: Vec<Option<usize>> = q_y.chunks_exact(k).map(|r| Some(argmax(r))).collect();
    let (used, perplexity) = clusters_used(&q_y, k);
    ClusterReport {
        routing: hits as f64 / rows,
        routing_sampled: hits_sampled as f64 / rows,
        routing_q_weighted: q_weighted / n.max(1) as f64,
        routing_by_cluster: by_cluster.iter().map(|&h| h as f64 / n.max(1) as f64).collect(),
        z2_separation: separation(&z2, dz2, &by_class),
        z2_separation_by_q: separation(&z2, dz2, &by_q).unwrap_or(0.0),
        clusters_used: used,
        clusters_perplexity: perplexity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_counts_rows_that_read_back_their_cluster() {
        // K = 2, N = 2: rows (k=0,n=0) (k=0,n=1) (k=1,n=0) (k=1,n=1).
        let lp = [0.0, -1.0, -1.0, 0.0, -1.0, 0.0, 0.0, -1.0];
        assert_eq!(routing_hits(&lp, 2, 2), 2);
    }

    #[test]
    fn separation_is_one_for_points_and_zero_for_mixed_groups() {
        let z = [0.0, 0.0, 0.0, 0.0, 3.0, 1.0, 3.0, 1.0];
        assert_eq!(separation(&z, 2, &[Some(0), Some(0), Some(1), Some(1)]), Some(1.0));
        assert_eq!(separation(&z, 2, &[Some(0), Some(1), Some(0), Some(1)]), Some(0.0));
        assert_eq!(separation(&z, 2, &[None, None, None, Some(1)]), None);
        let s = separation(&[0.0, 1.0, 2.0, 3.0], 1, &[Some(0), Some(0), Some(1), Some(1)]).unwrap();
        assert!((s - 0.8).abs() < 1e-12, "{s}"); // between 4·1 = 4, total 5
    }

    #[test]
    fn clusters_used_counts_winners_and_the_perplexity_of_the_mean() {
        let q = [0.9, 0.1, 0.0, 0.1, 0.9, 0.0];
        let (used, perplexity) = clusters_used(&q, 3);
        assert_eq!(used, 2);
        assert!((perplexity - 2.0).abs() < 1e-12, "{perplexity}");
        let (used, perplexity) = clusters_used(&[1.0, 0.0, 1.0, 0.0], 2);
        assert_eq!((used, perplexity), (1, 1.0));
    }
}
