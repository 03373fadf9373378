//! The tape: a graph of values recorded in execution order, and the reverse sweep over it.
//!
//! Each op appends a node holding its output and, when any input needs a gradient, a
//! `Backward` object that knows its inputs. `backward(loss)` walks the nodes in reverse, hands
//! each node's gradient to its op, and the op accumulates into its inputs' gradients. Gradients
//! of intermediate nodes are freed as soon as they have been propagated; leaves keep theirs.
//!
//! Gradient buffers are never zero-filled: the first contribution overwrites, later ones add.

use std::collections::HashMap;
use std::sync::Arc;

use cagem_kernels::bf16::Bf16Buf;
use cagem_kernels::elementwise::scale_into;
use cagem_kernels::gemm::Precision;
use cagem_kernels::{Buffer, Device, GradOut, Real};

use crate::param::{ParamId, ParamStore};
use crate::tensor::Tensor;

/// A handle to a node of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub(crate) usize);

/// The backward half of an op.
pub trait Backward<T: Real> {
    /// Propagates `grad` (the gradient of this op's output) into the op's inputs.
    fn backward(&self, cx: &mut BackwardCx<'_, T>, grad: &Tensor<T>);

    /// The op's name in profiles.
    fn name(&self) -> &'static str {
        crate::profile::short_name(std::any::type_name::<Self>())
    }

    /// Whether this backward reads the gradient of its output only through its bf16 copy (a
    /// bf16 product's): then whoever writes that gradient may write the bf16 copy alone.
    fn reads_grad_as_bf16_only(&self) -> bool {
        false
    }
}

struct Node<T: Real> {
    value: Tensor<T>,
    requires_grad: bool,
    op: Option<Box<dyn Backward<T>>>,
}

/// A recorded computation on one device.
pub struct Graph<T: Real> {
    device: Device,
    nodes: Vec<Node<T>>,
    grad_enabled: bool,
    params: HashMap<(ParamId, bool), Var>,
    precision: Precision,
    /// bf16 copies of values that matrix products read (each made once per graph: a weight or an
    /// activation feeds the forward product and again the backward one).
    bf16: HashMap<Var, Arc<Bf16Buf>>,
}

impl<T: Real> Graph<T> {
    pub fn new(device: &Device) -> Self {
        Graph {
            device: device.clone(),
            nodes: Vec::new(),
            grad_enabled: true,
            params: HashMap::new(),
            precision: Precision::F32,
            bf16: HashMap::new(),
        }
    }

    /// The arithmetic of this graph's matrix products (f32 by default). Bf16 applies to f32
    /// graphs on the CPU; f64 graphs (gradient checks) always multiply in f64.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether the op that produced `v` reads v's gradient only as bf16 (see
    /// [`Backward::reads_grad_as_bf16_only`]).
    pub(crate) fn grad_read_as_bf16_only(&self, v: Var) -> bool {
        self.nodes[v.0].op.as_ref().is_some_and(|op| op.reads_grad_as_bf16_only())
    }

    /// Whether this graph's products run in bf16.
    pub(crate) fn bf16_products(&self) -> bool {
        self.precision == Precision::Bf16 && crate::ops::bf16::is_f32::<T>() && self.device.is_cpu()
    }

    /// `v`'s value rounded to bf16, made on first request and kept for the graph's life.
    pub(crate) fn bf16_of(&mut self, v: Var) -> Arc<Bf16Buf> {
        if let Some(b) = self.bf16.get(&v).or(self.nodes[v.0].value.bf16()) {
            return b.clone();
        }
        let b = Arc::new(crate::ops::bf16::round(self.nodes[v.0].value.buf()));
        self.bf16.insert(v, b.clone());
        b
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// While disabled, new leaves and parameters do not require gradients, so nothing computed
    /// from them is recorded for backward (inference, or the parts of a loss that must not move
    /// some parameters).
    pub fn set_grad_enabled(&mut self, enabled: bool) {
        self.grad_enabled = enabled;
    }

    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Runs `f` with gradients disabled, then restores the previous setting.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.grad_enabled;
        self.grad_enabled = false;
        let r = f(self);
        self.grad_enabled = before;
        r
    }

    pub fn value(&self, v: Var) -> &Tensor<T> {
        &self.nodes[v.0].value
    }

