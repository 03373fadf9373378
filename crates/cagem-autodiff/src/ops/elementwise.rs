//! Elementwise arithmetic on tensors of one shape, and scaling by a constant.

use cagem_kernels::Real;
use cagem_kernels::elementwise::{BinaryOp, binary, mul_into, scale_into};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn binary(&mut self, op: BinaryOp, a: Var, b: Var) -> Var {
        let shape = self.shape(a);
        assert_eq!(shape, self.shape(b), "{op:?}: shapes differ");
        let mut out = self.alloc(shape.0, shape.1);
        binary(op, self.value(a).buf(), self.value(b).buf(), out.buf_mut());
        self.record(out, &[a, b], BinaryBackward { op, a, b })
    }

    /// s·x.
    pub fn scale(&mut self, x: Var, s: T) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = self.alloc(rows, cols);
        scale_into(self.value(x).buf(), s, cagem_kernels::GradOut::new(out.buf_mut(), false));
        self.record(out, &[x], ScaleBackward { x, s })
    }
}

struct BinaryBackward {
    op: BinaryOp,
    a: Var,
    b: Var,
}

impl<T: Real> Backward<T> for BinaryBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        match self.op {
            BinaryOp::Add | BinaryOp::Sub => {
                let sb = if self.op == BinaryOp::Add { T::one() } else { -T::one() };
                cx.pass(self.a, g);
                cx.accumulate(self.b, |db| scale_into(g.buf(), sb, db));
            }
            BinaryOp::Mul => {
                let (av, bv) = (cx.value(self.a).clone(), cx.value(self.b).clone());
                cx.accumulate(self.a, |da| mul_into(g.buf(), bv.buf(), T::one(), da));
                cx.accumulate(self.b, |db| mul_into(g.buf(), av.buf(), T::one(), db));
            }
        }
    }
}

struct ScaleBackward<T> {
    x: Var,
    s: T,
}

impl<T: Real> Backward<T> for ScaleBackward<T> {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.accumulate(self.x, |dx| scale_into(g.buf(), self.s, dx));
    }
}
