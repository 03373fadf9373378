//! Streams of the counter-based generator for the model's random draws. Every draw (a batch's
//! binarisation, each reparameterised sample) takes the next stream number under the run's seed,
//! so a run is reproducible from (seed, streams used) — which is what a checkpoint stores.

use cagem_autodiff::RngStream;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseStreams {
    pub seed: u64,
    /// The next unused stream number.
    pub next: u64,
}

impl NoiseStreams {
    pub fn new(seed: u64) -> Self {
        NoiseStreams { seed, next: 0 }
    }

    pub fn take(&mut self) -> RngStream {
        let s = RngStream::new(self.seed, self.next);
        self.next += 1;
        s
    }
}
