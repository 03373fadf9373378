// Batch normalisation (+ ReLU) over the rows of a rows × cols matrix. CPU twin: src/batchnorm.rs.
//
// Training forward, three launches:
//   bn_moments   per (32 columns, 128 rows) block: shifted sums Σd, Σd² (d = x − x[row 0]) in double
//   bn_finalize  per column: mean, rstd, the affine y = x·scale + offset (computed in double and
//                rounded exactly as the CPU does), running averages (unbiased variance)
//   bn_apply     y = max(0?, x·scale + offset)
// Inference forward: bn_eval_affine (scale, offset from running statistics), then bn_apply.
// Backward, three launches:
//   bn_backward_affine   scale, offset, r per column (as the CPU recomputes them)
//   bn_backward_sums     per block: Σg', Σg'·x̂ in double, g' = g·[x·scale + offset ≥ 0]
//   bn_backward_finalize per column: dβ, dγ, and the means used by dx
//   bn_backward_dx       dx = scale·(g' − mean(g') − x̂·mean(g'x̂))  (means are 0 with running stats)
// Weighted statistics (weighted = 1; row weights w of mean 1, constants): bn_moments sums w·d and
// w·d², bn_finalize takes the unbiased weighted variance for the running averages, and
// bn_backward_dx scales both means by the row's weight. weighted = 0 reads no weight.
#include "common.cuh"

#define BN_ROWS_PER_BLOCK 128

// Reduces each thread's (s1, s2) over the 8 row stripes of a (32, 8) block and writes the
// column's block partials; every thread of the block must call it.
__device__ __forceinline__ void block_column_partials(double s1, double s2, u32 c, u32 cols, double* part1,
                                                      double* part2) {
    __shared__ double s1s[8][WARP + 1], s2s[8][WARP + 1];
    s1s[threadIdx.y][threadIdx.x] = s1;
    s2s[threadIdx.y][threadIdx.x] = s2;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double t1 = 0, t2 = 0;
        for (int k = 0; k < 8; ++k) {
            t1 += s1s[k][threadIdx.x];
            t2 += s2s[k][threadIdx.x];
        }
        part1[(u64)blockIdx.y * cols + c] = t1;
        part2[(u64)blockIdx.y * cols + c] = t2;
    }
}

template <typename T>
__device__ __forceinline__ void bn_moments_impl(const T* x, const T* w, int weighted, double* part1, double* part2,
                                                u32 rows, u32 cols) {
    const u32 c = blockIdx.x * WARP + threadIdx.x;
    const u32 r0 = blockIdx.y * BN_ROWS_PER_BLOCK;
    const u32 r1 = min(rows, r0 + BN_ROWS_PER_BLOCK);
    double s1 = 0, s2 = 0;
    if (c < cols) {
        const double shift = (double)x[c];
        for (u32 r = r0 + threadIdx.y; r < r1; r += 8) {
            const double d = (double)x[(u64)r * cols + c] - shift;
            const double wd = weighted ? (double)w[r] * d : d;
            s1 += wd;
            s2 += wd * d;
        }
    }
    block_column_partials(s1, s2, c, cols, part1, part2);
}

template <typename T>
__device__ __forceinline__ void bn_finalize_impl(const double* part1, const double* part2, u32 row_blocks, const T* x,
                                                 const T* w, int weighted, const T* gamma, const T* beta, T* mean, T* rstd, T* scale, T* offset,
                                                 T* run_mean, T* run_var, u32 rows, u32 cols, double eps,
                                                 double momentum, int update) {
    for (u64 c = thread_index(); c < cols; c += grid_stride()) {
        double s1 = 0, s2 = 0;
        for (u32 b = 0; b < row_blocks; ++b) {
            s1 += part1[(u64)b * cols + c];
            s2 += part2[(u64)b * cols + c];
        }
        const double n = (double)rows;
        const double m1 = s1 / n;
        const double mu = (double)x[c] + m1;
        const double v = fmax(s2 / n - m1 * m1, 0.0);
        const double r = 1.0 / sqrt(v + eps);
        mean[c] = (T)mu;
        rstd[c] = (T)r;
        const double a = (double)gamma[c] * r;
        scale[c] = (T)a;
        offset[c] = (T)((double)beta[c] - mu * a);
        if (update) {
            double bessel = rows > 1 ? n / (n - 1.0) : 1.0;
            if (weighted) {  // 1/(1 − Σw²/n²), as the CPU's unbiased_weighted
                double sum_sq = 0;
                for (u32 r = 0; r < rows; ++r) sum_sq += (double)w[r] * (double)w[r];
                const double f = 1.0 - sum_sq / (n * n);
                bessel = f > 1e-12 ? 1.0 / f : 1.0;
            }
            run_mean[c] = (T)((1.0 - momentum) * (double)run_mean[c] + momentum * (double)mean[c]);
            run_var[c] = (T)((1.0 - momentum) * (double)run_var[c] + momentum * v * bessel);
        }
    }
}

