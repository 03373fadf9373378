// Dynamic binarisation: out[b, d] = 1 if u < probs[rows[b], d] else 0, u the uniform draw
// b·cols + d of the stream (rng.cuh). CPU twin: src/binarize.rs.
#include "rng.cuh"

template <typename T>
__device__ __forceinline__ void binarize_impl(const T* probs, const u32* rows_idx, T* out, u32 rows, u32 cols,
                                              u64 seed, u64 stream) {
    for_each_uniform((u64)rows * cols, seed, stream, [&](u64 i, double u) {
        const u64 r = i / cols, c = i % cols;
        out[i] = u < (double)probs[(u64)rows_idx[r] * cols + c] ? (T)1 : (T)0;
    });
}

#define KERNELS(T, S)                                                                                  \
    extern "C" __global__ void binarize_##S(const T* probs, const u32* rows_idx, T* out, u32 rows,    \
                                            u32 cols, u64 seed, u64 stream) {                          \
        binarize_impl<T>(probs, rows_idx, out, rows, cols, seed, stream);                              \
    }
KERNELS(float, f32)
KERNELS(double, f64)
