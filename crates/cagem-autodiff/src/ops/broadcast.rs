//! Repeating rows: tiling a per-example tensor over the K clusters (or importance samples), and
//! adding a tensor with fewer rows to one with more.

use cagem_kernels::broadcast::{add_tiled, fold_rows, tile_rows};
use cagem_kernels::{GradOut, Real};

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

    /// a[r] + b[r mod rows(b)]; rows(b) divides rows(a).
    pub fn add_tiled(&mut self, a: Var, b: Var) -> Var {
        let (rows, cols) = self.shape(a);
        assert_eq!(self.shape(b).1, cols, "add_tiled: widths differ");
        let mut out = self.alloc(rows, cols);
        add_tiled(cols, self.value(a).buf(), self.value(b).buf(), out.buf_mut());
        self.record(out, &[a, b], AddTiledBackward { a, b })
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
}

impl<T: Real> Backward<T> for AddTiledBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        cx.pass(self.a, g);
        cx.accumulate(self.b, |db| fold_rows(g.cols(), g.buf(), db));
    }
}
