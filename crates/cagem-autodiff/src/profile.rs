//! Where the time goes, per op: set `CAGEM_PROFILE=1` and call [`report`].
//!
//! Forward time of an op is the wall time since the previous node was recorded (ops run one after
//! another, so this is the op's own work plus any glue code before it); backward time is measured
//! around each op's backward. On a GPU the device is synchronised at each mark so that the times
//! belong to the right op (which slows the run: profile, then measure without it).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cagem_kernels::Device;

#[derive(Default, Clone, Copy)]
struct Entry {
    fwd_n: u64,
    fwd: Duration,
    bwd_n: u64,
    bwd: Duration,
}

thread_local! {
    static TABLE: RefCell<HashMap<&'static str, Entry>> = RefCell::new(HashMap::new());
    static LAST: RefCell<Option<Instant>> = const { RefCell::new(None) };
}

/// Whether profiling is on (CAGEM_PROFILE set to anything but 0 or empty).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("CAGEM_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// A short name for an op type ("cagem_autodiff::ops::linear::LinearBackward" → "linear").
pub fn short_name(type_name: &'static str) -> &'static str {
    let last = type_name.rsplit("::").nth(1).unwrap_or(type_name);
    last.split('<').next().unwrap_or(last)
}

/// Attributes the time since the previous mark to the forward of `name`.
pub fn mark_forward(name: &'static str, device: &Device) {
    device.synchronize();
    let now = Instant::now();
    let dt = LAST.with(|l| l.borrow_mut().replace(now)).map(|t| now - t).unwrap_or_default();
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(name).or_default();
        e.fwd_n += 1;
        e.fwd += dt;
    });
}

/// Restarts the forward clock (after work that belongs to no op, such as an optimiser step).
pub fn restart_clock() {
    LAST.with(|l| *l.borrow_mut() = Some(Instant::now()));
}

pub fn add_backward(name: &'static str, dt: Duration) {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(name).or_default();
        e.bwd_n += 1;
        e.bwd += dt;
    });
}

/// Clears the table.
pub fn reset() {
    TABLE.with(|t| t.borrow_mut().clear());
    restart_clock();
}

/// A table of forward and backward milliseconds per op, largest total first.
pub fn report() -> String {
    TABLE.with(|t| {
        let t = t.borrow();
        let mut rows: Vec<(&&str, &Entry)> = t.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.fwd + r.1.bwd));
        let total: Duration = rows.iter().map(|(_, e)| e.fwd + e.bwd).sum();
        let mut s =
            format!("{:<16} {:>8} {:>11} {:>8} {:>11} {:>7}\n", "op", "fwd n", "fwd ms", "bwd n", "bwd ms", "share");
        for (name, e) in rows {
            s += &format!(
                "{:<16} {:>8} {:>11.1} {:>8} {:>11.1} {:>6.1}%\n",
                name,
                e.fwd_n,
                e.fwd.as_secs_f64() * 1e3,
                e.bwd_n,
                e.bwd.as_secs_f64() * 1e3,
                100.0 * (e.fwd + e.bwd).as_secs_f64() / total.as_secs_f64().max(1e-12)
            );
        }
        s
    })
}
