//! Principal components of a point cloud: the covariance's eigenvectors, by nalgebra's symmetric
//! eigen-decomposition.

use nalgebra::{DMatrix, SymmetricEigen};

/// Projection of n points of dimension d (row-major) on their first two principal components,
/// and the fraction of the variance each explains.
pub fn pca2(data: &[f64], d: usize) -> (Vec<[f64; 2]>, [f64; 2]) {
    let n = data.len() / d.max(1);
    let mean: Vec<f64> = (0..d).map(|j| (0..n).map(|i| data[i * d + j]).sum::<f64>() / n.max(1) as f64).collect();
    let centred = DMatrix::from_fn(n, d, |i, j| data[i * d + j] - mean[j]);
    let cov = centred.transpose() * &centred / (n.max(2) as f64 - 1.0);
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let total: f64 = eig.eigenvalues.iter().map(|v| v.max(0.0)).sum::<f64>().max(1e-300);
    let component = |k: usize| -> Vec<f64> {
        if k < d { eig.eigenvectors.column(order[k]).iter().copied().collect() } else { vec![0.0; d] }
    };
    let (p1, p2) = (component(0), component(1));
    let proj = (0..n)
        .map(|i| {
            let row = centred.row(i);
            let dot = |p: &[f64]| row.iter().zip(p).map(|(a, b)| a * b).sum::<f64>();
            [dot(&p1), dot(&p2)]
        })
        .collect();
    let var = |k: usize| if k < d { eig.eigenvalues[order[k]].max(0.0) / total } else { 0.0 };
    (proj, [var(0), var(1)])
}
