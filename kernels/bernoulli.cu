// Bernoulli log-likelihood from logits, summed over each row (one warp per row), and its
// gradient. Targets x repeat with period px. CPU twin: src/bernoulli.rs.
//   log p(x|l) = Σ x·l − softplus(l);  dl = g·(x − σ(l))
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void bern_loglik_impl(const T* logits, const T* x, T* out, u32 rows, u32 cols, u32 px) {
    WARP_PER_ROW(rows);
    const T* lr = logits + row * cols;
    const T* xr = x + (row % px) * cols;
    T s = 0;
    for (u32 c = lane; c < cols; c += WARP) {
        const T l = lr[c];
        s += xr[c] * l - softplus(l);
    }
    s = warp_sum(s);
    if (lane == 0) out[row] = s;
}

template <typename T>
__device__ __forceinline__ void bern_backward_impl(const T* g, const T* logits, const T* x, T* dl, u32 rows, u32 cols,
                                                   u32 px, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 r = i / cols, c = i % cols;
        put(dl, i, g[r] * (x[(r % px) * cols + c] - sigmoid(logits[i])), acc);
    }
}

#define KERNELS(T, S)                                                                                     \
    extern "C" __global__ void bern_loglik_##S(const T* logits, const T* x, T* out, u32 rows, u32 cols,  \
                                               u32 px) {                                                  \
        bern_loglik_impl<T>(logits, x, out, rows, cols, px);                                              \
    }                                                                                                     \
    extern "C" __global__ void bern_backward_##S(const T* g, const T* logits, const T* x, T* dl, u32 rows, \
                                                 u32 cols, u32 px, int acc) {                             \
        bern_backward_impl<T>(g, logits, x, dl, rows, cols, px, acc);                                     \
    }
KERNELS(float, f32)
KERNELS(double, f64)
