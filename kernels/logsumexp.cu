// log Σ exp along rows (one warp per row: the K clusters) or down columns (one thread per
// column: importance samples), maximum subtracted. CPU twin: src/logsumexp.rs.
//   backward: dx = g·exp(x − lse) (0 where lse = −∞)
#include "common.cuh"

template <typename T> __device__ __forceinline__ void lse_rows_impl(const T* x, T* out, u32 rows, u32 cols) {
    WARP_PER_ROW(rows);
    const T* xr = x + row * cols;
    const T m = warp_row_max(xr, cols, lane);
    const T s = warp_row_sum_exp(xr, cols, lane, m);
    if (lane == 0) out[row] = m == neg_inf<T>() ? m : m + log(s);
}

template <typename T> __device__ __forceinline__ void lse_cols_impl(const T* x, T* out, u32 rows, u32 cols) {
    for (u64 c = thread_index(); c < cols; c += grid_stride()) {
        T m = neg_inf<T>();
        for (u64 r = 0; r < rows; ++r) m = max(m, x[r * cols + c]);
        if (m == neg_inf<T>()) {
            out[c] = m;
            continue;
        }
        T s = 0;
        for (u64 r = 0; r < rows; ++r) s += exp(x[r * cols + c] - m);
        out[c] = m + log(s);
    }
}

template <typename T>
__device__ __forceinline__ void lse_backward_impl(const T* g, const T* x, const T* lse, T* dx, u32 rows, u32 cols,
                                                  int along_row, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 j = along_row ? i / cols : i % cols;
        const T l = lse[j];
        put(dx, i, l == neg_inf<T>() ? (T)0 : g[j] * exp(x[i] - l), acc);
    }
}

#define KERNELS(T, S)                                                                                    \
    extern "C" __global__ void lse_rows_##S(const T* x, T* out, u32 rows, u32 cols) {                  \
        lse_rows_impl<T>(x, out, rows, cols);                                                            \
    }                                                                                                    \
    extern "C" __global__ void lse_cols_##S(const T* x, T* out, u32 rows, u32 cols) {                  \
        lse_cols_impl<T>(x, out, rows, cols);                                                            \
    }                                                                                                    \
    extern "C" __global__ void lse_backward_##S(const T* g, const T* x, const T* lse, T* dx, u32 rows, \
                                                u32 cols, int along_row, int acc) {                      \
        lse_backward_impl<T>(g, x, lse, dx, rows, cols, along_row, acc);                                 \
    }
KERNELS(float, f32)
KERNELS(double, f64)
