//! Training: one step (unlabelled batch + labelled batch, Adam), epochs with the learning-rate
//! schedule and KL warm-up, per-epoch metrics and checkpoints, and exact resumption.

pub mod atomic;
pub mod best;
pub mod checkpoint;
pub mod lock;
pub mod metrics;
pub mod run;
pub mod step;

pub use run::{EpochReport, EpochSums, Observer, Run, StepReport, TrainState, open_run};
pub use step::{StepScalars, train_step};
