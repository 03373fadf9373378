//! A floor on the standard deviation of a Gaussian p(x|y,z1) (`--min-std`). Without it, a
//! feature that is constant or takes few values lets σ shrink until the density (and the bound)
//! grows without limit. The density kernel already clamps log σ² at `LOGVAR_MIN`; evaluating it
//! on x·c, μ·c and log σ² + 2 log c, with c chosen so that the clamp falls at 2 log min_std, moves
//! that clamp to the floor, and D·log c added back makes it the density of x again. Only
//! device-generic ops are used, so the floor runs wherever the model runs.

use cagem_autodiff::{Graph, Real, Tensor, Var};
use cagem_kernels::gaussian::LOGVAR_MIN;

/// log N(x; μ, diag max(σ², min_std²)) per row (x may have fewer rows, repeating).
pub fn floored_gaussian_logpdf<T: Real>(g: &mut Graph<T>, x: Var, mu: Var, logvar: Var, min_std: f64) -> Var {
    let d = g.shape(x).1;
    // 2 log c = LOGVAR_MIN − 2 log min_std: log σ² + 2 log c reaches the clamp at the floor.
    let two_log_c = LOGVAR_MIN - 2.0 * min_std.ln();
    let c = T::from_f64((0.5 * two_log_c).exp());
    let dev = g.device().clone();
    let xs = g.scale(x, c);
    let ms = g.scale(mu, c);
    let shift = g.constant(Tensor::full(&dev, 1, d, T::from_f64(two_log_c)));
    let lv = g.add_tiled(logvar, shift);
    let scaled = g.diag_gaussian_logpdf(xs, ms, lv);
    // The density of x·c is that of x divided by c^D.
    let back = g.constant(Tensor::full(&dev, 1, 1, T::from_f64(0.5 * two_log_c * d as f64)));
    g.add_tiled(scaled, back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cagem_autodiff::Device;

    fn logpdf(x: &[f64], mu: &[f64], lv: &[f64]) -> f64 {
        let l2pi = (2.0 * std::f64::consts::PI).ln();
        x.iter().zip(mu).zip(lv).map(|((x, m), v)| -0.5 * (l2pi + v + (x - m) * (x - m) / v.exp())).sum()
    }

    #[test]
    fn the_floor_bounds_sigma_and_leaves_wider_densities_unchanged() {
        let dev = Device::Cpu;
        let min_std: f64 = 0.05;
        let floor = 2.0 * min_std.ln();
        let (x, mu) = ([0.3, -1.0, 2.0], [0.3, -0.5, 2.0]);
        // Row 0: every σ above the floor; row 1: two σ far below it (spikes on the values).
        let lv = [[-1.0, 0.5, -3.0], [-40.0, 2.0, -12.0]];
        let mut g = Graph::<f64>::new(&dev);
        let xv = g.constant(Tensor::from_f64(&dev, 1, 3, &x));
        let mv = g.leaf(Tensor::from_f64(&dev, 1, 3, &mu), true);
        let lvv = g.leaf(Tensor::from_f64(&dev, 2, 3, &lv.concat()), true);
        let out = floored_gaussian_logpdf(&mut g, xv, mv, lvv, min_std);
        let got = g.value(out).to_vec();
        assert!((got[0] - logpdf(&x, &mu, &lv[0])).abs() < 1e-9, "{got:?}");
        let floored: Vec<f64> = lv[1].iter().map(|&v| v.max(floor)).collect();
        assert!((got[1] - logpdf(&x, &mu, &floored)).abs() < 1e-9, "{got:?}");
        // Unfloored, the spike's density would be far higher.
        assert!(logpdf(&x, &mu, &lv[1]) > got[1] + 10.0);
    }
}
