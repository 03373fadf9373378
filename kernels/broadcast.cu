// Repeating rows and folding them back. CPU twin: src/broadcast.rs.
//   tile_rows: out[r] (=|+=) s·src[r mod p]      add_tiled: out[r] = a[r] + b[r mod p]
//   fold_rows: out[j] (=|+=) Σ_{r ≡ j mod p} g[r] row_sums: out[r] = Σ_c x[r,c]
//   tile_cols: out[r,c] (=|+=) s·g[r]
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void tile_rows_impl(const T* src, T s, T* out, u32 rows, u32 cols, u32 p, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 r = i / cols, c = i % cols;
        put(out, i, s * src[(r % p) * cols + c], acc);
    }
}

template <typename T>
__device__ __forceinline__ void add_tiled_impl(const T* a, const T* b, T* out, u32 rows, u32 cols, u32 p) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 r = i / cols, c = i % cols;
        out[i] = a[i] + b[(r % p) * cols + c];
    }
}

// Block (32, 8): threadIdx.x picks the column, threadIdx.y a stripe of the repeats; grid
// (ceil(cols/32), up to p): blockIdx.y walks the output rows.
template <typename T>
__device__ __forceinline__ void fold_rows_impl(const T* g, T* out, u32 rows, u32 cols, u32 p, int acc) {
    __shared__ T part[8][WARP + 1];
    const u32 c = blockIdx.x * WARP + threadIdx.x;
    const u32 repeats = rows / p;
    for (u32 j = blockIdx.y; j < p; j += gridDim.y) {
        T s = 0;
        if (c < cols)
            for (u32 t = threadIdx.y; t < repeats; t += 8) s += g[((u64)j + (u64)p * t) * cols + c];
        part[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && c < cols) {
            T tot = 0;
            for (int k = 0; k < 8; ++k) tot += part[k][threadIdx.x];
            put(out, (u64)j * cols + c, tot, acc);
        }
        __syncthreads();
    }
}

// One warp per row.
template <typename T> __device__ __forceinline__ void row_sums_impl(const T* x, T* out, u32 rows, u32 cols) {
    WARP_PER_ROW(rows);
    T s = 0;
    for (u32 c = lane; c < cols; c += WARP) s += x[row * cols + c];
    s = warp_sum(s);
    if (lane == 0) out[row] = s;
}

template <typename T>
__device__ __forceinline__ void tile_cols_impl(const T* g, T s, T* out, u32 rows, u32 cols, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) put(out, i, s * g[i / cols], acc);
}

#define KERNELS(T, S)                                                                                 \
    extern "C" __global__ void tile_rows_##S(const T* src, T s, T* out, u32 rows, u32 cols, u32 p,  \
                                             int acc) {                                               \
        tile_rows_impl<T>(src, s, out, rows, cols, p, acc);                                           \
    }                                                                                                 \
    extern "C" __global__ void add_tiled_##S(const T* a, const T* b, T* out, u32 rows, u32 cols,     \
                                             u32 p) {                                                 \
        add_tiled_impl<T>(a, b, out, rows, cols, p);                                                  \
    }                                                                                                 \
    extern "C" __global__ void fold_rows_##S(const T* g, T* out, u32 rows, u32 cols, u32 p, int acc) { \
        fold_rows_impl<T>(g, out, rows, cols, p, acc);                                                \
    }                                                                                                 \
    extern "C" __global__ void row_sums_##S(const T* x, T* out, u32 rows, u32 cols) {               \
        row_sums_impl<T>(x, out, rows, cols);                                                         \
    }                                                                                                 \
    extern "C" __global__ void tile_cols_##S(const T* g, T s, T* out, u32 rows, u32 cols, int acc) { \
        tile_cols_impl<T>(g, s, out, rows, cols, acc);                                                \
    }
KERNELS(float, f32)
KERNELS(double, f64)
