//! The differentiable ops, grouped by family. Each file adds methods to [`Graph`] (the forward
//! pass, recording the op) and defines the op's [`Backward`] next to it.
//!
//! [`Graph`]: crate::Graph
//! [`Backward`]: crate::Backward

pub mod batchnorm;
pub(crate) mod bf16;
pub mod broadcast;
pub mod density;
pub mod elementwise;
pub mod gather;
pub mod linear;
pub mod reduce;
pub mod reparam;
pub mod shape;
pub mod softmax;
