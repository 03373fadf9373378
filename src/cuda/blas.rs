//! Matrix products with cuBLAS (f32: sgemm, f64: dgemm; TF32 tensor cores when the device's
//! TF32 switch is on). cuBLAS is column-major; a row-major C = op(A)·op(B) is the column-major
//! product Cᵀ = op(B)ᵀ·op(A)ᵀ, so the operands swap places and no data moves.

use cudarc::cublas::GemmConfig;
use cudarc::cublas::sys::cublasOperation_t;

use super::buffer::CudaBuffer;
use crate::gemm_shape::{GemmShape, Trans};
use crate::real::Real;

pub fn gemm<T: Real>(s: GemmShape, a: &CudaBuffer<T>, b: &CudaBuffer<T>, c: &mut CudaBuffer<T>, accumulate: bool) {
    let GemmShape { m, n, k, ta, tb } = s;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            crate::elementwise::cuda::fill(c, T::zero());
        }
        return;
    }
    let op = |t: Trans| if t == Trans::N { cublasOperation_t::CUBLAS_OP_N } else { cublasOperation_t::CUBLAS_OP_T };
    let cfg = GemmConfig {
        transa: op(tb),
        transb: op(ta),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: T::one(),
        lda: if tb == Trans::N { n } else { k } as i32,
        ldb: if ta == Trans::N { k } else { m } as i32,
        beta: if accumulate { T::one() } else { T::zero() },
        ldc: n as i32,
    };
    let dev = c.device().clone();
    T::cublas_gemm(dev.blas(), cfg, &b.slice, &a.slice, &mut c.slice)
        .unwrap_or_else(|e| panic!("cuBLAS gemm {s:?} failed: {e:?}"));
}
