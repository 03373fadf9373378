//! Dense layers: out = Σᵢ xᵢ·Wᵢ (+ b). Several (x, W) terms accumulate into one output, which is
//! how a layer over concatenated inputs runs without concatenating them (W·[x; z] = Wₓx + W_z z).
//! A bias is written first and the products accumulate onto it, so it costs no extra pass.
//!
//! Backward: dxᵢ = g·Wᵀ, dWᵢ = xᵢᵀ·g (strided operands, no transposing copies), db = Σ_rows g.
//!
//! Under `Precision::Bf16` the products read bf16 copies of x, W and g (each rounded once per
//! graph, shared by the forward and backward products) and accumulate and write f32.

use std::sync::Arc;

use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::broadcast::{fold_rows, tile_rows};
use cagem_kernels::gemm::{GemmShape, Trans, gemm, gemm_bf16, gemm_pair};
use cagem_kernels::{GradOut, Real};

use super::bf16::{as_f32_mut, round};
use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// x·W.
    pub fn matmul(&mut self, x: Var, w: Var) -> Var {
        self.linear(&[(x, w)], None)
    }

    /// Σᵢ xᵢ·Wᵢ + b. All xᵢ have the same number of rows; b is 1 × out.
    pub fn linear(&mut self, terms: &[(Var, Var)], bias: Option<Var>) -> Var {
        assert!(!terms.is_empty(), "linear with no terms");
        let rows = self.shape(terms[0].0).0;
        let out_cols = self.shape(terms[0].1).1;
        for &(x, w) in terms {
            let ((xr, xc), (wr, wc)) = (self.shape(x), self.shape(w));
            assert_eq!(xr, rows, "linear: inputs have different numbers of rows");
            assert_eq!(xc, wr, "linear: input width {xc} does not match weight rows {wr}");
            assert_eq!(wc, out_cols, "linear: weights have different output widths");
        }
        let mut out = self.alloc(rows, out_cols);
        let mut accumulate = false;
        if let Some(b) = bias {
            assert_eq!(self.shape(b), (1, out_cols), "linear: bias shape");
            tile_rows(out_cols, self.value(b).buf(), T::one(), GradOut::new(out.buf_mut(), false));
            accumulate = true;
        }
        let bf16 = self.bf16_products();
        let mut rounded = Vec::new();
        for &(x, w) in terms {
            let s = GemmShape::new(rows, out_cols, self.value(x).cols(), Trans::N, Trans::N);
            if bf16 {
                let (xb, wb) = (self.bf16_of(x), self.bf16_of(w));
                gemm_bf16(s, &xb, &wb, as_f32_mut(out.buf_mut()), accumulate);
                rounded.push((xb, wb));
            } else {
                let (xv, wv) = (self.value(x), self.value(w));
                gemm(s, xv.buf(), wv.buf(), out.buf_mut(), accumulate);
            }
            accumulate = true;
        }
        let mut inputs: Vec<Var> = terms.iter().flat_map(|&(x, w)| [x, w]).collect();
        inputs.extend(bias);
        self.record(out, &inputs, LinearBackward { terms: terms.to_vec(), bias, rounded })
    }
}

struct LinearBackward {
    terms: Vec<(Var, Var)>,
    bias: Option<Var>,
    /// bf16 copies of each term's (x, W) when the products run in bf16 (empty otherwise).
    rounded: Vec<(Arc<Bf16Buf>, Arc<Bf16Buf>)>,
}

impl<T: Real> Backward<T> for LinearBackward {
    /// In bf16, both products read g rounded; only a bias would read it in f32.
    fn reads_grad_as_bf16_only(&self) -> bool {
        !self.rounded.is_empty() && self.bias.is_none()
    }

    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let (rows, out_cols) = g.shape();
        // g rounded once: it feeds both products of every term.
        // (The batch norm above writes it already rounded.)
        let gb = (!self.rounded.is_empty()).then(|| g.bf16().cloned().unwrap_or_else(|| Arc::new(round(g.buf()))));
        for (i, &(x, w)) in self.terms.iter().enumerate() {
            let (xv, wv) = (cx.value(x).clone(), cx.value(w).clone());
            let in_cols = xv.cols();
            let dx_shape = GemmShape::new(rows, in_cols, out_cols, Trans::N, Trans::T);
            let dw_shape = GemmShape::new(in_cols, out_cols, rows, Trans::T, Trans::N);
            let (mut sx, mut sw) = (cx.slot(x), cx.slot(w));
            if let Some(gb) = &gb {
                // Each product is cut across all threads (onednn::matmul): one after the other.
                let (xb, wb) = &self.rounded[i];
                if let Some(sx) = sx.as_mut() {
                    let dx = sx.out();
                    gemm_bf16(dx_shape, gb, wb, as_f32_mut(dx.buf), dx.accumulate);
                }
                if let Some(sw) = sw.as_mut() {
                    let dw = sw.out();
                    gemm_bf16(dw_shape, xb, gb, as_f32_mut(dw.buf), dw.accumulate);
                }
                cx.put(sx);
                cx.put(sw);
                continue;
            }
            match (sx.as_mut(), sw.as_mut()) {
                (Some(sx), Some(sw)) => {
                    let (dx, dw) = (sx.out(), sw.out());
                    let (ax, aw) = (dx.accumulate, dw.accumulate);
                    gemm_pair((dx_shape, g.buf(), wv.buf(), dx.buf, ax), (dw_shape, xv.buf(), g.buf(), dw.buf, aw));
                }
                (Some(sx), None) => {
                    let dx = sx.out();
                    let acc = dx.accumulate;
                    gemm(dx_shape, g.buf(), wv.buf(), dx.buf, acc);
                }
                (None, Some(sw)) => {
                    let dw = sw.out();
                    let acc = dw.accumulate;
                    gemm(dw_shape, xv.buf(), g.buf(), dw.buf, acc);
                }
                (None, None) => {}
            }
            cx.put(sx);
            cx.put(sw);
        }
        if let Some(b) = self.bias {
            cx.accumulate(b, |db| fold_rows(out_cols, g.buf(), db));
        }
    }
}
