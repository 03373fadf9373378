//! Which data set a command reads.

use std::path::Path;

use cagem::data::{Dataset, mnist, omniglot};
use cagem::{Error, Result};

/// Loads `dataset` from `dir`, or from the copy bundled in the binary.
pub fn load(dataset: &str, dir: Option<&Path>) -> Result<Dataset> {
    match (dataset, dir) {
        ("mnist", None) => mnist::bundled(),
        ("mnist", Some(d)) => mnist::from_dir(d),
        ("omniglot", None) => omniglot::bundled(),
        ("omniglot", Some(d)) => omniglot::from_dir(d),
        (other, _) => Err(Error::config(format!("unknown data set '{other}' (expected mnist or omniglot)"))),
    }
}
