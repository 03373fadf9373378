//! # cagem-autodiff
//!
//! Reverse-mode automatic differentiation over `cagem-kernels`, small enough to read in one
//! sitting: [`Tensor`] (a matrix on a device), [`Graph`] (the tape: ops record their outputs and
//! backward objects; `backward` sweeps them in reverse), [`ParamStore`] (named parameters and
//! state) and [`Adam`].
//!
//! ```
//! use cagem_autodiff::{Graph, Tensor};
//! use cagem_kernels::Device;
//! let dev = Device::Cpu;
//! let mut g = Graph::<f64>::new(&dev);
//! let x = g.leaf(Tensor::from_f64(&dev, 1, 2, &[1.0, 2.0]), true);
//! let w = g.leaf(Tensor::from_f64(&dev, 2, 1, &[3.0, 4.0]), true);
//! let y = g.matmul(x, w); // 1·3 + 2·4 = 11
//! let grads = g.backward(y);
//! assert_eq!(grads.wrt(x).unwrap().to_f64_vec(), vec![3.0, 4.0]);
//! assert_eq!(grads.wrt(w).unwrap().to_f64_vec(), vec![1.0, 2.0]);
//! ```

pub mod adam;
pub mod graph;
pub mod ops;
pub mod param;
pub mod profile;
pub mod tensor;

pub use adam::{Adam, StepOutcome};
pub use graph::{Backward, BackwardCx, Gradients, Graph, Var};
pub use ops::batchnorm::BnMode;
pub use param::{ParamEntry, ParamId, ParamStore};
pub use tensor::Tensor;

pub use cagem_kernels::logsumexp::Axis;
pub use cagem_kernels::{Device, Indices, Real, RngStream};
