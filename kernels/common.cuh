// Shared helpers of the cagem kernels.
//
// Conventions (mirrored by the Rust launchers in src/*.rs, `mod cuda`):
// - matrices are row-major and contiguous; `rows`, `cols` and periods are unsigned int, element
//   counts unsigned long long; flags are int (0/1); scalars have the element type T;
// - every kernel exists as NAME_f32 and NAME_f64 (extern "C"): each file ends with a macro of
//   thin __global__ wrappers over __device__ templates, invoked for (float, f32) and (double, f64);
// - `acc` selects whether a gradient output is overwritten (0) or accumulated into (1);
// - kernels are compiled with -fmad=false so that x*a + b rounds like the CPU reference (batch
//   norm's ReLU masks then agree exactly).
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;

#define WARP 32

// Global thread index and grid-stride step for 1-D launches.
__device__ __forceinline__ u64 thread_index() { return (u64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ u64 grid_stride() { return (u64)gridDim.x * blockDim.x; }

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <typename T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return -__longlong_as_double(0x7ff0000000000000ll); }

// The preamble of a warp-per-row kernel (bernoulli, broadcast, gaussian, logsumexp, softmax):
// `row`, the row this thread's warp owns, and `lane`, the thread's place in it (lane l visits
// columns l, l + 32, …); threads past the last row return.
#define WARP_PER_ROW(rows)                       \
    const u64 row = thread_index() / WARP;       \
    const u32 lane = threadIdx.x % WARP;         \
    if (row >= (rows)) return

// The maximum of a row of `cols` values, and Σ exp(v − m) (0 when m is −∞), across a warp:
// lane l visits columns l, l + 32, …; every lane gets the result.
template <typename T> __device__ __forceinline__ T warp_row_max(const T* row, u32 cols, u32 lane);
template <typename T> __device__ __forceinline__ T warp_row_sum_exp(const T* row, u32 cols, u32 lane, T m);

// Write or accumulate one gradient element.
template <typename T> __device__ __forceinline__ void put(T* dst, u64 i, T v, int acc) {
    dst[i] = acc ? dst[i] + v : v;
}

// log(1 + e^l) and the logistic function, stable for any l (as in src/bernoulli.rs).
__device__ __forceinline__ float softplus(float l) { return fmaxf(l, 0.0f) + log1pf(expf(-fabsf(l))); }
__device__ __forceinline__ double softplus(double l) { return fmax(l, 0.0) + log1p(exp(-fabs(l))); }
__device__ __forceinline__ float sigmoid(float l) {
    if (l >= 0.0f) return 1.0f / (1.0f + expf(-l));
    float e = expf(l);
    return e / (1.0f + e);
}
__device__ __forceinline__ double sigmoid(double l) {
    if (l >= 0.0) return 1.0 / (1.0 + exp(-l));
    double e = exp(l);
    return e / (1.0 + e);
}

// Log-variance clamp (src/gaussian.rs: LOGVAR_MIN/MAX).
#define LOGVAR_MIN (-30.0)
#define LOGVAR_MAX (30.0)
template <typename T> __device__ __forceinline__ T clamp_logvar(T lv) {
    return min(max(lv, (T)LOGVAR_MIN), (T)LOGVAR_MAX);
}
template <typename T> __device__ __forceinline__ bool logvar_in_range(T lv) {
    return lv >= (T)LOGVAR_MIN && lv <= (T)LOGVAR_MAX;
}

#define LN_2PI 1.8378770664093454835606594728112

// Threads per block of the 1-D launches (the Rust side uses the same constant).
#define BLOCK 256

// Blocks for n work items of a grid-stride kernel, capped (the loop covers the rest).
// (Computed on the host: see src/cuda/launch.rs.)

template <typename T> __device__ __forceinline__ T warp_row_max(const T* row, u32 cols, u32 lane) {
    T m = neg_inf<T>();
    for (u32 c = lane; c < cols; c += WARP) m = max(m, row[c]);
    return warp_max(m);
}

template <typename T> __device__ __forceinline__ T warp_row_sum_exp(const T* row, u32 cols, u32 lane, T m) {
    T s = 0;
    if (m != neg_inf<T>())
        for (u32 c = lane; c < cols; c += WARP) s += exp(row[c] - m);
    return warp_sum(s);
}
