//! The Cluster-aware Generative Model and its objective.

pub mod cagem;
pub mod generate;
pub mod noise;
pub mod objective;
pub mod sigma_floor;

pub use cagem::{Cagem, ElboTerms, IwChunk, IwEstimator, LabelledElboTerms, LogPySums};
pub use generate::{ClusterChoice, Generated, RoutingView};
pub use noise::NoiseStreams;
pub use objective::{LossWeights, StepLosses, semi_supervised_loss};
