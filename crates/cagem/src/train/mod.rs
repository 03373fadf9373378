//! Training: one step (unlabelled batch + labelled batch, Adam), epochs with the learning-rate
//! schedule and KL warm-up, per-epoch metrics and checkpoints, and exact resumption.

pub mod best;
pub mod lock;
pub mod metrics;
pub mod run;
pub mod step;

pub use crate::checkpoint::{EpochSums, TrainState};
pub use run::{EpochReport, Observer, Run, StepReport, open_run};
pub use step::{StepScalars, train_step};
