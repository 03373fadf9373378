//! Worker threads. The command line builds rayon's global pool once per process; a Python
//! process may ask for different counts from call to call, so each count gets a pool of its own,
//! kept for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::PyResult;
use pyo3::exceptions::PyValueError;
use rayon::ThreadPool;

static POOLS: Mutex<Option<HashMap<usize, Arc<ThreadPool>>>> = Mutex::new(None);

/// The pool of `threads` workers (None or 0: one per core), with the command line's stack size.
pub fn pool(threads: Option<usize>) -> PyResult<Arc<ThreadPool>> {
    let n = threads.unwrap_or(0);
    let limit = cagem_cli::ranges::max_threads();
    if n > limit {
        return Err(PyValueError::new_err(format!(
            "threads={n} is more than twice this machine's cores ({limit} at most)"
        )));
    }
    let mut guard = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let pools = guard.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&n) {
        return Ok(p.clone());
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .stack_size(cagem_cli::WORKER_STACK)
        .build()
        .map_err(|e| PyValueError::new_err(format!("cannot start {n} threads: {e}")))?;
    let p = Arc::new(built);
    pools.insert(n, p.clone());
    Ok(p)
}

/// Runs `f` on a worker of `pool` (as the command line runs its commands), the GIL released.
pub fn on_pool<R: Send>(py: pyo3::Python<'_>, pool: &ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    py.detach(|| pool.install(f))
}
