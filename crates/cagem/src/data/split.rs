//! Holding out part of the training set (`--valid-fraction`): as the test set for data that
//! comes without one, or as a validation split beside the data's own test set. The split is
//! drawn with the run's seed, so every command on the run sees the same held-out examples (the
//! same ones in both cases).

use cagem_kernels::rng::HostRng;

use super::Dataset;
use crate::error::{Error, Result};

/// Stream of the seed's generator that chooses the held-out examples.
pub const VALID_STREAM: u64 = 0x0056_414c_4944; // "VALID"

/// `data` with ⌈fraction·N⌉ training examples moved, in their original order, to the test set.
pub fn hold_out(data: &Dataset, fraction: f64, seed: u64) -> Result<Dataset> {
    check_fraction(fraction)?;
    if data.n_test() > 0 {
        return Err(Error::config(format!(
            "--valid-fraction holds out a test set, but {} already has {} test examples",
            data.provenance,
            data.n_test()
        )));
    }
    let held = held_rows(data.n_train(), fraction, seed)?;
    Ok(moved_to_test(data, &held, seed))
}

fn check_fraction(fraction: f64) -> Result<()> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::config(format!("--valid-fraction {fraction} must lie strictly between 0 and 1")));
    }
    Ok(())
}

/// Which of `n` training rows ⌈fraction·n⌉ are held out, drawn with `seed` (the fraction checked).
fn held_rows(n: usize, fraction: f64, seed: u64) -> Result<Vec<bool>> {
    let n_valid = ((fraction * n as f64).ceil() as usize).min(n);
    if n_valid == 0 || n_valid == n {
        return Err(Error::config(format!(
            "--valid-fraction {fraction} of {n} examples leaves no training or no held-out example"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    HostRng::new(seed, VALID_STREAM).shuffle(&mut order);
    let mut held = vec![false; n];
    order[..n_valid].iter().for_each(|&i| held[i] = true);
    Ok(held)
}

/// A validation split beside the data's own test set: `data` without the held-out training rows
/// (its test set untouched), and the held-out rows as the test rows of a set with no training
/// rows. The rows are those `hold_out` would choose.
pub fn split_valid(data: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    check_fraction(fraction)?;
    let held = held_rows(data.n_train(), fraction, seed)?;
    let moved =
        moved_to_test(&Dataset { test_images: Vec::new(), test_labels: Vec::new(), ..data.clone() }, &held, seed);
    let n_valid = moved.n_test();
    let valid = moved.truncated(0, n_valid);
    let train = Dataset {
        test_images: data.test_images.clone(),
        test_labels: data.test_labels.clone(),
        test_values: data.test_values.clone(),
        provenance: format!(
            "{} ({n_valid} of {} training examples held out for validation, seed {seed})",
            data.provenance,
            data.n_train()
        ),
        ..moved
    };
    Ok((train, valid))
}

/// `data` (without a test set) with the `held` training rows moved, in order, to the test set.
fn moved_to_test(data: &Dataset, held: &[bool], seed: u64) -> Dataset {
    let n = data.n_train();
    let n_valid = held.iter().filter(|&&h| h).count();
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
    out
}
