//! Repeating rows: tiling a per-example tensor over the K clusters (or importance samples), and
//! adding a tensor with fewer rows to one with more.

use cagem_kernels::broadcast::{add_tiled, fold_rows, fold_rows_bf16, tile_rows};
use cagem_kernels::{Buffer, GradOut, Real};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// Stacks `times` copies of x: row r of the result is row r mod rows(x).
    pub fn tile_rows(&mut self, x: Var, times: usize) -> Var {
        let (rows, cols) = self.shape(x);
        let mut out = self.alloc(rows * times, cols);
        tile_rows(cols, self.value(x).buf(), T::one(), GradOut::new(out.buf_mut(), false));
        self.record(out, &[x], TileRowsBackward { x })
    }

    /// `a[r] + b[r mod rows(b)]`; rows(b) divides rows(a).
    pub fn add_tiled(&mut self, a: Var, b: Var) -> Var {
        let (rows, cols) = self.shape(a);
        assert_eq!(self.shape(b).1, cols, "add_tiled: widths differ");
        let mut out = self.alloc(rows, cols);
        add_tiled(cols, self.value(a).buf(), self.value(b).buf(), out.buf_mut());
        // The gradient passes to `a` unchanged: if a's producer reads it only as bf16, so can this.
        let bf16_grad = self.bf16_products() && self.grad_read_as_bf16_only(a);
        self.record(out, &[a, b], AddTiledBackward { a, b, bf16_grad })
    }
}

struct TileRowsBackward {
    x: Var,
}

impl<T: Real> Backward<T> for TileRowsBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.accumulate(self.x, |dx| fold_rows(g.cols(), g.buf(), dx));
    }
}

struct AddTiledBackward {
    a: Var,
    b: Var,
    /// g may come only as bf16 (under bf16 products, when a's producer reads it only so).
    bf16_grad: bool,
}

impl<T: Real> Backward<T> for AddTiledBackward {
    fn reads_grad_as_bf16_only(&self) -> bool {
        self.bf16_grad
    }

    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.pass(self.a, g);
        cx.accumulate(self.b, |db| fold_grad_rows(g, db));
    }
}

/// g's rows folded onto out's (row r into row r mod out's rows). A bf16-only g is summed as
/// its bf16 values in f32, as a bf16 product would.
pub(crate) fn fold_grad_rows<T: Real>(g: &Tensor<T>, out: GradOut<'_, Buffer<T>>) {
    match g.bf16_only() {
        Some(h) => fold_rows_bf16(g.cols(), h, out),
        None => fold_rows(g.cols(), g.buf(), out),
    }
}
