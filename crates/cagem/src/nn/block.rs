//! The two-layer block: Dense → BatchNorm → ReLU → Dense → BatchNorm → ReLU.
//!
//! The first layer takes its input in parts (e.g. x and z1), one weight matrix per part, and
//! optionally the cluster y as a table of K weight rows: W·[x; z1; onehot(y)] is computed as
//! `Wₓx + W_z1·z1 + W_y[y]`. Parts with fewer rows (x shared by the importance samples of one
//! image) are added with a period. Dense layers before batch norm carry no bias.

use std::sync::Arc;

use cagem_autodiff::{BnMode, Graph, Indices, ParamId, ParamStore, Real, Tensor, Var};
use cagem_kernels::rng::HostRng;

use super::init::glorot_uniform;

/// How batch norm runs in a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnUse {
    /// Batch statistics; fold them into the running averages only if `update_running` (the paper
    /// collects statistics on the unlabelled pass only).
    Train { update_running: bool },
    /// Running (population) statistics: evaluation and sampling.
    Eval,
}

/// What a forward pass needs besides its inputs: the graph, the parameters, batch-norm settings.
pub struct Fwd<'a, T: Real> {
    pub g: &'a mut Graph<T>,
    pub store: &'a mut ParamStore<T>,
    pub bn: BnUse,
    pub bn_eps: f64,
    pub bn_momentum: f64,
    /// Row weights for the batch statistics of the layers run while set (rows × 1, mean 1;
    /// the deviation bn-qy-weighted), None: rows count alike.
    pub bn_row_weights: Option<Tensor<T>>,
}

/// Batch norm with learned scale γ and shift β, and running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: ParamId,
    pub beta: ParamId,
    pub running_mean: ParamId,
    pub running_var: ParamId,
}

impl BatchNorm {
    pub fn new<T: Real>(store: &mut ParamStore<T>, name: &str, width: usize) -> Self {
        let dev = cagem_autodiff::Device::Cpu;
        BatchNorm {
            gamma: store.add(&format!("{name}.gamma"), Tensor::full(&dev, 1, width, T::one()), true),
            beta: store.add(&format!("{name}.beta"), Tensor::zeros(&dev, 1, width), true),
            running_mean: store.add(&format!("{name}.running_mean"), Tensor::zeros(&dev, 1, width), false),
            running_var: store.add(&format!("{name}.running_var"), Tensor::full(&dev, 1, width, T::one()), false),
        }
    }

    /// ReLU(BN(x)).
    pub fn forward<T: Real>(&self, f: &mut Fwd<T>, x: Var) -> Var {
        let gamma = f.g.param(f.store, self.gamma);
        let beta = f.g.param(f.store, self.beta);
        match f.bn {
            BnUse::Train { update_running } => {
                let running =
                    if update_running { Some(f.store.get2_mut(self.running_mean, self.running_var)) } else { None };
                let weights = f.bn_row_weights.as_ref();
                let mode = BnMode::Train { running, momentum: f.bn_momentum, weights };
                f.g.batch_norm(x, gamma, beta, mode, f.bn_eps, true)
            }
            BnUse::Eval => {
                let (m, v) = (f.store.get(self.running_mean).clone(), f.store.get(self.running_var).clone());
                f.g.batch_norm(x, gamma, beta, BnMode::Eval { mean: &m, var: &v }, f.bn_eps, true)
            }
        }
    }
}

/// Dense → BN → ReLU → Dense → BN → ReLU over inputs given in parts, optionally y-conditioned.
#[derive(Clone, Debug)]
pub struct Block {
    /// First-layer weights, one per input part (part width × `hidden[0]`).
    pub first: Vec<ParamId>,
    /// First-layer weights of the one-hot cluster input (K × `hidden[0]`).
    pub cluster: Option<ParamId>,
    pub bn0: BatchNorm,
    pub second: ParamId,
    pub bn1: BatchNorm,
}

impl Block {
    /// `parts`: (name, width) of each input part; `clusters`: K if y is an input.
    pub fn new<T: Real>(
        store: &mut ParamStore<T>,
        rng: &mut HostRng,
        name: &str,
        parts: &[(&str, usize)],
        clusters: Option<usize>,
        hidden: [usize; 2],
    ) -> Self {
        let dev = cagem_autodiff::Device::Cpu;
        let fan_in: usize = parts.iter().map(|p| p.1).sum::<usize>() + clusters.unwrap_or(0);
        let mut dense = |store: &mut ParamStore<T>, pname: String, rows: usize, fan_in: usize, cols: usize| {
            let v = glorot_uniform(rng, fan_in, cols, rows * cols);
            store.add(&pname, Tensor::from_f64(&dev, rows, cols, &v), true)
        };
        let first =
            parts.iter().map(|&(p, w)| dense(store, format!("{name}.l0.w_{p}"), w, fan_in, hidden[0])).collect();
        let cluster = clusters.map(|k| dense(store, format!("{name}.l0.w_y"), k, fan_in, hidden[0]));
        let bn0 = BatchNorm::new(store, &format!("{name}.l0.bn"), hidden[0]);
        let second = dense(store, format!("{name}.l1.w"), hidden[0], hidden[0], hidden[1]);
        let bn1 = BatchNorm::new(store, &format!("{name}.l1.bn"), hidden[1]);
        Block { first, cluster, bn0, second, bn1 }
    }

    /// The block's output. `inputs` match the parts given at construction; with `clusters`, the
    /// output has one row per index (row r adds the weight row of cluster `idx[r]`).
    pub fn forward<T: Real>(&self, f: &mut Fwd<T>, inputs: &[Var], clusters: Option<&Arc<Indices>>) -> Var {
        assert_eq!(inputs.len(), self.first.len(), "block: {} inputs for {} parts", inputs.len(), self.first.len());
        let mut a = first_layer(f, &self.first, inputs);
        if let Some(idx) = clusters {
            let table = self.cluster.expect("block has no cluster input");
            let w = f.g.param(f.store, table);
            a = f.g.gather_add_rows(a, w, idx);
        }
        let h = self.bn0.forward(f, a);
        let w = f.g.param(f.store, self.second);
        let a = f.g.matmul(h, w);
        self.bn1.forward(f, a)
    }
}

/// Σ parts·weights. Parts with the same number of rows share one output (GEMMs accumulate);
/// parts with fewer rows are computed on their own rows and added with a period.
fn first_layer<T: Real>(f: &mut Fwd<T>, weights: &[ParamId], inputs: &[Var]) -> Var {
    let mut groups: Vec<(usize, Vec<(Var, Var)>)> = Vec::new();
    for (&x, &w) in inputs.iter().zip(weights) {
        let rows = f.g.shape(x).0;
        let wv = f.g.param(f.store, w);
        match groups.iter_mut().find(|(r, _)| *r == rows) {
            Some((_, terms)) => terms.push((x, wv)),
            None => groups.push((rows, vec![(x, wv)])),
        }
    }
    groups.sort_by_key(|(rows, _)| std::cmp::Reverse(*rows));
    let mut out = f.g.linear(&groups[0].1, None);
    for (_, terms) in &groups[1..] {
        let part = f.g.linear(terms, None);
        out = f.g.add_tiled(out, part);
    }
    out
}
