// Adam, in place: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr_t·m/(√v + ε_t), with the
// bias corrections folded into lr_t and ε_t on the host (AdamStep::corrected). CPU twin:
// src/adam.rs.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void adam_impl(T* p, const T* g, T* m, T* v, u64 n, T b1, T b2, T lr_t, T eps_t) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const T gi = g[i];
        const T mi = b1 * m[i] + ((T)1 - b1) * gi;
        const T vi = b2 * v[i] + ((T)1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - lr_t * mi / (sqrt(vi) + eps_t);
    }
}

#define KERNELS(T, S)                                                                                  \
    extern "C" __global__ void adam_##S(T* p, const T* g, T* m, T* v, u64 n, T b1, T b2, T lr_t,      \
                                        T eps_t) {                                                     \
        adam_impl<T>(p, g, m, v, n, b1, b2, lr_t, eps_t);                                              \
    }
KERNELS(float, f32)
KERNELS(double, f64)
