//! How the CPU kernels split work across rayon threads.
//!
//! Elementwise and row-wise kernels work on row-major matrices. Rows are cut into chunks big
//! enough that a task is worth scheduling (at least `MIN_TASK_ELEMS` elements) and small enough
//! that both cores stay busy; small inputs run inline on the calling thread.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

/// The fewest elements worth a rayon task.
pub const MIN_TASK_ELEMS: usize = 1 << 14;

/// Rows per task for a `rows × cols` matrix.
pub fn rows_per_task(rows: usize, cols: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let min_rows = (MIN_TASK_ELEMS / cols.max(1)).max(1);
    rows.div_ceil(4 * threads).max(min_rows).max(1)
}

/// Calls `f(first_row, chunk)` on disjoint chunks of whole rows of `data` (`cols` per row).
pub fn for_row_chunks<T: Send>(data: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    for_row_chunks_weighted(data, cols, cols, f)
}

/// As [`for_row_chunks`], for rows that each cost about `work_per_row` units of work.
pub fn for_row_chunks_weighted<T: Send>(
    data: &mut [T],
    cols: usize,
    work_per_row: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if data.is_empty() {
        return;
    }
    let cols = cols.max(1);
    let rows = data.len() / cols;
    let per = rows_per_task(rows, work_per_row);
    if per >= rows {
        f(0, data);
    } else {
        data.par_chunks_mut(per * cols).enumerate().for_each(|(i, chunk)| f(i * per, chunk));
    }
}

/// Calls `f(first_index, chunk)` on disjoint chunks of a flat slice whose elements each cost
/// about `work_per_elem` units of work.
pub fn for_elems<T: Send>(data: &mut [T], work_per_elem: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let n = data.len();
    if n == 0 {
        return;
    }
    let per = rows_per_task(n, work_per_elem);
    if per >= n {
        f(0, data);
    } else {
        data.par_chunks_mut(per).enumerate().for_each(|(i, chunk)| f(i * per, chunk));
    }
}

/// Splits `0..rows` into chunks, folds each with `fold(start, end) -> A` and combines them with
/// `combine` (in chunk order, so results are deterministic for a given thread count).
pub fn map_reduce_rows<A: Send>(
    rows: usize,
    cols: usize,
    fold: impl Fn(usize, usize) -> A + Sync + Send,
    combine: impl Fn(A, A) -> A,
) -> A {
    let per = rows_per_task(rows, cols);
    if per >= rows {
        return fold(0, rows);
    }
    let n_chunks = rows.div_ceil(per);
    let parts: Vec<A> = (0..n_chunks).into_par_iter().map(|i| fold(i * per, ((i + 1) * per).min(rows))).collect();
    let mut it = parts.into_iter();
    let first = it.next().expect("at least one chunk");
    it.fold(first, combine)
}

/// Splits `0..cols` into contiguous column ranges and calls `f(start, end)` on each in parallel.
/// For reductions over rows that write per-column results without races.
pub fn for_col_ranges(rows: usize, cols: usize, f: impl Fn(usize, usize) + Sync + Send) {
    let threads = rayon::current_num_threads().max(1);
    let total = rows * cols;
    if total < 2 * MIN_TASK_ELEMS || cols < 2 * 16 {
        f(0, cols);
        return;
    }
    // Ranges of whole cache lines (16 f32) so that threads never share one.
    let per = cols.div_ceil(2 * threads).next_multiple_of(16);
    let n = cols.div_ceil(per);
    (0..n).into_par_iter().for_each(|i| f(i * per, ((i + 1) * per).min(cols)));
}

/// Runs `f` (on a worker of the current pool) while the pool's other workers poll for work
/// instead of falling asleep between parallel ops. A training step runs a few hundred parallel
/// ops with serial gaps between them long enough for rayon's idle workers to go to sleep (≈ 95
/// context switches per bf16 step on the 2-core EPYC), and waking a sleeping worker costs tens of
/// microseconds on a virtual machine. With polling workers a bf16 step took ≈ 1 % less (steps
/// alternating with and without, in one process). The pollers keep their cores busy while `f`
/// runs serial code. Results do not change: every parallel op cuts its work the same way,
/// whichever thread runs each piece.
pub fn with_workers_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 || rayon::current_thread_index().is_none() {
        return f();
    }
    let stop = AtomicBool::new(false);
    let mut out = None;
    rayon::scope(|s| {
        // The pollers go into this worker's queue before anything `f` queues. Thieves take the
        // oldest job first, so by the time any job of `f` is stolen every poller has been too:
        // this worker never runs a poller itself while `f` waits for a stolen job.
        for _ in 0..helpers {
            s.spawn(|_| poll_until(&stop));
        }
        let _stop = StopOnDrop(&stop); // also on a panic in `f`: the scope waits for the pollers
        out = Some(f());
    });
    out.expect("ran")
}

/// Runs pending jobs of the pool as they come until `stop` is set.
fn poll_until(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parallel work inside runs to the same result with the other workers polling, in pools of
    /// 1–3 threads, from a worker and from outside the pool; a panic in `f` comes out of the call
    /// (the pollers stop) instead of hanging it.
    #[test]
    fn with_workers_awake_runs_nested_parallel_work_and_stops() {
        let serial: u64 = (0..1_000_000u64).map(|i| i * i % 7).sum();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let work = || {
                with_workers_awake(|| {
                    (0..20)
                        .map(|_| (0..1_000_000u64).into_par_iter().map(|i| i * i % 7).sum::<u64>())
                        .collect::<Vec<_>>()
                })
            };
            assert_eq!(pool.install(work), vec![serial; 20], "{threads} threads, from a worker");
            assert_eq!(pool.install(|| rayon::join(work, || 1).0), vec![serial; 20], "{threads} threads, in a join");
            let panicked = pool.install(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| with_workers_awake(|| panic!("inside"))))
            });
            assert!(panicked.is_err(), "{threads} threads: the panic came out");
        }
        assert_eq!(with_workers_awake(|| 5), 5, "outside any pool");
    }
}
