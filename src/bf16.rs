//! f32 → bf16 rounding (round to nearest even, as the hardware's vcvtneps2bf16), for the inputs
//! of bf16 matrix products. bf16 values are kept as their `u16` bit patterns.

use rayon::prelude::*;

/// One value: the top 16 bits of the f32, rounded to nearest even; NaN stays a (quiet) NaN.
#[inline(always)]
pub fn from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// The f32 a bf16 pattern stands for (exact).
#[inline(always)]
pub fn to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The value a bf16 pattern stands for, as a T (exact for f32 and f64).
#[inline(always)]
pub fn widen<T: crate::Real>(h: u16) -> T {
    T::from_f64(f64::from(to_f32(h)))
}

/// Rounds `src` into `dst` (same length), in parallel for long inputs.
pub fn convert(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "bf16::convert: lengths differ");
    const CHUNK: usize = 1 << 16;
    if src.len() <= CHUNK {
        convert_serial(src, dst);
    } else {
        dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| convert_serial(s, d));
    }
}

/// The serial loop; written branch-free so that it compiles to AVX-512 (16 lanes).
pub fn convert_serial(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        return unsafe { convert_avx512(src, dst) };
    }
    convert_portable(src, dst)
}

#[inline(always)]
fn convert_portable(src: &[f32], dst: &mut [u16]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        let b = x.to_bits();
        let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
        let nan = ((b >> 16) | 0x40) as u16;
        *d = if x.is_nan() { nan } else { rounded };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn convert_avx512(src: &[f32], dst: &mut [u16]) {
    convert_portable(src, dst)
}

/// A host vector of bf16 values that returns to a pool when dropped (a step converts the same
/// few dozen shapes every time; fresh multi-megabyte allocations would page-fault each step).
pub struct Bf16Buf {
    data: Vec<u16>,
}

static POOL: std::sync::Mutex<std::collections::BTreeMap<usize, Vec<Vec<u16>>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
/// Pooled bf16 memory is capped so that odd shapes cannot pile up.
const POOL_CAP: usize = 1 << 30;

impl Bf16Buf {
    /// A buffer of `len` values whose contents are unspecified (the caller writes all of them).
    pub fn uninit(len: usize) -> Self {
        let reused = POOL.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&len).and_then(Vec::pop);
        Bf16Buf { data: reused.unwrap_or_else(|| vec![0; len]) }
    }

    /// `src` rounded to bf16.
    pub fn from_f32(src: &[f32]) -> Self {
        let mut b = Self::uninit(src.len());
        convert(src, &mut b.data);
        b
    }

    /// The values as f32 (exact), for tests.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.iter().map(|&h| to_f32(h)).collect()
    }
}

impl Drop for Bf16Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.data);
        if v.is_empty() {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let cached: usize = pool.iter().map(|(len, vs)| len * vs.len() * 2).sum();
        if cached + v.len() * 2 <= POOL_CAP {
            pool.entry(v.len()).or_default().push(v);
        }
    }
}

impl std::ops::Deref for Bf16Buf {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        &self.data
    }
}

impl std::ops::DerefMut for Bf16Buf {
    fn deref_mut(&mut self) -> &mut [u16] {
        &mut self.data
    }
}
