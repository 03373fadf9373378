//! The per-type cache of host vectors behind `buffer::HostBuffer`: a training step allocates the
//! same few dozen shapes over and over, and fresh multi-megabyte allocations cost page faults and
//! zeroing. Generic over `num_traits::Float` (not `Real`, which names its pool) so that the two
//! do not import each other.

use std::collections::BTreeMap;
use std::sync::Mutex;

use num_traits::Float;

/// Host memory cached by the pool is capped (bytes) so that odd shapes cannot pile up forever.
const HOST_POOL_CAP_BYTES: usize = 8 << 30;

/// A cache of host vectors of one element type, keyed by exact length.
pub struct HostPool<T> {
    inner: Mutex<PoolInner<T>>,
}

struct PoolInner<T> {
    free: BTreeMap<usize, Vec<Vec<T>>>,
    cached_bytes: usize,
}

impl<T: Float> HostPool<T> {
    pub const fn new() -> Self {
        HostPool { inner: Mutex::new(PoolInner { free: BTreeMap::new(), cached_bytes: 0 }) }
    }

    pub(crate) fn take(&self, len: usize) -> Option<Vec<T>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = inner.free.get_mut(&len)?;
        let v = bucket.pop()?;
        inner.cached_bytes -= len * size_of::<T>();
        Some(v)
    }

    pub(crate) fn give(&self, mut v: Vec<T>) {
        let bytes = v.len() * size_of::<T>();
        if bytes == 0 {
            return;
        }
        if cfg!(debug_assertions) {
            v.fill(T::nan());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.cached_bytes + bytes > HOST_POOL_CAP_BYTES {
            return; // dropped: the cap protects against unbounded growth
        }
        inner.cached_bytes += bytes;
        inner.free.entry(v.len()).or_default().push(v);
    }

    /// Frees every cached buffer.
    pub fn trim(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.free.clear();
        inner.cached_bytes = 0;
    }

    /// Bytes currently cached (not in use).
    pub fn cached_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).cached_bytes
    }
}

impl<T: Float> Default for HostPool<T> {
    fn default() -> Self {
        Self::new()
    }
}