    pub fn shape(&self, v: Var) -> (usize, usize) {
        self.nodes[v.0].value.shape()
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A leaf: data, or an input to differentiate with respect to.
    pub fn leaf(&mut self, value: Tensor<T>, requires_grad: bool) -> Var {
        self.mark_leaf();
        assert!(value.device() == self.device, "leaf on {:?} in a graph on {:?}", value.device(), self.device);
        self.push(value, requires_grad && self.grad_enabled, None)
    }

    /// A leaf that never requires a gradient.
    pub fn constant(&mut self, value: Tensor<T>) -> Var {
        self.leaf(value, false)
    }

    /// The leaf for a stored parameter (one per parameter and gradient setting).
    pub fn param(&mut self, store: &ParamStore<T>, id: ParamId) -> Var {
        let wants = self.grad_enabled && store.entry(id).trainable;
        if let Some(&v) = self.params.get(&(id, wants)) {
            return v;
        }
        self.mark_leaf();
        let v = self.push(store.get(id).clone(), wants, None);
        self.params.insert((id, wants), v);
        v
    }

    /// The same value, cut from the gradient.
    pub fn detach(&mut self, v: Var) -> Var {
        self.mark_leaf();
        let value = self.value(v).clone();
        self.push(value, false, None)
    }

    fn mark_leaf(&self) {
        if crate::profile::enabled() {
            crate::profile::mark_forward("leaf", &self.device);
        }
    }

    /// Records an op's output. The backward object is kept only if some input needs a gradient.
    pub fn record(&mut self, value: Tensor<T>, inputs: &[Var], op: impl Backward<T> + 'static) -> Var {
        if crate::profile::enabled() {
            crate::profile::mark_forward(op.name(), &self.device);
        }
        let requires_grad = inputs.iter().any(|&v| self.nodes[v.0].requires_grad);
        let op: Option<Box<dyn Backward<T>>> = if requires_grad { Some(Box::new(op)) } else { None };
        self.push(value, requires_grad, op)
    }

    fn push(&mut self, value: Tensor<T>, requires_grad: bool, op: Option<Box<dyn Backward<T>>>) -> Var {
        self.nodes.push(Node { value, requires_grad, op });
        Var(self.nodes.len() - 1)
    }

    /// A fresh output tensor on this graph's device (contents unspecified).
    pub fn alloc(&self, rows: usize, cols: usize) -> Tensor<T> {
        Tensor::uninit(&self.device, rows, cols)
    }

    /// Back-propagates from a scalar `loss` (gradient 1).
    pub fn backward(&self, loss: Var) -> Gradients<T> {
        assert_eq!(self.shape(loss), (1, 1), "backward from a non-scalar");
        let seed = Tensor::full(&self.device, 1, 1, T::one());
        self.backward_with(loss, seed)
    }

    /// Back-propagates `seed` as the gradient of `out` (any shape).
    pub fn backward_with(&self, out: Var, seed: Tensor<T>) -> Gradients<T> {
        assert_eq!(seed.shape(), self.shape(out), "backward seed shape");
        let mut grads: Vec<Option<Tensor<T>>> = (0..=out.0).map(|_| None).collect();
        let mut leaves = HashMap::new();
        if self.nodes[out.0].requires_grad {
            grads[out.0] = Some(seed);
        }
        for i in (0..=out.0).rev() {
            let Some(grad) = grads[i].take() else { continue };
            match &self.nodes[i].op {
                Some(op) => {
                    let mut cx = BackwardCx { nodes: &self.nodes, grads: &mut grads, this: i };
                    if crate::profile::enabled() {
                        let t0 = std::time::Instant::now();
                        op.backward(&mut cx, &grad);
                        self.device.synchronize();
                        crate::profile::add_backward(op.name(), t0.elapsed());
                    } else {
                        op.backward(&mut cx, &grad);
                    }
                }
                None => {
                    leaves.insert(Var(i), grad);
                }
            }
        }
        let params = self.params.iter().filter(|((_, wants), _)| *wants).map(|(&(id, _), &v)| (id, v)).collect();
        Gradients { leaves, params }
    }
}

/// What an op's backward sees: the recorded values and the gradient accumulators.
pub struct BackwardCx<'a, T: Real> {
    nodes: &'a [Node<T>],
    grads: &'a mut Vec<Option<Tensor<T>>>,
    this: usize,
}

/// A gradient accumulator taken out of the sweep for one kernel call.
pub struct GradSlot<T: Real> {
    var: Var,
    tensor: Tensor<T>,
    accumulate: bool,
}

