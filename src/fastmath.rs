//! exp and log1p that the compiler can vectorise: branch-free polynomials (Cephes' expf and
//! logf) built from arithmetic, bit casts and selects only, so loops over slices become SIMD.
//! libm's versions are scalar calls and made the Bernoulli and Gaussian kernels compute-bound.
//! Accuracy (tests/fastmath.rs): within 2 ulp of the correctly rounded f32 result on their
//! domains. f64 (the gradient checks) keeps std's functions.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two for an exact range reduction (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x for f32, the argument clamped to [−87.3, 88] (so that 2^k stays a normal float).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.336_54, 88.0);
    // k = round(x·log₂e): adding and subtracting 1.5·2²³ rounds to an integer in plain float
    // arithmetic (floor/round are library calls on baseline x86-64 and stop vectorisation).
    const ROUND: f32 = 12_582_912.0;
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let r2 = r * r;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r2 + r + 1.0;
    y * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// ln(x) for f32 and x > 0 (normal numbers).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m·2^e with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 as f32 - 126.0;
    let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    // Keep m near 1: m in [√½, √2) after the shift, then work with m − 1.
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e = if small { e - 1.0 } else { e };
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let p = 7.037_683_6e-2;
    let p = p * m - 1.151_461e-1;
    let p = p * m + 1.167_699_9e-1;
    let p = p * m - 1.242_014_1e-1;
    let p = p * m + 1.424_932_3e-1;
    let p = p * m - 1.666_805_8e-1;
    let p = p * m + 2.000_071_4e-1;
    let p = p * m - 2.499_999_4e-1;
    let p = p * m + 3.333_333e-1;
    let y = p * m * z + e * LN2_LO - 0.5 * z;
    m + y + e * LN2_HI
}

/// ln(1 + y) for f32 and y ≥ 0, accurate for tiny y too: with u = 1 + y rounded,
/// ln(1 + y) = ln(u) − ((u − 1) − y)/u to first order in the rounding error.
#[inline(always)]
pub fn ln_1p_f32(y: f32) -> f32 {
    let u = 1.0 + y;
    let l = ln_f32(u) - ((u - 1.0) - y) / u;
    if u == 1.0 { y } else { l }
}

/// Σᵢ f(aᵢ, bᵢ, cᵢ) over three equally long slices, in eight interleaved partial sums:
/// independent accumulators over fixed-size chunks let the loop vectorise (a single accumulator
/// is a serial dependency the compiler may not reorder).
#[inline(always)]
pub fn lane_sum3<T: num_traits::Float>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) -> T {
    let n = a.len();
    let (b, c) = (&b[..n], &c[..n]);
    let (ac, at) = a.as_chunks::<8>();
    let (bc, bt) = b.as_chunks::<8>();
    let (cc, ct) = c.as_chunks::<8>();
    let mut acc = [T::zero(); 8];
    for ((x, y), z) in ac.iter().zip(bc).zip(cc) {
        for l in 0..8 {
            acc[l] = acc[l] + f(x[l], y[l], z[l]);
        }
    }
    let tail = at.iter().zip(bt).zip(ct).fold(T::zero(), |s, ((&x, &y), &z)| s + f(x, y, z));
    acc.iter().fold(tail, |s, &v| s + v)
}
