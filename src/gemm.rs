//! Matrix products. Never hand-written: the `gemm` crate on the CPU (strided operands, so
//! transposes cost no copies), cuBLAS on the GPU.
//!
//! Every matrix is row-major and contiguous as stored; `Trans::T` reads the stored matrix
//! transposed. The model needs NN (forward: X·W), NT (dX = dY·Wᵀ) and TN (dW = Xᵀ·dY).

use crate::bf16::Bf16Buf;
use crate::buffer::Buffer;
pub use crate::gemm_shape::{GemmShape, Trans};
use crate::real::Real;

/// The arithmetic of f32 matrix products on the CPU. Bf16: inputs rounded to bf16, products
/// accumulated and written in f32 by oneDNN ([`crate::onednn`]); everything else stays f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// "f32" or "bf16".
    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "f32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    /// Whether bf16 products can run here; Err says why not (CPU or library missing).
    pub fn bf16_available() -> Result<(), String> {
        crate::onednn::get().map(|_| ())
    }
}

/// C (=|+=) op(A)·op(B) with bf16 inputs and f32 accumulation and output (oneDNN's matmul).
/// Panics if oneDNN is unavailable: callers check [`Precision::bf16_available`] up front.
pub fn gemm_bf16(s: GemmShape, a: &Bf16Buf, b: &Bf16Buf, c: &mut [f32], accumulate: bool) {
    let (a, b): (&[u16], &[u16]) = (a, b);
    assert_eq!(a.len(), s.m * s.k, "gemm_bf16: A has {} elements, expected {}×{}", a.len(), s.m, s.k);
    assert_eq!(b.len(), s.k * s.n, "gemm_bf16: B has {} elements, expected {}×{}", b.len(), s.k, s.n);
    assert_eq!(c.len(), s.m * s.n, "gemm_bf16: C has {} elements, expected {}×{}", c.len(), s.m, s.n);
    if s.m == 0 || s.n == 0 {
        return;
    }
    if s.k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let mm = crate::onednn::get().unwrap_or_else(|e| panic!("bf16 matrix product without oneDNN: {e}"));
    let run = |s: GemmShape, a: &[u16], b: &[u16], c: &mut [f32], accumulate: bool| {
        // SAFETY: the lengths were checked above; C is a distinct &mut slice.
        unsafe {
            mm.run(s, a.as_ptr().cast(), b.as_ptr().cast(), c.as_mut_ptr(), accumulate, crate::onednn::Inputs::Bf16)
        }
        .unwrap_or_else(|e| panic!("{e}"))
    };
    if !runs_transposed(s) {
        return run(s, a, b, c, accumulate);
    }
    // Cᵀ = Bᵀ·A (B stored k×n read transposed, A stored k×m read as is), then C (=|+=) (Cᵀ)ᵀ.
    let mut ct = vec![0f32; s.n * s.m];
    run(GemmShape::new(s.n, s.m, s.k, Trans::T, Trans::N), b, a, &mut ct, false);
    for (i, row) in c.chunks_exact_mut(s.n).enumerate() {
        for (j, c) in row.iter_mut().enumerate() {
            let v = ct[j * s.m + i];
            *c = if accumulate { *c + v } else { v };
        }
    }
}

/// Whether [`gemm_bf16`] computes C = Aᵀ·B as (Bᵀ·A)ᵀ: for the weight gradient of a layer a
/// few columns wide (1024×10 = Xᵀ·dY, the cluster logits), because oneDNN vectorises along C's
/// columns. In a bf16 training step on the 2-core EPYC, 1024×10×1000 took 0.41–0.50 ms and
/// 10×1024×1000 0.32–0.35 (alone, with warm caches: 0.46 and 0.13).
pub fn runs_transposed(s: GemmShape) -> bool {
    s.ta == Trans::T && s.tb == Trans::N && s.n <= 16 && 4 * s.n <= s.m
}

