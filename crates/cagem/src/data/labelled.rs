//! The labelled subset: `n` examples drawn evenly across the classes with a seed, as in the
//! paper ("randomly sampled evenly across the class distribution").

use cagem_kernels::rng::HostRng;

use crate::error::{Error, Result};

/// Stream of the seed's generator used for the labelled subset (independent of other draws).
pub const LABEL_STREAM: u64 = 0x4c41_4245_4c53; // "LABELS"

/// Indices of `n` training examples, n / classes from each class, chosen with `seed`.
pub fn balanced_subset(labels: &[u32], n_classes: usize, n: usize, seed: u64) -> Result<Vec<u32>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if !n.is_multiple_of(n_classes) {
        return Err(Error::config(format!(
            "--labels {n} cannot be spread evenly over {n_classes} classes: use a multiple of {n_classes}"
        )));
    }
    let per = n / n_classes;
    let mut rng = HostRng::new(seed, LABEL_STREAM);
    let mut chosen = Vec::with_capacity(n);
    for c in 0..n_classes as u32 {
        let mut members: Vec<u32> = (0..labels.len() as u32).filter(|&i| labels[i as usize] == c).collect();
        if members.len() < per {
            return Err(Error::config(format!(
                "--labels {n} asks for {per} labelled examples of class {c}, but the training set has only {}",
                members.len()
            )));
        }
        rng.shuffle(&mut members);
        chosen.extend_from_slice(&members[..per]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}
