//! The vectorisable f32 exp, ln and ln(1+y) against f64 references, densely over their domains.

use cagem_kernels::fastmath::{exp_f32, ln_1p_f32, ln_f32};

fn ulps(got: f32, want: f64) -> f64 {
    let w = want as f32;
    let ulp = (f32::from_bits(w.to_bits() + 1) - w).abs() as f64;
    (got as f64 - want).abs() / ulp
}

#[test]
fn exp_is_within_two_ulp() {
    let mut worst = (0.0, 0.0);
    for i in 0..2_000_000 {
        let x = -87.0 + 175.0 * i as f64 / 2_000_000.0;
        let x = x as f32;
        let e = ulps(exp_f32(x), (x as f64).exp());
        if e > worst.0 {
            worst = (e, x as f64);
        }
    }
    assert!(worst.0 <= 2.0, "exp: {} ulp at x = {}", worst.0, worst.1);
    assert_eq!(exp_f32(0.0), 1.0);
    assert!(exp_f32(-200.0) > 0.0 && exp_f32(-200.0) < 2e-38 && exp_f32(200.0).is_finite());
}

#[test]
fn ln_and_ln_1p_are_within_two_ulp() {
    let mut worst = (0.0, 0.0);
    for i in 1..2_000_000 {
        let x = (i as f64 / 1_000_000.0) as f32 * 3.0; // (0, 6]
        let e = ulps(ln_f32(x), (x as f64).ln());
        if e > worst.0 && (x as f64).ln().abs() > 1e-30 {
            worst = (e, x as f64);
        }
    }
    assert!(worst.0 <= 2.0, "ln: {} ulp at x = {}", worst.0, worst.1);
    let mut worst = (0.0, 0.0);
    for i in 0..2_000_000 {
        // y = e^{-|l|} for l in [0, 90): the whole range softplus uses, tiny values included.
        let y = (-(i as f64) * 90.0 / 2_000_000.0).exp() as f32;
        let e = ulps(ln_1p_f32(y), (y as f64).ln_1p());
        if e > worst.0 {
            worst = (e, y as f64);
        }
    }
    assert!(worst.0 <= 2.0, "ln_1p: {} ulp at y = {}", worst.0, worst.1);
}
