// Gaussian reparameterisation with in-kernel Philox noise, and its gradients.
// CPU twin: src/reparam.rs. Element i = r·cols + c uses draw i of the stream (rng.cuh); one
// thread makes the four draws of a Philox block.
//   z = μ[r mod pm] + exp(½·clamp(λ[r mod pl]))·ε;  dμ = g,  dλ = ½·g·(z − μ) (0 outside the clamp)
#include "rng.cuh"

template <typename T>
__device__ __forceinline__ void reparam_forward_impl(const T* mu, const T* lv, T* z, u32 rows, u32 cols, u32 pm,
                                                     u32 pl, u64 seed, u64 stream) {
    for_each_normal((u64)rows * cols, seed, stream, [&](u64 i, double e) {
        const u64 r = i / cols, c = i % cols;
        const T l = clamp_logvar(lv[(r % pl) * cols + c]);
        z[i] = mu[(r % pm) * cols + c] + exp((T)0.5 * l) * (T)e;
    });
}

// which: 0 dμ, 1 dλ; each thread owns one output element of period pout and sums its repeats.
template <typename T>
__device__ __forceinline__ void reparam_grad_impl(const T* g, const T* z, const T* mu, const T* lv, T* out, u32 rows,
                                                  u32 cols, u32 pm, u32 pl, u32 pout, int which, int acc) {
    const u64 n = (u64)pout * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 j = i / cols, c = i % cols;
        T s = acc ? out[i] : (T)0;
        for (u64 r = j; r < rows; r += pout) {
            const u64 e = r * cols + c;
            if (which == 0) s += g[e];
            else if (logvar_in_range(lv[(r % pl) * cols + c])) s += (T)0.5 * g[e] * (z[e] - mu[(r % pm) * cols + c]);
        }
        out[i] = s;
    }
}

#define KERNELS(T, S)                                                                                      \
    extern "C" __global__ void reparam_forward_##S(const T* mu, const T* lv, T* z, u32 rows, u32 cols,    \
                                                   u32 pm, u32 pl, u64 seed, u64 stream) {                 \
        reparam_forward_impl<T>(mu, lv, z, rows, cols, pm, pl, seed, stream);                              \
    }                                                                                                      \
    extern "C" __global__ void reparam_grad_##S(const T* g, const T* z, const T* mu, const T* lv, T* out, \
                                                u32 rows, u32 cols, u32 pm, u32 pl, u32 pout, int which,   \
                                                int acc) {                                                 \
        reparam_grad_impl<T>(g, z, mu, lv, out, rows, cols, pm, pl, pout, which, acc);                     \
    }
KERNELS(float, f32)
KERNELS(double, f64)
