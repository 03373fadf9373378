//! z = μ + exp(λ/2)·ε with in-kernel Philox noise (see `cagem_kernels::reparam`).

use cagem_kernels::{Real, RngStream, reparam};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// A reparameterised sample with `rows` rows; μ and λ may have fewer rows (a divisor), each
    /// then shared by the rows r ≡ j (mod their rows).
    pub fn reparameterize(&mut self, mu: Var, logvar: Var, rows: usize, stream: RngStream) -> Var {
        let cols = self.shape(mu).1;
        assert_eq!(self.shape(logvar).1, cols, "reparameterize: widths differ");
        let mut z = self.alloc(rows, cols);
        reparam::forward(cols, self.value(mu).buf(), self.value(logvar).buf(), stream, z.buf_mut());
        self.record(z, &[mu, logvar], ReparamBackward { mu, logvar })
    }
}

struct ReparamBackward {
    mu: Var,
    logvar: Var,
}

impl<T: Real> Backward<T> for ReparamBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let cols = g.cols();
        let (z, mu, lv) = (cx.output().clone(), cx.value(self.mu).clone(), cx.value(self.logvar).clone());
        let mut smu = cx.slot(self.mu);
        let mut slv = cx.slot(self.logvar);
        reparam::backward(
            cols,
            g.buf(),
            z.buf(),
            mu.buf(),
            lv.buf(),
            smu.as_mut().map(|s| s.out()),
            slv.as_mut().map(|s| s.out()),
        );
        cx.put(smu);
        cx.put(slv);
    }
}