template <typename T>
__device__ __forceinline__ void bn_eval_affine_impl(const T* gamma, const T* beta, const T* rm, const T* rv, T* scale,
                                                    T* offset, u32 cols, double eps) {
    for (u64 c = thread_index(); c < cols; c += grid_stride()) {
        const double a = (double)gamma[c] / sqrt((double)rv[c] + eps);
        scale[c] = (T)a;
        offset[c] = (T)((double)beta[c] - (double)rm[c] * a);
    }
}

template <typename T>
__device__ __forceinline__ void bn_apply_impl(const T* x, const T* scale, const T* offset, T* y, u32 rows, u32 cols,
                                              int relu) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 c = i % cols;
        const T v = x[i] * scale[c] + offset[c];
        y[i] = relu ? max(v, (T)0) : v;
    }
}

// stat: the batch rstd (running = 0) or the running variance (running = 1).
template <typename T>
__device__ __forceinline__ void bn_backward_affine_impl(const T* gamma, const T* beta, const T* mean, const T* stat,
                                                        T* scale, T* offset, T* r_out, u32 cols, double eps,
                                                        int running) {
    for (u64 c = thread_index(); c < cols; c += grid_stride()) {
        const T r = running ? (T)(1.0 / sqrt((double)stat[c] + eps)) : stat[c];
        const T s = (T)((double)gamma[c] * (double)r);
        r_out[c] = r;
        scale[c] = s;
        offset[c] = (T)((double)beta[c] - (double)mean[c] * (double)s);
    }
}

template <typename T>
__device__ __forceinline__ T bn_masked(int relu, T g, T x, T scale, T offset) {
    return (relu && x * scale + offset < (T)0) ? (T)0 : g;
}

template <typename T>
__device__ __forceinline__ void bn_backward_sums_impl(const T* g, const T* x, const T* scale, const T* offset,
                                                      const T* mean, const T* r, double* part_g, double* part_gx,
                                                      u32 rows, u32 cols, int relu) {
    const u32 c = blockIdx.x * WARP + threadIdx.x;
    const u32 r0 = blockIdx.y * BN_ROWS_PER_BLOCK;
    const u32 r1 = min(rows, r0 + BN_ROWS_PER_BLOCK);
    double s1 = 0, s2 = 0;
    if (c < cols) {
        const T sc = scale[c], of = offset[c], mu = mean[c], rc = r[c];
        for (u32 row = r0 + threadIdx.y; row < r1; row += 8) {
            const u64 i = (u64)row * cols + c;
            const T gp = bn_masked(relu, g[i], x[i], sc, of);
            const T xhat = (x[i] - mu) * rc;
            s1 += (double)gp;
            s2 += (double)(gp * xhat);
        }
    }
    block_column_partials(s1, s2, c, cols, part_g, part_gx);
}

template <typename T>
__device__ __forceinline__ void bn_backward_finalize_impl(const double* part_g, const double* part_gx, u32 row_blocks,
                                                          T* dgamma, T* dbeta, T* mean_g, T* mean_gx, u32 rows,
                                                          u32 cols, int want_dgamma, int acc_dgamma, int want_dbeta,
                                                          int acc_dbeta, int batch) {
    for (u64 c = thread_index(); c < cols; c += grid_stride()) {
        double sg = 0, sgx = 0;
        for (u32 b = 0; b < row_blocks; ++b) {
            sg += part_g[(u64)b * cols + c];
            sgx += part_gx[(u64)b * cols + c];
        }
        if (want_dbeta) put(dbeta, c, (T)sg, acc_dbeta);
        if (want_dgamma) put(dgamma, c, (T)sgx, acc_dgamma);
        const double n = (double)rows;
        mean_g[c] = batch ? (T)(sg / n) : (T)0;
        mean_gx[c] = batch ? (T)(sgx / n) : (T)0;
    }
}

