//! Data sets: MNIST (bundled in the binary, checked by sha256; or any folder holding the four
//! MNIST-format files), OMNIGLOT, a folder of NumPy arrays (the user's own data), the balanced
//! labelled subset, and per-batch dynamic binarisation on the compute device.

pub mod batches;
mod dataset;
pub mod diagnose;
pub mod idx;
pub mod labelled;
pub mod mnist;
pub mod npy;
pub mod omniglot;
pub mod split;
pub mod standardize;

pub use batches::{DeviceData, eval_rows};
pub use dataset::{Dataset, UNLABELLED, probabilities};
pub use labelled::balanced_subset;
pub use standardize::Standardizer;