impl<T: Real> GradSlot<T> {
    /// The kernel-facing output: overwrite on the first contribution, add afterwards.
    pub fn out(&mut self) -> GradOut<'_, Buffer<T>> {
        let accumulate = self.accumulate;
        GradOut::new(self.tensor.buf_mut(), accumulate)
    }

    /// Whether the next write overwrites (the first contribution to this gradient).
    pub fn overwrites(&self) -> bool {
        !self.accumulate
    }

    /// Attaches the gradient rounded to bf16, written together with it (any later contribution
    /// drops it, as every mutable access does).
    pub fn attach_bf16(&mut self, b: Bf16Buf) {
        self.tensor.set_bf16(b);
    }
}

impl<T: Real> BackwardCx<'_, T> {
    /// The output of the op being differentiated.
    pub fn output(&self) -> &Tensor<T> {
        &self.nodes[self.this].value
    }

    pub fn value(&self, v: Var) -> &Tensor<T> {
        &self.nodes[v.0].value
    }

    /// Whether `v` wants a gradient.
    pub fn wants(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// Takes `v`'s gradient accumulator (allocating it on first use), or None if `v` needs no
    /// gradient. Return it with [`BackwardCx::put`].
    pub fn slot(&mut self, v: Var) -> Option<GradSlot<T>> {
        if !self.wants(v) {
            return None;
        }
        Some(match self.grads[v.0].take() {
            Some(tensor) => GradSlot { var: v, tensor, accumulate: true },
            None => {
                let (r, c) = self.nodes[v.0].value.shape();
                GradSlot { var: v, tensor: Tensor::uninit(&self.nodes[v.0].value.device(), r, c), accumulate: false }
            }
        })
    }

    pub fn put(&mut self, slot: Option<GradSlot<T>>) {
        if let Some(s) = slot {
            self.grads[s.var.0] = Some(s.tensor);
        }
    }

    /// Adds `g` (as many elements as v) to v's gradient. A first contribution shares g's buffer
    /// and its bf16 copy instead of copying them: the gradient of an op that hands its input's
    /// gradient through unchanged (a sum's terms, a reshape).
    pub fn pass(&mut self, v: Var, g: &Tensor<T>) {
        if !self.wants(v) {
            return;
        }
        if self.grads[v.0].is_none() {
            let (rows, cols) = self.nodes[v.0].value.shape();
            self.grads[v.0] = Some(g.reshape(rows, cols));
        } else {
            self.accumulate(v, |dv| scale_into(g.buf(), T::one(), dv));
        }
    }

    /// Whether v wants a gradient and has none yet (the next contribution is the first).
    pub fn first_contribution(&self, v: Var) -> bool {
        self.wants(v) && self.grads[v.0].is_none()
    }

    /// Sets v's gradient, its first contribution, to values that exist only in bf16 (see
    /// [`Tensor::from_bf16_only`]).
    pub fn put_bf16_only(&mut self, v: Var, b: Bf16Buf) {
        assert!(self.first_contribution(v), "put_bf16_only: not the first contribution");
        let (rows, cols) = self.nodes[v.0].value.shape();
        self.grads[v.0] = Some(Tensor::from_bf16_only(rows, cols, b));
    }

    /// Convenience for single-gradient kernels: runs `f` on `v`'s accumulator if it wants one.
    pub fn accumulate(&mut self, v: Var, f: impl FnOnce(GradOut<'_, Buffer<T>>)) {
        if let Some(mut s) = self.slot(v) {
            f(s.out());
            self.put(Some(s));
        }
    }
}

/// The gradients of a backward sweep: one per leaf that required one.
pub struct Gradients<T: Real> {
    leaves: HashMap<Var, Tensor<T>>,
    params: HashMap<ParamId, Var>,
}

impl<T: Real> Gradients<T> {
    /// The gradient with respect to leaf `v` (None: `v` did not influence the output).
    pub fn wrt(&self, v: Var) -> Option<&Tensor<T>> {
        self.leaves.get(&v)
    }

    /// The gradient with respect to a parameter used (with gradients enabled) in the graph.
    pub fn param(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.params.get(&id).and_then(|v| self.leaves.get(v))
    }

    /// Parameters that received a gradient.
    pub fn params(&self) -> impl Iterator<Item = (ParamId, &Tensor<T>)> {
        self.params.iter().filter_map(|(&id, v)| self.leaves.get(v).map(|t| (id, t)))
    }
}