template <typename T>
__device__ __forceinline__ void bn_backward_dx_impl(const T* g, const T* x, const T* scale, const T* offset,
                                                    const T* mean, const T* r, const T* w, int weighted,
                                                    const T* mean_g, const T* mean_gx, T* dx, u32 rows, u32 cols,
                                                    int relu, int acc) {
    const u64 n = (u64)rows * cols;
    for (u64 i = thread_index(); i < n; i += grid_stride()) {
        const u64 c = i % cols;
        const T gp = bn_masked(relu, g[i], x[i], scale[c], offset[c]);
        const T xhat = (x[i] - mean[c]) * r[c];
        const T wr = weighted ? w[i / cols] : (T)1;
        put(dx, i, scale[c] * (gp - wr * mean_g[c] - wr * xhat * mean_gx[c]), acc);
    }
}

#define KERNELS(T, S)                                                                                         \
    extern "C" __global__ void bn_moments_##S(const T* x, const T* w, int weighted, double* part1,           \
                                              double* part2, u32 rows, u32 cols) {                            \
        bn_moments_impl<T>(x, w, weighted, part1, part2, rows, cols);                                         \
    }                                                                                                         \
    extern "C" __global__ void bn_finalize_##S(const double* part1, const double* part2, u32 row_blocks,     \
                                               const T* x, const T* w, int weighted, const T* gamma,          \
                                               const T* beta, T* mean, T* rstd, T* scale, T* offset,          \
                                               T* run_mean, T* run_var, u32 rows, u32 cols, double eps,       \
                                               double momentum, int update) {                                 \
        bn_finalize_impl<T>(part1, part2, row_blocks, x, w, weighted, gamma, beta, mean, rstd, scale, offset, \
                            run_mean, run_var, rows, cols, eps, momentum, update);                            \
    }                                                                                                         \
    extern "C" __global__ void bn_eval_affine_##S(const T* gamma, const T* beta, const T* rm, const T* rv,   \
                                                  T* scale, T* offset, u32 cols, double eps) {                \
        bn_eval_affine_impl<T>(gamma, beta, rm, rv, scale, offset, cols, eps);                                \
    }                                                                                                         \
    extern "C" __global__ void bn_apply_##S(const T* x, const T* scale, const T* offset, T* y, u32 rows,     \
                                            u32 cols, int relu) {                                             \
        bn_apply_impl<T>(x, scale, offset, y, rows, cols, relu);                                              \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_affine_##S(const T* gamma, const T* beta, const T* mean,          \
                                                      const T* stat, T* scale, T* offset, T* r_out, u32 cols, \
                                                      double eps, int running) {                              \
        bn_backward_affine_impl<T>(gamma, beta, mean, stat, scale, offset, r_out, cols, eps, running);       \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_sums_##S(const T* g, const T* x, const T* scale, const T* offset, \
                                                    const T* mean, const T* r, double* part_g,                \
                                                    double* part_gx, u32 rows, u32 cols, int relu) {          \
        bn_backward_sums_impl<T>(g, x, scale, offset, mean, r, part_g, part_gx, rows, cols, relu);           \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_finalize_##S(const double* part_g, const double* part_gx,         \
                                                        u32 row_blocks, T* dgamma, T* dbeta, T* mean_g,       \
                                                        T* mean_gx, u32 rows, u32 cols, int want_dgamma,      \
                                                        int acc_dgamma, int want_dbeta, int acc_dbeta,        \
                                                        int batch) {                                          \
        bn_backward_finalize_impl<T>(part_g, part_gx, row_blocks, dgamma, dbeta, mean_g, mean_gx, rows, cols, \
                                     want_dgamma, acc_dgamma, want_dbeta, acc_dbeta, batch);                  \
    }                                                                                                         \
    extern "C" __global__ void bn_backward_dx_##S(const T* g, const T* x, const T* scale, const T* offset,   \
                                                  const T* mean, const T* r, const T* w, int weighted,        \
                                                  const T* mean_g, const T* mean_gx, T* dx, u32 rows,         \
                                                  u32 cols, int relu, int acc) {                              \
        bn_backward_dx_impl<T>(g, x, scale, offset, mean, r, w, weighted, mean_g, mean_gx, dx, rows, cols,   \
                               relu, acc);                                                                    \
    }
KERNELS(float, f32)
KERNELS(double, f64)
