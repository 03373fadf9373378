//! # cagem
//!
//! The Cluster-aware Generative Model (Maaløe, Fraccaro, Winther): data, networks, the
//! semi-supervised objective, training with checkpoints, and evaluation by the
//! importance-weighted bound. Runs on any `cagem-kernels` device.

pub mod bench;
pub mod clusters;
pub mod config;
pub mod curves;
pub mod data;
pub mod deviation;
pub mod error;
pub mod eval;
pub mod export;
pub mod model;
pub mod nn;
pub mod paper;
pub mod pca;
pub mod pictures;
pub mod precision;
pub mod sizing;
pub mod train;

pub use config::{Likelihood, ModelConfig, TrainConfig};
pub use error::{Error, Result};
pub use model::{Cagem, NoiseStreams};
