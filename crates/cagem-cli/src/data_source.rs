//! Which data set a command reads.

use std::path::Path;

use cagem::data::{Dataset, mnist, npy, omniglot, split};
use cagem::{Error, Likelihood, ModelConfig, Result, TrainConfig};

/// Loads `dataset` from `dir`, or from the copy bundled in the binary, for a model with
/// `likelihood` (which decides the value range NumPy data must have).
pub fn load_with(dataset: &str, dir: Option<&Path>, likelihood: Likelihood) -> Result<Dataset> {
    match (dataset, dir) {
        ("mnist", None) => mnist::bundled(),
        ("mnist", Some(d)) => mnist::from_dir(d),
        ("omniglot", None) => omniglot::bundled(),
        ("omniglot", Some(d)) => omniglot::from_dir(d),
        ("npy", Some(d)) => npy::from_dir(d, likelihood),
        ("npy", None) => Err(Error::config("--dataset npy needs --data DIR (the folder with train_x.npy)")),
        (other, _) => Err(Error::config(format!("unknown data set '{other}' (expected mnist, omniglot or npy)"))),
    }
}

/// The data of a run: its data set from `dir` (default: the folder the run recorded), without
/// the run's held-out examples (--valid-fraction), which are its test set where the data has
/// none.
pub fn for_run(train: &TrainConfig, model: &ModelConfig, dir: Option<&Path>) -> Result<Dataset> {
    Ok(with_validation(train, model, dir)?.0)
}

/// `for_run`, and the validation split where it is not the test set: the held-out examples (as
/// the test rows of a set without training rows) when the data has a test set of its own.
pub fn with_validation(
    train: &TrainConfig,
    model: &ModelConfig,
    dir: Option<&Path>,
) -> Result<(Dataset, Option<Dataset>)> {
    let recorded = train.data_dir.as_deref().map(Path::new);
    let data = load_with(&train.dataset, dir.or(recorded), model.likelihood)?;
    match train.valid_fraction {
        Some(f) if data.n_test() > 0 => split::split_valid(&data, f, train.seed).map(|(t, v)| (t, Some(v))),
        Some(f) => Ok((split::hold_out(&data, f, train.seed)?, None)),
        None => Ok((data, None)),
    }
}

/// The error of an evaluation-type command on data without a test set.
pub fn no_test_set(data: &Dataset) -> Error {
    if data.name == "npy" {
        Error::config(format!(
            "{} has no test set: add test_x.npy, or train with --valid-fraction F to hold one out",
            data.provenance
        ))
    } else {
        Error::config(format!("the {} test set has no images", data.name))
    }
}
