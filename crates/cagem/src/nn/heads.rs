//! Output layers: a dense layer with bias, and the Gaussian head (μ and log σ² from two dense
//! layers on the same features, "d = NN(x); μ = Linear(d); log σ² = Linear(d)").

use cagem_autodiff::{ParamId, ParamStore, Real, Tensor, Var};
use cagem_kernels::rng::HostRng;

use super::block::Fwd;
use super::init::{glorot_uniform, normal};

/// How a dense layer's weights start.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Glorot,
    /// N(0, std²): the Gaussian heads, which start near zero.
    Normal(f64),
}

/// y = x·W + b.
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: ParamId,
    pub b: ParamId,
}

impl Linear {
    pub fn new<T: Real>(
        store: &mut ParamStore<T>,
        rng: &mut HostRng,
        name: &str,
        inp: usize,
        out: usize,
        init: Init,
    ) -> Self {
        let dev = cagem_autodiff::Device::Cpu;
        let v = match init {
            Init::Glorot => glorot_uniform(rng, inp, out, inp * out),
            Init::Normal(std) => normal(rng, std, inp * out),
        };
        Linear {
            w: store.add(&format!("{name}.w"), Tensor::from_f64(&dev, inp, out, &v), true),
            b: store.add(&format!("{name}.b"), Tensor::zeros(&dev, 1, out), true),
        }
    }

    pub fn forward<T: Real>(&self, f: &mut Fwd<T>, x: Var) -> Var {
        let w = f.g.param(f.store, self.w);
        let b = f.g.param(f.store, self.b);
        f.g.linear(&[(x, w)], Some(b))
    }
}

/// The mean and log-variance of a diagonal Gaussian.
#[derive(Clone, Debug)]
pub struct GaussianHead {
    pub mu: Linear,
    pub logvar: Linear,
}

/// Standard deviation of the Gaussian heads' initial weights.
pub const HEAD_INIT_STD: f64 = 1e-3;

impl GaussianHead {
    pub fn new<T: Real>(store: &mut ParamStore<T>, rng: &mut HostRng, name: &str, inp: usize, dim: usize) -> Self {
        GaussianHead {
            mu: Linear::new(store, rng, &format!("{name}.mu"), inp, dim, Init::Normal(HEAD_INIT_STD)),
            logvar: Linear::new(store, rng, &format!("{name}.logvar"), inp, dim, Init::Normal(HEAD_INIT_STD)),
        }
    }

    pub fn forward<T: Real>(&self, f: &mut Fwd<T>, h: Var) -> (Var, Var) {
        (self.mu.forward(f, h), self.logvar.forward(f, h))
    }
}
