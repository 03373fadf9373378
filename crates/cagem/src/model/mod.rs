//! The Cluster-aware Generative Model and its objective.

pub mod cagem;
pub mod noise;
pub mod objective;

pub use cagem::{Cagem, ElboTerms, IwChunk};
pub use noise::NoiseStreams;
pub use objective::{StepLosses, semi_supervised_loss};
