// Diagonal-Gaussian and standard-normal log-densities summed over each row (one warp per row),
// and their gradients. Arguments repeat with their own periods (row r reads row r mod p).
// CPU twin: src/gaussian.rs.
//   log N(z; μ, e^λ) = Σ −½(ln 2π + λ + (z − μ)² e^{−λ}),  λ clamped to [−30, 30]
//   dz = −g(z − μ)e^{−λ}, dμ = g(z − μ)e^{−λ}, dλ = −½g(1 − (z − μ)²e^{−λ}) (0 outside the clamp)
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void diag_logdensity_impl(const T* z, const T* mu, const T* lv, T* out, u32 rows, u32 cols,
                                                     u32 pz, u32 pm, u32 pl) {
    WARP_PER_ROW(rows);
    const u64 oz = (row % pz) * cols, om = (row % pm) * cols, ol = (row % pl) * cols;
    T s = 0;
    for (u32 c = lane; c < cols; c += WARP) {
        const T l = clamp_logvar(lv[ol + c]);
        const T d = z[oz + c] - mu[om + c];
        s += (T)LN_2PI + l + d * d * exp(-l);
    }
    s = warp_sum(s);
    if (lane == 0) out[row] = (T)-0.5 * s;
}

// One gradient (which: 0 dz, 1 dμ, 2 dλ) with its own period pout: each thread owns one output
// element and sums its repeats, so nothing races.
template <typename T>
__device__ __forceinline__ void diag_grad_impl(const T* g, const T* z, const T* mu, const T* lv, T* out, u32 rows,
                                               u32 cols, u32 pz, u32 pm, u32 pl, u32 pout, int which, int acc) {
    const u64 n = (u64)pout * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 j = i / cols, c = i % cols;
        T s = acc ? out[i] : (T)0;
        for (u64 r = j; r < rows; r += pout) {
            const T l = lv[(r % pl) * cols + c];
            const T d = z[(r % pz) * cols + c] - mu[(r % pm) * cols + c];
            const T iv = exp(-clamp_logvar(l));
            if (which == 0) s += -g[r] * (d * iv);
            else if (which == 1) s += g[r] * (d * iv);
            else s += logvar_in_range(l) ? (T)-0.5 * g[r] * ((T)1 - d * d * iv) : (T)0;
        }
        out[i] = s;
    }
}

template <typename T> __device__ __forceinline__ void std_normal_impl(const T* z, T* out, u32 rows, u32 cols) {
    WARP_PER_ROW(rows);
    T s = 0;
    for (u32 c = lane; c < cols; c += WARP) {
        const T v = z[row * cols + c];
        s += (T)LN_2PI + v * v;
    }
    s = warp_sum(s);
    if (lane == 0) out[row] = (T)-0.5 * s;
}

template <typename T>
__device__ __forceinline__ void std_normal_backward_impl(const T* g, const T* z, T* dz, u32 rows, u32 cols, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) put(dz, i, -g[i / cols] * z[i], acc);
}

#define KERNELS(T, S)                                                                                      \
    extern "C" __global__ void diag_logdensity_##S(const T* z, const T* mu, const T* lv, T* out, u32 rows, \
                                                   u32 cols, u32 pz, u32 pm, u32 pl) {                     \
        diag_logdensity_impl<T>(z, mu, lv, out, rows, cols, pz, pm, pl);                                   \
    }                                                                                                      \
    extern "C" __global__ void diag_grad_##S(const T* g, const T* z, const T* mu, const T* lv, T* out,     \
                                             u32 rows, u32 cols, u32 pz, u32 pm, u32 pl, u32 pout,         \
                                             int which, int acc) {                                         \
        diag_grad_impl<T>(g, z, mu, lv, out, rows, cols, pz, pm, pl, pout, which, acc);                    \
    }                                                                                                      \
    extern "C" __global__ void std_normal_##S(const T* z, T* out, u32 rows, u32 cols) {                  \
        std_normal_impl<T>(z, out, rows, cols);                                                            \
    }                                                                                                      \
    extern "C" __global__ void std_normal_backward_##S(const T* g, const T* z, T* dz, u32 rows, u32 cols, \
                                                       int acc) {                                          \
        std_normal_backward_impl<T>(g, z, dz, rows, cols, acc);                                            \
    }
KERNELS(float, f32)
KERNELS(double, f64)
