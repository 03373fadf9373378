//! Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
//! as 1, 2, 3", SC 2011), the generator behind cuRAND's and PyTorch's GPU streams.
//!
//! A draw is a pure function of (seed, stream, element index), so the CPU and a GPU kernel
//! produce the same numbers for the same element no matter how the work is split.
//!
//! Stream layout (the CUDA kernels in `kernels/rng.cuh` follow it word for word):
//! - key     = (seed as low u32, seed >> 32)
//! - counter = (block as low u32, block >> 32, stream as low u32, stream >> 32),
//!   with block = element_index / 4; the 4 output words serve elements 4·block … 4·block + 3.
//! - uniform u = (word + 0.5) · 2⁻³², in (0, 1), computed in f64;
//! - normals by Box–Muller on the word pairs (0, 1) and (2, 3), in f64:
//!   r = √(−2 ln u₀), n₀ = r cos(2π u₁), n₁ = r sin(2π u₁) (likewise n₂, n₃).

use rayon::prelude::*;

use crate::real::Real;

const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// Where a sequence of draws comes from: a user seed and a stream number (one per random call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngStream {
    pub seed: u64,
    pub stream: u64,
}

impl RngStream {
    pub fn new(seed: u64, stream: u64) -> Self {
        RngStream { seed, stream }
    }
}

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// Ten rounds of Philox4x32 on `ctr` under `key`.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mulhilo(PHILOX_M0, c[0]);
        let (hi1, lo1) = mulhilo(PHILOX_M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four raw words of block `block` of `s`.
#[inline]
pub fn block_words(s: RngStream, block: u64) -> [u32; 4] {
    let key = [s.seed as u32, (s.seed >> 32) as u32];
    let ctr = [block as u32, (block >> 32) as u32, s.stream as u32, (s.stream >> 32) as u32];
    philox4x32_10(ctr, key)
}

#[inline(always)]
fn to_unit(w: u32) -> f64 {
    (w as f64 + 0.5) * (1.0 / 4_294_967_296.0)
}

/// Four uniforms in (0, 1) for elements 4·block … 4·block + 3.
#[inline]
pub fn uniform4(s: RngStream, block: u64) -> [f64; 4] {
    let w = block_words(s, block);
    [to_unit(w[0]), to_unit(w[1]), to_unit(w[2]), to_unit(w[3])]
}

/// Four standard normals for elements 4·block … 4·block + 3.
#[inline]
pub fn normal4(s: RngStream, block: u64) -> [f64; 4] {
    let u = uniform4(s, block);
    let (n0, n1) = box_muller(u[0], u[1]);
    let (n2, n3) = box_muller(u[2], u[3]);
    [n0, n1, n2, n3]
}

#[inline(always)]
fn box_muller(u0: f64, u1: f64) -> (f64, f64) {
    let r = (-2.0 * u0.ln()).sqrt();
    let theta = 2.0 * std::f64::consts::PI * u1;
    (r * theta.cos(), r * theta.sin())
}

/// The standard normal for element `i` of stream `s` (slow; for tests and odd accesses).
pub fn normal_at(s: RngStream, i: u64) -> f64 {
    normal4(s, i / 4)[(i % 4) as usize]
}

/// The uniform for element `i` of stream `s`.
pub fn uniform_at(s: RngStream, i: u64) -> f64 {
    uniform4(s, i / 4)[(i % 4) as usize]
}

/// Calls `f(i, value)` for each element `i` in `start..start + len` with its draw from `gen4`.
#[inline]
pub fn for_each_draw(
    s: RngStream,
    start: u64,
    len: usize,
    gen4: fn(RngStream, u64) -> [f64; 4],
    mut f: impl FnMut(usize, f64),
) {
    let end = start + len as u64;
    let mut i = start;
    while i < end {
        let block = i / 4;
        let vals = gen4(s, block);
        let stop = ((block + 1) * 4).min(end);
        while i < stop {
            f((i - start) as usize, vals[(i % 4) as usize]);
            i += 1;
        }
    }
}

/// Fills `out` with standard normals: element `i` gets draw `i` of `s`.
pub fn fill_normal<T: Real>(out: &mut [T], s: RngStream) {
    const CHUNK: usize = 1 << 14; // a multiple of 4, so chunks start on block boundaries
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        for_each_draw(s, (c * CHUNK) as u64, chunk.len(), normal4, |i, v| chunk[i] = T::from_f64(v));
    });
}

/// Fills `out` with uniforms in (0, 1): element `i` gets draw `i` of `s`.
pub fn fill_uniform<T: Real>(out: &mut [T], s: RngStream) {
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        for_each_draw(s, (c * CHUNK) as u64, chunk.len(), uniform4, |i, v| chunk[i] = T::from_f64(v));
    });
}

/// A small sequential generator for host-side choices (shuffles, subsets, initial weights),
/// built on the same Philox function so everything follows from one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRng {
    stream: RngStream,
    /// Words drawn so far; word `w` is word `w % 4` of block `w / 4`.
    drawn: u64,
    buf: [u32; 4],
}

impl HostRng {
    pub fn new(seed: u64, stream: u64) -> Self {
        HostRng::at_position(seed, stream, 0)
    }

    /// The generator's position, for checkpoints: (seed, stream, words drawn).
    pub fn position(&self) -> (u64, u64, u64) {
        (self.stream.seed, self.stream.stream, self.drawn)
    }

    /// A generator restored at a position returned by [`HostRng::position`].
    pub fn at_position(seed: u64, stream: u64, drawn: u64) -> Self {
        let stream = RngStream::new(seed, stream);
        HostRng { stream, drawn, buf: block_words(stream, drawn / 4) }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.drawn.is_multiple_of(4) {
            self.buf = block_words(self.stream, self.drawn / 4);
        }
        let w = self.buf[(self.drawn % 4) as usize];
        self.drawn += 1;
        w
    }

    pub fn next_u64(&mut self) -> u64 {
        ((self.next_u32() as u64) << 32) | self.next_u32() as u64
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in 0..n (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "HostRng::below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u0 = (self.next_u32() as f64 + 0.5) * (1.0 / 4_294_967_296.0);
        let u1 = (self.next_u32() as f64 + 0.5) * (1.0 / 4_294_967_296.0);
        box_muller(u0, u1).0
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<X>(&mut self, v: &mut [X]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
