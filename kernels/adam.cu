// Adam, in place: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr_t·m/(√v + ε_t), with the
// bias corrections folded into lr_t and ε_t on the host (AdamStep::corrected) and g scaled by
// `scale` (global-norm clipping; 1 when off), then clamped to ±clip (+inf when off). Beside it, the pass that decides whether a step
// happens: per-block partial sums of g² in f64 (global norm; NaN/∞ if any element is). CPU twin:
// src/adam.rs.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void adam_impl(T* p, const T* g, T* m, T* v, u64 n, T b1, T b2, T lr_t, T eps_t,
                                          T scale, T clip) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        T gi = g[i] * scale;
        gi = gi > clip ? clip : (gi < -clip ? -clip : gi);
        const T mi = b1 * m[i] + ((T)1 - b1) * gi;
        const T vi = b2 * v[i] + ((T)1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - lr_t * mi / (sqrt(vi) + eps_t);
    }
}

// Block b writes Σ x² over its grid-stride share to partials[offset + b].
template <typename T> __device__ __forceinline__ void sum_squares_impl(const T* x, u64 n, double* partials, u64 offset) {
    __shared__ double warp_sums[BLOCK / WARP];
    double s = 0.0;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const double xi = (double)x[i];
        s += xi * xi;
    }
    s = warp_sum(s);
    const u32 lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    if (lane == 0) warp_sums[w] = s;
    __syncthreads();
    if (w == 0) {
        s = lane < BLOCK / WARP ? warp_sums[lane] : 0.0;
        s = warp_sum(s);
        if (lane == 0) partials[offset + blockIdx.x] = s;
    }
}

#define KERNELS(T, S)                                                                                  \
    extern "C" __global__ void adam_##S(T* p, const T* g, T* m, T* v, u64 n, T b1, T b2, T lr_t,      \
                                        T eps_t, T scale, T clip) {                                    \
        adam_impl<T>(p, g, m, v, n, b1, b2, lr_t, eps_t, scale, clip);                                 \
    }                                                                                                  \
    extern "C" __global__ void sum_squares_##S(const T* x, u64 n, double* partials, u64 offset) {     \
        sum_squares_impl<T>(x, n, partials, offset);                                                   \
    }
KERNELS(float, f32)
KERNELS(double, f64)
