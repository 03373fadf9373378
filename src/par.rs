//! How the CPU kernels split work across rayon threads.
//!
//! Elementwise and row-wise kernels work on row-major matrices. Rows are cut into chunks big
//! enough that a task is worth scheduling (at least `MIN_TASK_ELEMS` elements) and small enough
//! that both cores stay busy; small inputs run inline on the calling thread.

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
