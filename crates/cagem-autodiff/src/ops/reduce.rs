//! Reductions: logsumexp along an axis, sums along rows, totals and means, and folding repeated
//! rows back together (the adjoint of tiling).

use cagem_kernels::Real;
use cagem_kernels::broadcast::{fold_rows, row_sums, tile_cols, tile_rows};
use cagem_kernels::logsumexp::{self, Axis};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// log Σ exp along `axis`: `AlongRow` gives rows × 1, `DownColumn` gives 1 × cols.
    pub fn logsumexp(&mut self, x: Var, axis: Axis) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = match axis {
            Axis::AlongRow => self.alloc(rows, 1),
            Axis::DownColumn => self.alloc(1, cols),
        };
        logsumexp::forward(rows, cols, axis, self.value(x).buf(), out.buf_mut());
        self.record(out, &[x], LogSumExpBackward { x, axis })
    }

    /// Σ over each row's columns: rows × 1.
    pub fn sum_rows(&mut self, x: Var) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = self.alloc(rows, 1);
        row_sums(cols, self.value(x).buf(), out.buf_mut());
        self.record(out, &[x], SumRowsBackward { x, scale: T::one() })
    }

    /// Σ of all elements: 1 × 1.
    pub fn sum(&mut self, x: Var) -> Var {
        let (rows, cols) = self.shape(x);
        let flat = self.reshape(x, 1, rows * cols);
        self.sum_rows(flat)
    }

    /// Mean of all elements: 1 × 1.
    pub fn mean(&mut self, x: Var) -> Var {
        let (rows, cols) = self.shape(x);
        let s = self.sum(x);
        self.scale(s, T::one() / T::c((rows * cols) as f64))
    }

    /// Sums rows r ≡ j (mod `period`) into row j: (period × cols). The adjoint of tile_rows; with
    /// period 1, the column sums.
    pub fn fold_rows(&mut self, x: Var, period: usize) -> Var {
        let (rows, cols) = self.shape(x);
        assert!(period > 0 && rows % period == 0, "fold_rows: period {period} does not divide {rows} rows");
        let mut out = self.alloc(period, cols);
        fold_rows(cols, self.value(x).buf(), cagem_kernels::GradOut::new(out.buf_mut(), false));
        self.record(out, &[x], FoldRowsBackward { x })
    }
}

struct LogSumExpBackward {
    x: Var,
    axis: Axis,
}

impl<T: Real> Backward<T> for LogSumExpBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let (x, lse) = (cx.value(self.x).clone(), cx.output().clone());
        let (rows, cols) = x.shape();
        cx.accumulate(self.x, |dx| logsumexp::backward(rows, cols, self.axis, g.buf(), x.buf(), lse.buf(), dx));
    }
}

struct SumRowsBackward<T> {
    x: Var,
    scale: T,
}

impl<T: Real> Backward<T> for SumRowsBackward<T> {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let cols = cx.value(self.x).cols();
        cx.accumulate(self.x, |dx| tile_cols(cols, g.buf(), self.scale, dx));
    }
}

struct FoldRowsBackward {
    x: Var,
}

impl<T: Real> Backward<T> for FoldRowsBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.accumulate(self.x, |dx| tile_rows(g.cols(), g.buf(), T::one(), dx));
    }
}
