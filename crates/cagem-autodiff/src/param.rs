//! Named parameters and state buffers (batch-norm running statistics) of a model.

use std::collections::HashMap;

use cagem_kernels::{Device, Real};

use crate::tensor::Tensor;

/// Index of a parameter in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

pub struct ParamEntry<T: Real> {
    pub name: String,
    pub value: Tensor<T>,
    /// False for state that is saved with the model but never trained (running statistics).
    pub trainable: bool,
}

/// All tensors of a model, by name, in creation order.
pub struct ParamStore<T: Real> {
    entries: Vec<ParamEntry<T>>,
    by_name: HashMap<String, ParamId>,
}

impl<T: Real> Default for ParamStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> ParamStore<T> {
    pub fn new() -> Self {
        ParamStore { entries: Vec::new(), by_name: HashMap::new() }
    }

    /// Adds a tensor under a unique name.
    pub fn add(&mut self, name: &str, value: Tensor<T>, trainable: bool) -> ParamId {
        assert!(!self.by_name.contains_key(name), "parameter '{name}' defined twice");
        let id = ParamId(self.entries.len());
        self.entries.push(ParamEntry { name: name.to_string(), value, trainable });
        self.by_name.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, id: ParamId) -> &Tensor<T> {
        &self.entries[id.0].value
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        &mut self.entries[id.0].value
    }

    /// Two distinct tensors, mutably (e.g. the running mean and variance of a batch norm).
    pub fn get2_mut(&mut self, a: ParamId, b: ParamId) -> (&mut Tensor<T>, &mut Tensor<T>) {
        assert_ne!(a, b, "get2_mut of one parameter");
        if a.0 < b.0 {
            let (lo, hi) = self.entries.split_at_mut(b.0);
            (&mut lo[a.0].value, &mut hi[0].value)
        } else {
            let (lo, hi) = self.entries.split_at_mut(a.0);
            (&mut hi[0].value, &mut lo[b.0].value)
        }
    }

    pub fn entry(&self, id: ParamId) -> &ParamEntry<T> {
        &self.entries[id.0]
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = ParamId> + '_ {
        (0..self.entries.len()).map(ParamId)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &ParamEntry<T>)> {
        self.entries.iter().enumerate().map(|(i, e)| (ParamId(i), e))
    }

    /// Number of trainable scalars.
    pub fn trainable_count(&self) -> usize {
        self.entries.iter().filter(|e| e.trainable).map(|e| e.value.len()).sum()
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&mut self, device: &Device) {
        for e in &mut self.entries {
            e.value = e.value.to_device(device);
        }
    }
}
