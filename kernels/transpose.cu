// out[c, r] (=|+=) x[r, c]. CPU twin: src/transpose.rs. (Small matrices: B × K tables.)
#include "common.cuh"

template <typename T> __device__ __forceinline__ void transpose_impl(const T* x, T* out, u32 rows, u32 cols, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 o = thread_index(); o < n; o += grid_stride()) {
        const u64 c = o / rows, r = o % rows;
        put(out, o, x[r * cols + c], acc);
    }
}

#define KERNELS(T, S)                                                                           \
    extern "C" __global__ void transpose_##S(const T* x, T* out, u32 rows, u32 cols, int acc) { \
        transpose_impl<T>(x, out, rows, cols, acc);                                             \
    }
KERNELS(float, f32)
KERNELS(double, f64)
