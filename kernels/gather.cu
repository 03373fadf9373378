// Indexed rows and entries. CPU twin: src/gather.rs.
//   gather_add_rows:  out[r] = a[r mod pa] + table[idx[r]]
//   scatter_add_rows: dtable[t] (=|+=) Σ_{r : idx[r] = t} g[r]   (deterministic: no atomics)
//   pick:             out[r] = x[r, idx[r]]
//   pick_backward:    dx[r, c] (=|+=) g[r]·[c = idx[r]]
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void gather_add_rows_impl(const T* a, const T* table, const u32* idx, T* out, u32 rows,
                                                     u32 cols, u32 pa) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 r = i / cols, c = i % cols;
        out[i] = a[(r % pa) * cols + c] + table[(u64)idx[r] * cols + c];
    }
}

// Block (32, 8), grid (ceil(cols/32), up to k): blockIdx.y walks the table rows; the threads of a
// column split the rows in 8 stripes and reduce in shared memory.
template <typename T>
__device__ __forceinline__ void scatter_add_rows_impl(const T* g, const u32* idx, T* dtable, u32 rows, u32 cols,
                                                      u32 k, int acc) {
    __shared__ T part[8][WARP + 1];
    const u32 c = blockIdx.x * WARP + threadIdx.x;
    for (u32 t = blockIdx.y; t < k; t += gridDim.y) {
        T s = 0;
        if (c < cols)
            for (u32 r = threadIdx.y; r < rows; r += 8)
                if (idx[r] == t) s += g[(u64)r * cols + c];
        part[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && c < cols) {
            T tot = 0;
            for (int q = 0; q < 8; ++q) tot += part[q][threadIdx.x];
            put(dtable, (u64)t * cols + c, tot, acc);
        }
        __syncthreads();
    }
}

template <typename T>
__device__ __forceinline__ void pick_impl(const T* x, const u32* idx, T* out, u32 rows, u32 cols) {
    for (u64 r = thread_index(); r < rows; r += grid_stride()) out[r] = x[r * cols + idx[r]];
}

template <typename T>
__device__ __forceinline__ void pick_backward_impl(const T* g, const u32* idx, T* dx, u32 rows, u32 cols, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 r = i / cols, c = i % cols;
        put(dx, i, c == idx[r] ? g[r] : (T)0, acc);
    }
}

#define KERNELS(T, S)                                                                                   \
    extern "C" __global__ void gather_add_rows_##S(const T* a, const T* table, const u32* idx, T* out, \
                                                   u32 rows, u32 cols, u32 pa) {                        \
        gather_add_rows_impl<T>(a, table, idx, out, rows, cols, pa);                                    \
    }                                                                                                   \
    extern "C" __global__ void scatter_add_rows_##S(const T* g, const u32* idx, T* dtable, u32 rows,   \
                                                    u32 cols, u32 k, int acc) {                         \
        scatter_add_rows_impl<T>(g, idx, dtable, rows, cols, k, acc);                                   \
    }                                                                                                   \
    extern "C" __global__ void pick_##S(const T* x, const u32* idx, T* out, u32 rows, u32 cols) {      \
        pick_impl<T>(x, idx, out, rows, cols);                                                          \
    }                                                                                                   \
    extern "C" __global__ void pick_backward_##S(const T* g, const u32* idx, T* dx, u32 rows, u32 cols, \
                                                 int acc) {                                             \
        pick_backward_impl<T>(g, idx, dx, rows, cols, acc);                                             \
    }
KERNELS(float, f32)
KERNELS(double, f64)
