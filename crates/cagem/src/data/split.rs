//! Holding out part of the training set as the test set (`--valid-fraction`), for data that
//! comes without one. The split is drawn with the run's seed, so every command on the run sees
//! the same held-out examples.

use cagem_kernels::rng::HostRng;

use super::Dataset;
use crate::error::{Error, Result};

/// Stream of the seed's generator that chooses the held-out examples.
pub const VALID_STREAM: u64 = 0x0056_414c_4944; // "VALID"

/// `data` with ⌈fraction·N⌉ training examples moved, in their original order, to the test set.
pub fn hold_out(data: &Dataset, fraction: f64, seed: u64) -> Result<Dataset> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::config(format!("--valid-fraction {fraction} must lie strictly between 0 and 1")));
    }
    if data.n_test() > 0 {
        return Err(Error::config(format!(
            "--valid-fraction holds out a test set, but {} already has {} test examples",
            data.provenance,
            data.n_test()
        )));
    }
    let n = data.n_train();
    let n_valid = ((fraction * n as f64).ceil() as usize).min(n);
    if n_valid == 0 || n_valid == n {
        return Err(Error::config(format!(
            "--valid-fraction {fraction} of {n} examples leaves no training or no test example"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    HostRng::new(seed, VALID_STREAM).shuffle(&mut order);
    let mut held = vec![false; n];
    order[..n_valid].iter().for_each(|&i| held[i] = true);
    let d = data.dim();
    let mut out = Dataset {
        train_images: Vec::new(),
        train_labels: Vec::new(),
        test_images: Vec::new(),
        test_labels: Vec::new(),
        train_values: data.train_values.as_ref().map(|_| Vec::new()),
        test_values: data.train_values.as_ref().map(|_| Vec::new()),
        provenance: format!(
            "{} ({n_valid} of {n} training examples held out as the test set, seed {seed})",
            data.provenance
        ),
        ..data.clone()
    };
    for i in 0..n {
        let (images, labels, values) = if held[i] {
            (&mut out.test_images, &mut out.test_labels, out.test_values.as_mut())
        } else {
            (&mut out.train_images, &mut out.train_labels, out.train_values.as_mut())
        };
        labels.push(data.train_labels[i]);
        match (values, &data.train_values) {
            (Some(v), Some(src)) => v.extend_from_slice(&src[i * d..(i + 1) * d]),
            _ => images.extend_from_slice(&data.train_images[i * d..(i + 1) * d]),
        }
    }
    Ok(out)
}
