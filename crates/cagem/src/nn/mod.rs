//! Network pieces: parameter initialisation, batch norm as a layer, the two-layer block every
//! distribution uses (Dense → BN → ReLU → Dense → BN → ReLU, docs/design.md §1), and output heads.

pub mod block;
pub mod heads;
pub mod init;

pub use block::{BatchNorm, Block, BnUse, Fwd};
pub use heads::{GaussianHead, Linear};
