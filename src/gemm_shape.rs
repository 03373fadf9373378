//! The shape of a matrix product, shared by the dispatcher (`gemm`) and its backends (the CPU
//! `gemm` crate, oneDNN, cuBLAS), which must not import the dispatcher that calls them.

/// Whether an operand is read as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    N,
    T,
}

/// The shape of one product: C[m×n] (=, or += with `accumulate`) op(A)[m×k] · op(B)[k×n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: Trans,
    pub tb: Trans,
}

impl GemmShape {
    pub fn new(m: usize, n: usize, k: usize, ta: Trans, tb: Trans) -> Self {
        GemmShape { m, n, k, ta, tb }
    }

    /// Floating-point operations of the product (2·m·n·k).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}
