//! The training state a checkpoint carries besides the weights: where the run stands, the
//! positions of its random streams, and the sums of an interrupted epoch.

use serde::{Deserialize, Serialize};

use crate::model::NoiseStreams;
use crate::train::best::Best;

/// Everything besides weights that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub steps_done: u64,
    pub adam_t: u64,
    /// The device noise streams (binarisation, reparameterisation).
    pub noise: NoiseStreams,
    /// Words drawn from the example-order generator.
    pub order_rng_drawn: u64,
    /// Words drawn from the labelled-order generator, the current labelled order and position.
    pub label_rng_drawn: u64,
    pub label_order: Vec<u32>,
    pub label_cursor: usize,
    /// Training-set indices of the labelled subset.
    pub labelled: Vec<u32>,
    /// Wall-clock seconds spent training so far.
    pub seconds: f64,
    /// What each resume changed ({"epoch": epochs done, "changes": {option: {"from", "to"}}}),
    /// shown in config.json.
    #[serde(default)]
    pub history: Vec<serde_json::Value>,
    /// Steps skipped so far for a non-finite loss or gradient, and how many of the latest were.
    #[serde(default)]
    pub skipped_steps: u64,
    #[serde(default)]
    pub consecutive_skips: usize,
    /// Steps done of the epoch in progress (0 at an epoch's end), and its running sums: a run
    /// interrupted mid-epoch resumes at the next step.
    #[serde(default)]
    pub epoch_step: usize,
    #[serde(default)]
    pub partial: Option<EpochSums>,
    /// The metrics line of the last finished epoch (restored on resume if it never reached
    /// metrics.jsonl).
    #[serde(default)]
    pub last_record: Option<serde_json::Value>,
    /// Where the checkpoint was computed: bit-for-bit continuation needs the same device and
    /// thread count.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub threads: Option<usize>,
    /// The periodic evaluation of the last finished epoch was interrupted: the resume redoes it
    /// before training on, so that no epoch loses its test figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_eval: bool,
    /// The best validation evaluation so far (runs with --valid-fraction), whose weights are in
    /// best.safetensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
}

/// Sums over the steps of an epoch so far, for its metrics line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub loss: f64,
    pub elbo: f64,
    pub recon: f64,
    pub neg_kl: f64,
    pub hp: f64,
    pub hq: f64,
    pub skipped: usize,
    /// Wall-clock seconds of the epoch before an interruption.
    pub seconds: f64,
}
