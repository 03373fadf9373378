//! Every numeric option is checked where clap parses it: a finite number in its range, or the
//! usage error names the range (clap exits with status 2 for usage errors, 1 for every other
//! error). docs/options.md lists the ranges.

/// The most worker threads `--threads` accepts: twice the machine's logical cores (more only
/// adds switching; a thousand made training ≈ 100× slower).
pub fn max_threads() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{s} is not a finite number"));
    }
    Ok(v)
}

/// A finite number in [lo, hi] (`lo_open`: (lo, hi]).
fn real(s: &str, lo: f64, lo_open: bool, hi: f64) -> Result<f64, String> {
    let v = number(s)?;
    let low_ok = if lo_open { v > lo } else { v >= lo };
    if low_ok && v <= hi {
        return Ok(v);
    }
    let left = if lo_open { "(" } else { "[" };
    let right = if hi == f64::MAX { "∞)".to_string() } else { format!("{hi}]") };
    let shown = if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) { format!("{v:e}") } else { format!("{v}") };
    Err(format!("{shown} is outside {left}{lo}, {right}"))
}

/// A whole number in [lo, hi].
fn count(s: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number ≥ 0"))?;
    if (lo..=hi).contains(&v) {
        return Ok(v);
    }
    if hi == usize::MAX { Err(format!("{v} is less than {lo}")) } else { Err(format!("{v} is outside {lo}..={hi}")) }
}

/// A positive finite number (--beta, --clip-norm, --clip-value, --span, ...).
pub fn positive(s: &str) -> Result<f64, String> {
    real(s, 0.0, true, f64::MAX)
}

/// A finite number ≥ 0 (--warmup, --free-bits-y).
pub fn non_negative(s: &str) -> Result<f64, String> {
    real(s, 0.0, false, f64::MAX)
}

/// Adam's base learning rate: (0, 1].
pub fn learning_rate(s: &str) -> Result<f64, String> {
    real(s, 0.0, true, 1.0)
}

/// β of α = β·(N_u + N_l)/N_l: (0, 10⁴].
pub fn beta(s: &str) -> Result<f64, String> {
    real(s, 0.0, true, 1e4)
}

/// A share in [0, 1] (--routing-floor).
pub fn unit_interval(s: &str) -> Result<f64, String> {
    real(s, 0.0, false, 1.0)
}

/// A fraction strictly between 0 and 1 (--valid-fraction).
pub fn open_fraction(s: &str) -> Result<f64, String> {
    let v = real(s, 0.0, true, 1.0)?;
    if v < 1.0 { Ok(v) } else { Err(format!("{v} is outside (0, 1)")) }
}

/// The σ floor of a Gaussian likelihood: [1e-6, 10⁶] (below, the density kernel's own clamp
/// on log σ² takes over).
pub fn min_std(s: &str) -> Result<f64, String> {
    real(s, 1e-6, false, 1e6)
}

pub fn threads(s: &str) -> Result<usize, String> {
    count(s, 1, max_threads()).map_err(|e| format!("{e} (at most twice this machine's logical cores)"))
}

pub fn at_least_1(s: &str) -> Result<usize, String> {
    count(s, 1, usize::MAX)
}

/// Batch sizes: batch normalisation needs two examples.
pub fn batch(s: &str) -> Result<usize, String> {
    count(s, 2, 1_000_000)
}

/// Latent sizes and the number of clusters.
pub fn latent(s: &str) -> Result<usize, String> {
    count(s, 1, 65_536)
}

/// Importance samples, classifier samples, chunk rows: up to 10⁷.
pub fn samples(s: &str) -> Result<usize, String> {
    count(s, 1, 10_000_000)
}

/// Pictures in a grid, test images shown (--n of sample and reconstruct).
pub fn pictures(s: &str) -> Result<usize, String> {
    count(s, 1, 10_000)
}

pub fn zoom(s: &str) -> Result<usize, String> {
    count(s, 1, 32)
}

/// Grid points per side.
pub fn grid_steps(s: &str) -> Result<usize, String> {
    count(s, 2, 200)
}

/// Picture width or height in pixels.
pub fn pixels(s: &str) -> Result<u32, String> {
    count(s, 200, 20_000).map(|v| v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_what_is_outside_and_say_so() {
        for bad in ["nan", "NaN", "inf", "-inf", "1e400", "x", ""] {
            assert!(positive(bad).is_err() && non_negative(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("0.5"), Ok(0.5));
        assert!(positive("0").unwrap_err().contains("(0, ∞)"));
        assert!(non_negative("-3").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(learning_rate("1e30").unwrap_err().contains("(0, 1]"));
        assert!(beta("-1").is_err() && beta("inf").is_err() && beta("1e5").is_err());
        assert!(open_fraction("1").is_err() && open_fraction("0").is_err());
        assert_eq!(unit_interval("1"), Ok(1.0));
        assert!(at_least_1("0").unwrap_err().contains("less than 1"));
        assert!(at_least_1("-1").is_err());
        assert!(batch("1").is_err());
        assert!(threads("0").is_err() && threads("100000").is_err());
        assert_eq!(threads("1"), Ok(1));
        assert!(pixels("100000").is_err());
    }
}
