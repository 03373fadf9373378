//! Indexed rows and entries. `gather_add_rows` is the first layer of a y-conditioned network:
//! the y-independent part a (one row per example) plus the weight row of each row's cluster,
//! `W·[c; onehot(y)] = a + W_y[y]`, never a product with a one-hot matrix. `pick` reads one entry
//! per row, such as log p(y = k | z2) on the row of cluster k.

use std::sync::Arc;

use cagem_kernels::gather::{gather_add_rows, pick, pick_backward, scatter_add_rows, scatter_add_rows_bf16};
use cagem_kernels::{Indices, Real};

use super::broadcast::fold_grad_rows;
use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// `out[r] = a[r mod rows(a)] + table[idx[r]]`: rows = idx.len().
    pub fn gather_add_rows(&mut self, a: Var, table: Var, idx: &Arc<Indices>) -> Var {
        let cols = self.shape(a).1;
        assert_eq!(self.shape(table).1, cols, "gather_add_rows: widths differ");
        let mut out = self.alloc(idx.len(), cols);
        gather_add_rows(cols, self.value(a).buf(), self.value(table).buf(), idx, out.buf_mut());
        // The gradient passes to `a` (folded over its repeats): if a's producer reads it only as
        // bf16, so can this.
        let bf16_grad = self.bf16_products() && self.grad_read_as_bf16_only(a);
        self.record(out, &[a, table], GatherAddBackward { a, table, idx: idx.clone(), bf16_grad })
    }

    /// `out[r] = x[r, idx[r]]`: rows × 1.
    pub fn pick(&mut self, x: Var, idx: &Arc<Indices>) -> Var {
        let (rows, cols) = self.shape(x);
        assert_eq!(idx.len(), rows, "pick: {} indices for {rows} rows", idx.len());
        let mut out = self.alloc(rows, 1);
        pick(cols, self.value(x).buf(), idx, out.buf_mut());
        self.record(out, &[x], PickBackward { x, idx: idx.clone() })
    }
}

struct GatherAddBackward {
    a: Var,
    table: Var,
    idx: Arc<Indices>,
    /// g may come only as bf16 (under bf16 products, when a's producer reads it only so).
    bf16_grad: bool,
}

impl<T: Real> Backward<T> for GatherAddBackward {
    fn reads_grad_as_bf16_only(&self) -> bool {
        self.bf16_grad
    }

    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let cols = g.cols();
        if cx.value(self.a).rows() == g.rows() {
            cx.pass(self.a, g);
        } else {
            cx.accumulate(self.a, |da| fold_grad_rows(g, da));
        }
        // A bf16-only g is summed as bf16 values in f32, as a bf16 product with one-hot rows would.
        cx.accumulate(self.table, |dt| match g.bf16_only() {
            Some(h) => scatter_add_rows_bf16(cols, h, &self.idx, dt),
            None => scatter_add_rows(cols, g.buf(), &self.idx, dt),
        });
    }
}

struct PickBackward {
    x: Var,
    idx: Arc<Indices>,
}

impl<T: Real> Backward<T> for PickBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let cols = cx.value(self.x).cols();
        cx.accumulate(self.x, |dx| pick_backward(cols, g.buf(), &self.idx, dx));
    }
}
