//! Shape changes: reshape (no copy) and transpose.

use cagem_kernels::transpose::transpose;
use cagem_kernels::{GradOut, Real};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// The same elements with another shape.
    pub fn reshape(&mut self, x: Var, rows: usize, cols: usize) -> Var {
        let out = self.value(x).reshape(rows, cols);
        self.record(out, &[x], ReshapeBackward { x })
    }

    /// xᵀ.
    pub fn transpose(&mut self, x: Var) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = self.alloc(cols, rows);
        transpose(rows, cols, self.value(x).buf(), GradOut::new(out.buf_mut(), false));
        self.record(out, &[x], TransposeBackward { x })
    }
}

struct ReshapeBackward {
    x: Var,
}

impl<T: Real> Backward<T> for ReshapeBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.pass(self.x, g);
    }
}

struct TransposeBackward {
    x: Var,
}

impl<T: Real> Backward<T> for TransposeBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let (rows, cols) = g.shape();
        cx.accumulate(self.x, |dx| transpose(rows, cols, g.buf(), dx));
    }
}
