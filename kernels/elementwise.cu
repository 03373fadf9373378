// Elementwise kernels: fill, a∘b (add/sub/mul), dst (=|+=) s·x, dst (=|+=) s·a∘b.
// CPU twin: src/elementwise.rs.
#include "common.cuh"

template <typename T> __device__ __forceinline__ void fill_impl(T* x, T v, u64 n) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) x[i] = v;
}

// op: 0 add, 1 sub, 2 mul (BinaryOp::code).
template <typename T> __device__ __forceinline__ void binary_impl(const T* a, const T* b, T* out, u64 n, int op) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const T x = a[i], y = b[i];
        out[i] = op == 0 ? x + y : (op == 1 ? x - y : x * y);
    }
}

template <typename T> __device__ __forceinline__ void scale_into_impl(const T* x, T s, T* dst, u64 n, int acc) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) put(dst, i, s * x[i], acc);
}

template <typename T>
__device__ __forceinline__ void mul_into_impl(const T* a, const T* b, T s, T* dst, u64 n, int acc) {
    for (u64 i = thread_index(); i < n; i += grid_stride()) put(dst, i, s * a[i] * b[i], acc);
}

#define KERNELS(T, S)                                                                                  \
    extern "C" __global__ void fill_##S(T* x, T v, u64 n) { fill_impl<T>(x, v, n); }                \
    extern "C" __global__ void binary_##S(const T* a, const T* b, T* out, u64 n, int op) {          \
        binary_impl<T>(a, b, out, n, op);                                                              \
    }                                                                                                  \
    extern "C" __global__ void scale_into_##S(const T* x, T s, T* dst, u64 n, int acc) {            \
        scale_into_impl<T>(x, s, dst, n, acc);                                                         \
    }                                                                                                  \
    extern "C" __global__ void mul_into_##S(const T* a, const T* b, T s, T* dst, u64 n, int acc) {  \
        mul_into_impl<T>(a, b, s, dst, n, acc);                                                        \
    }
KERNELS(float, f32)
KERNELS(double, f64)
