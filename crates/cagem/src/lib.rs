//! # cagem
//!
//! The Cluster-aware Generative Model (Maaløe, Fraccaro, Winther) as a library: data, networks,
//! the semi-supervised objective, training with checkpoints, and evaluation by the
//! importance-weighted bound. Runs on any `cagem-kernels` device (CPU, or CUDA with the `cuda`
//! feature).
//!
//! Where to start:
//! - [`ModelConfig`] and [`TrainConfig`] (the paper's model and schedule by default), and a
//!   [`data::Dataset`] (MNIST bundled, OMNIGLOT, NumPy folders, or arrays you fill in);
//! - [`train::open_run`] opens a run folder (fresh or resumed) and [`train::Run::train`] trains it;
//! - [`checkpoint::load`] loads a trained model; [`eval`] scores it (IW-k bound, both
//!   classifiers, posterior means) and [`clusters`] says whether z2 holds the clusters;
//! - [`model::Cagem`] is the model itself: `elbo_terms`, `classifier_terms`, `iw_chunk`.
//!
//! `examples/fit_predict.rs` trains on arrays in memory and predicts in sixty lines; the design
//! (the paper's equations mapped to functions) is `docs/design.md` in the repository.

pub mod atomic;
pub mod checkpoint;
pub mod clusters;
pub mod config;
pub mod data;
pub mod defaults;
pub mod deviation;
pub mod error;
pub mod eval;
pub mod model;
pub mod nn;
pub mod precision;
pub mod recipe;
pub mod sizing;
pub mod timing;
pub mod train;

pub use config::{Likelihood, ModelConfig, TrainConfig};
pub use error::{Error, Result};
pub use model::{Cagem, NoiseStreams};
