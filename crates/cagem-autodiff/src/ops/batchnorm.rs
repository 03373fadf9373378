//! Batch normalisation (+ ReLU) as a graph op. Training mode normalises with the batch's
//! statistics and may update running averages; inference mode uses the running averages.

use cagem_kernels::Real;
use cagem_kernels::batchnorm::{self as bn, BnAffine, BnGrads, BnOutput, BnStats, RunningStats};
use cagem_kernels::bf16::Bf16Buf;

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

/// Which statistics a batch-norm layer normalises with.
pub enum BnMode<'a, T: Real> {
    /// Batch statistics; with `running`, also fold them into these running averages. With
    /// `weights` (rows × 1, non-negative, summing to rows; constants), row r counts w_r times
    /// in the statistics (see cagem_kernels::batchnorm).
    Train { running: Option<(&'a mut Tensor<T>, &'a mut Tensor<T>)>, momentum: f64, weights: Option<&'a Tensor<T>> },
    /// Running statistics (mean, variance).
    Eval { mean: &'a Tensor<T>, var: &'a Tensor<T> },
}

impl<T: Real> Graph<T> {
    /// `y = [ReLU](γ·(x − μ)/√(σ² + ε) + β)` per column.
    pub fn batch_norm(&mut self, x: Var, gamma: Var, beta: Var, mode: BnMode<'_, T>, eps: f64, relu: bool) -> Var {
        let (rows, cols) = self.shape(x);
        assert_eq!(self.shape(gamma), (1, cols), "batch_norm: gamma shape");
        assert_eq!(self.shape(beta), (1, cols), "batch_norm: beta shape");
        let bf16 = self.bf16_products();
        let affine = BnAffine { gamma: self.value(gamma).buf(), beta: self.value(beta).buf(), eps, relu };
        let (y, stats) = match mode {
            BnMode::Train { running, momentum, weights } => {
                if let Some(w) = weights {
                    assert_eq!(w.shape(), (rows, 1), "batch_norm: row weights shape");
                }
                let mut mean = self.alloc(1, cols);
                let mut rstd = self.alloc(1, cols);
                let running = running.map(|(m, v)| RunningStats { mean: m.buf_mut(), var: v.buf_mut(), momentum });
                let (xv, wv) = (self.value(x).buf(), weights.map(|w| w.buf()));
                let y = if bf16 {
                    // Under bf16 products the output is the next dense layer's input, and only
                    // its products read it: write it only rounded.
                    let mut y16 = Bf16Buf::uninit(rows * cols);
                    let (m, r) = (mean.buf_mut(), rstd.buf_mut());
                    bn::forward_train(rows, cols, xv, wv, affine, BnOutput::Bf16Only(&mut y16), m, r, running);
                    Tensor::from_bf16_only(rows, cols, y16)
                } else {
                    let mut y = self.alloc(rows, cols);
                    let (m, r) = (mean.buf_mut(), rstd.buf_mut());
                    bn::forward_train(rows, cols, xv, wv, affine, BnOutput::F32(y.buf_mut()), m, r, running);
                    y
                };
                (y, Saved::Batch { mean, rstd, weights: weights.cloned() })
            }
            BnMode::Eval { mean, var } => {
                // Evaluation keeps the f32 output too (and the bf16 copy for bf16 products).
                let mut y = self.alloc(rows, cols);
                let mut y16 = bf16.then(|| Bf16Buf::uninit(rows * cols));
                let (xv, mv, vv) = (self.value(x).buf(), mean.buf(), var.buf());
                let out = match y16.as_mut() {
                    Some(h) => BnOutput::WithBf16(y.buf_mut(), h),
                    None => BnOutput::F32(y.buf_mut()),
                };
                bn::forward_eval(rows, cols, xv, affine, mv, vv, out);
                let y = match y16 {
                    Some(h) => y.with_bf16(h),
                    None => y,
                };
                (y, Saved::Running { mean: mean.clone(), var: var.clone() })
            }
        };
        // dx only in bf16 where the dense layer below reads it only so.
        let bf16_dx = bf16 && self.grad_read_as_bf16_only(x);
        self.record(y, &[x, gamma, beta], BatchNormBackward { x, gamma, beta, stats, eps, relu, bf16, bf16_dx })
    }
}

enum Saved<T: Real> {
    Batch { mean: Tensor<T>, rstd: Tensor<T>, weights: Option<Tensor<T>> },
    Running { mean: Tensor<T>, var: Tensor<T> },
}

struct BatchNormBackward<T: Real> {
    x: Var,
    gamma: Var,
    beta: Var,
    stats: Saved<T>,
    eps: f64,
    relu: bool,
    /// Under bf16 products: dx (the gradient of a dense layer's output) is also written rounded.
    bf16: bool,
    /// ... and only rounded, if it is the first contribution (the dense layer reads no other).
    bf16_dx: bool,
}

impl<T: Real> Backward<T> for BatchNormBackward<T> {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let (rows, cols) = g.shape();
        let (x, gamma, beta) = (cx.value(self.x).clone(), cx.value(self.gamma).clone(), cx.value(self.beta).clone());
        let bf16_only = self.bf16_dx && cx.first_contribution(self.x);
        let mut sx = if bf16_only { None } else { cx.slot(self.x) };
        let mut sg = cx.slot(self.gamma);
        let mut sb = cx.slot(self.beta);
        let (stats, weights) = match &self.stats {
            Saved::Batch { mean, rstd, weights } => {
                (BnStats::Batch { mean: mean.buf(), rstd: rstd.buf() }, weights.as_ref().map(|w| w.buf()))
            }
            Saved::Running { mean, var } => (BnStats::Running { mean: mean.buf(), var: var.buf() }, None),
        };
        let mut dx16 = match &sx {
            _ if bf16_only => Some(Bf16Buf::uninit(rows * cols)),
            Some(s) if self.bf16 && s.overwrites() => Some(Bf16Buf::uninit(rows * cols)),
            _ => None,
        };
        bn::backward(
            rows,
            cols,
            g.buf(),
            x.buf(),
            weights,
            BnAffine { gamma: gamma.buf(), beta: beta.buf(), eps: self.eps, relu: self.relu },
            stats,
            BnGrads {
                dx: sx.as_mut().map(|s| s.out()),
                dgamma: sg.as_mut().map(|s| s.out()),
                dbeta: sb.as_mut().map(|s| s.out()),
            },
            dx16.as_mut(),
        );
        match (sx.as_mut(), dx16) {
            (Some(s), Some(h)) => s.attach_bf16(h),
            (None, Some(h)) => cx.put_bf16_only(self.x, h),
            _ => {}
        }
        cx.put(sx);
        cx.put(sg);
        cx.put(sb);
    }
}