/// C (=|+=) op(A)·op(B) on whichever device the buffers live.
pub fn gemm<T: Real>(s: GemmShape, a: &Buffer<T>, b: &Buffer<T>, c: &mut Buffer<T>, accumulate: bool) {
    assert_eq!(a.len(), s.m * s.k, "gemm: A has {} elements, expected {}×{}", a.len(), s.m, s.k);
    assert_eq!(b.len(), s.k * s.n, "gemm: B has {} elements, expected {}×{}", b.len(), s.k, s.n);
    assert_eq!(c.len(), s.m * s.n, "gemm: C has {} elements, expected {}×{}", c.len(), s.m, s.n);
    match c {
        Buffer::Host(c) => cpu::gemm(s, a.host(), b.host(), c, accumulate),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(c) => crate::cuda::blas::gemm(s, a.cuda(), b.cuda(), c, accumulate),
    }
}

/// Two independent products at once. On the CPU each runs single-threaded on its own core
/// (better than splitting each across both: no synchronisation inside either); on a GPU they
/// are queued one after the other. The backward pass of a dense layer is such a pair:
/// dX = dY·Wᵀ and dW = Xᵀ·dY cost exactly the same.
pub fn gemm_pair<T: Real>(
    first: (GemmShape, &Buffer<T>, &Buffer<T>, &mut Buffer<T>, bool),
    second: (GemmShape, &Buffer<T>, &Buffer<T>, &mut Buffer<T>, bool),
) {
    let (s1, a1, b1, c1, acc1) = first;
    let (s2, a2, b2, c2, acc2) = second;
    match (&mut *c1, &mut *c2) {
        (Buffer::Host(h1), Buffer::Host(h2)) if rayon::current_num_threads() > 1 => {
            for (s, a, b, c) in [(s1, a1, b1, h1.len()), (s2, a2, b2, h2.len())] {
                assert!(a.len() == s.m * s.k && b.len() == s.k * s.n && c == s.m * s.n, "gemm_pair: shapes {s:?}");
            }
            rayon::join(
                || cpu::gemm_threads(s1, a1.host(), b1.host(), h1, acc1, 1),
                || cpu::gemm_threads(s2, a2.host(), b2.host(), h2, acc2, 1),
            );
        }
        _ => {
            gemm(s1, a1, b1, c1, acc1);
            gemm(s2, a2, b2, c2, acc2);
        }
    }
}

pub mod cpu {
    use super::{GemmShape, Trans};
    use crate::real::Real;

    /// (row stride, column stride) of op(X) where X is stored row-major as `rows × cols` of
    /// op(X)'s shape before transposition.
    fn strides(t: Trans, op_rows: usize, op_cols: usize) -> (isize, isize) {
        match t {
            Trans::N => (op_cols as isize, 1),
            Trans::T => (1, op_rows as isize),
        }
    }

    /// C (=|+=) op(A)·op(B) with the `gemm` crate, parallel over the rayon pool.
    pub fn gemm<T: Real>(s: GemmShape, a: &[T], b: &[T], c: &mut [T], accumulate: bool) {
        gemm_threads(s, a, b, c, accumulate, 0)
    }

    /// As [`gemm`] on at most `threads` threads (0: the whole current rayon pool; 1: the calling
    /// thread only, for products that run beside other work).
    pub fn gemm_threads<T: Real>(s: GemmShape, a: &[T], b: &[T], c: &mut [T], accumulate: bool, threads: usize) {
        let GemmShape { m, n, k, ta, tb } = s;
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                c.fill(T::zero());
            }
            return;
        }
        let (a_rs, a_cs) = strides(ta, m, k);
        let (b_rs, b_cs) = strides(tb, k, n);
        // SAFETY: the slices hold m·k, k·n and m·n elements (checked by the caller's asserts
        // or by construction) and the strides address exactly those row-major layouts.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                T::one(),
                T::one(),
                false,
                false,
                false,
                if threads == 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(threads) },
            );
        }
    }
}
