//! Medians of timings, for the precision probe and the benchmarks: the median, not the mean,
//! so that one slow call (a page fault, another process) does not move the figure.

/// The median of `v` (NaN if empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median seconds of five timed calls of `f` after two untimed ones.
pub fn median_seconds(mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    let t = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(t)
}
