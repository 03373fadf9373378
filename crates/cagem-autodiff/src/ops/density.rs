//! Log-densities summed over each row: diagonal Gaussian, standard normal, Bernoulli from
//! logits. Each returns a `rows × 1` column of per-sample log-probabilities.

use cagem_kernels::Real;
use cagem_kernels::bernoulli::{loglik, loglik_backward};
use cagem_kernels::gaussian::{
    DiagGrads, diag_logdensity, diag_logdensity_backward, std_normal_logdensity, std_normal_logdensity_backward,
};

use crate::graph::{Backward, BackwardCx, Graph, Var};
use crate::tensor::Tensor;

impl<T: Real> Graph<T> {
    /// log N(z; μ, diag exp λ) per row. Any of z, μ, λ may have fewer rows than the others (a
    /// divisor of the largest), repeating with that period.
    pub fn diag_gaussian_logpdf(&mut self, z: Var, mu: Var, logvar: Var) -> Var {
        let cols = self.shape(z).1;
        assert!(self.shape(mu).1 == cols && self.shape(logvar).1 == cols, "diag_gaussian_logpdf: widths differ");
        let rows = [z, mu, logvar].iter().map(|&v| self.shape(v).0).max().unwrap_or(0);
        let mut out = self.alloc(rows, 1);
        diag_logdensity(cols, self.value(z).buf(), self.value(mu).buf(), self.value(logvar).buf(), out.buf_mut());
        self.record(out, &[z, mu, logvar], DiagBackward { z, mu, logvar })
    }

    /// log N(z; 0, I) per row.
    pub fn std_normal_logpdf(&mut self, z: Var) -> Var {
        let (rows, cols) = self.shape(z);
        let mut out = self.alloc(rows, 1);
        std_normal_logdensity(cols, self.value(z).buf(), out.buf_mut());
        self.record(out, &[z], StdNormalBackward { z })
    }

    /// log Bernoulli(x; σ(logits)) per row. `x` may have fewer rows (a divisor), repeating.
    pub fn bernoulli_loglik(&mut self, logits: Var, x: Var) -> Var {
        let (rows, cols) = self.shape(logits);
        assert_eq!(self.shape(x).1, cols, "bernoulli_loglik: widths differ");
        let mut out = self.alloc(rows, 1);
        loglik(cols, self.value(logits).buf(), self.value(x).buf(), out.buf_mut());
        assert!(!self.requires_grad(x), "bernoulli_loglik: gradients with respect to x are not implemented");
        self.record(out, &[logits], BernoulliBackward { logits, x })
    }
}

struct DiagBackward {
    z: Var,
    mu: Var,
    logvar: Var,
}

impl<T: Real> Backward<T> for DiagBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        assert!(
            self.z != self.mu && self.z != self.logvar && self.mu != self.logvar,
            "diag_gaussian_logpdf: repeated input"
        );
        let cols = cx.value(self.z).cols();
        let (z, mu, lv) = (cx.value(self.z).clone(), cx.value(self.mu).clone(), cx.value(self.logvar).clone());
        let mut sz = cx.slot(self.z);
        let mut sm = cx.slot(self.mu);
        let mut sl = cx.slot(self.logvar);
        diag_logdensity_backward(
            cols,
            g.buf(),
            z.buf(),
            mu.buf(),
            lv.buf(),
            DiagGrads {
                dz: sz.as_mut().map(|s| s.out()),
                dmu: sm.as_mut().map(|s| s.out()),
                dlogvar: sl.as_mut().map(|s| s.out()),
            },
        );
        cx.put(sz);
        cx.put(sm);
        cx.put(sl);
    }
}

struct StdNormalBackward {
    z: Var,
}

impl<T: Real> Backward<T> for StdNormalBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let z = cx.value(self.z).clone();
        cx.accumulate(self.z, |dz| std_normal_logdensity_backward(z.cols(), g.buf(), z.buf(), dz));
    }
}

struct BernoulliBackward {
    logits: Var,
    x: Var,
}

impl<T: Real> Backward<T> for BernoulliBackward {
    fn backward(&self, cx: &mut BackwardCx<'_, T>, g: &Tensor<T>) {
        let (l, x) = (cx.value(self.logits).clone(), cx.value(self.x).clone());
        cx.accumulate(self.logits, |dl| loglik_backward(l.cols(), g.buf(), l.buf(), x.buf(), dl));
    }
}
