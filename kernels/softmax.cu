// Softmax and log-softmax over each row, one warp per row. CPU twin: src/softmax.rs.
//   forward:  log_softmax = x − m − ln Σ exp(x − m), softmax = exp(x − m)/Σ exp(x − m), m = max
//   backward: softmax: dx = y(g − Σ g·y); log-softmax: dx = g − exp(y)·Σ g
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void softmax_forward_impl(const T* x, T* out, u32 rows, u32 cols, int log_out) {
    WARP_PER_ROW(rows);
    const T* xr = x + row * cols;
    const T m = warp_row_max(xr, cols, lane);
    const T s = warp_row_sum_exp(xr, cols, lane, m);
    const T ls = log(s);
    for (u32 c = lane; c < cols; c += WARP) out[row * cols + c] = log_out ? xr[c] - m - ls : exp(xr[c] - m) / s;
}

template <typename T>
__device__ __forceinline__ void softmax_backward_impl(const T* g, const T* y, T* dx, u32 rows, u32 cols, int log_out,
                                                      int acc) {
    WARP_PER_ROW(rows);
    const u64 off = row * cols;
    T s = 0;
    for (u32 c = lane; c < cols; c += WARP) s += log_out ? g[off + c] : g[off + c] * y[off + c];
    s = warp_sum(s);
    for (u32 c = lane; c < cols; c += WARP) {
        const T v = log_out ? g[off + c] - exp(y[off + c]) * s : y[off + c] * (g[off + c] - s);
        put(dx, off + c, v, acc);
    }
}

#define KERNELS(T, S)                                                                                   \
    extern "C" __global__ void softmax_forward_##S(const T* x, T* out, u32 rows, u32 cols, int log_out) { \
        softmax_forward_impl<T>(x, out, rows, cols, log_out);                                           \
    }                                                                                                   \
    extern "C" __global__ void softmax_backward_##S(const T* g, const T* y, T* dx, u32 rows, u32 cols,  \
                                                    int log_out, int acc) {                             \
        softmax_backward_impl<T>(g, y, dx, rows, cols, log_out, acc);                                   \
    }
KERNELS(float, f32)
KERNELS(double, f64)
