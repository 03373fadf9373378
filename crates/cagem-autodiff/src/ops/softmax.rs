//! Softmax and log-softmax over the columns of each row.

use cagem_kernels::Real;
use cagem_kernels::softmax::{backward, forward};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    pub fn softmax(&mut self, x: Var) -> Var {
        self.softmax_impl(x, false)
    }

    pub fn log_softmax(&mut self, x: Var) -> Var {
        self.softmax_impl(x, true)
    }

    fn softmax_impl(&mut self, x: Var, log: bool) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = self.alloc(rows, cols);
        forward(cols, log, self.value(x).buf(), out.buf_mut());
        self.record(out, &[x], SoftmaxBackward { x, log })
    }
}

struct SoftmaxBackward {
    x: Var,
    log: bool,
}

impl<T: Real> Backward<T> for SoftmaxBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let y = cx.output().clone();
        cx.accumulate(self.x, |dx| backward(y.cols(), self.log, g.buf(), y.buf(), dx));
    }
}
