//! # cagem-report
//!
//! What cagem shows people rather than computes: learning curves of run folders (`curves`),
//! pictures of samples, reconstructions and latent spaces (`pictures`, `pca`), NumPy `.npz` and
//! CSV exports of predictions (`export`), and the paper's reported figures to stand beside ours
//! (`paper`). Kept out of the model library so that a program that only trains and predicts does
//! not compile plotters, png, zip or nalgebra.

pub mod curves;
pub mod export;
pub mod paper;
pub mod pca;
pub mod pictures;
