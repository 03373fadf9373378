// Philox4x32-10, word for word the generator of src/rng.rs (see its stream layout):
// key = (seed lo, seed hi); counter = (block lo, block hi, stream lo, stream hi), block = i / 4;
// uniforms u = (word + 0.5)·2⁻³² in double; normals by Box–Muller on word pairs (0,1), (2,3).
#pragma once
#include "common.cuh"

__device__ __forceinline__ void philox4x32_10(u32 c[4], u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const u32 hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        const u32 hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        const u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

__device__ __forceinline__ void block_words(u64 seed, u64 stream, u64 block, u32 w[4]) {
    w[0] = (u32)block;
    w[1] = (u32)(block >> 32);
    w[2] = (u32)stream;
    w[3] = (u32)(stream >> 32);
    philox4x32_10(w, (u32)seed, (u32)(seed >> 32));
}

__device__ __forceinline__ double to_unit(u32 w) { return ((double)w + 0.5) * (1.0 / 4294967296.0); }

__device__ __forceinline__ void uniform4(u64 seed, u64 stream, u64 block, double u[4]) {
    u32 w[4];
    block_words(seed, stream, block, w);
#pragma unroll
    for (int j = 0; j < 4; ++j) u[j] = to_unit(w[j]);
}

__device__ __forceinline__ void normal4(u64 seed, u64 stream, u64 block, double n[4]) {
    double u[4];
    uniform4(seed, stream, block, u);
#pragma unroll
    for (int j = 0; j < 4; j += 2) {
        const double r = sqrt(-2.0 * log(u[j]));
        const double theta = 2.0 * 3.14159265358979323846 * u[j + 1];
        n[j] = r * cos(theta);
        n[j + 1] = r * sin(theta);
    }
}

// Calls f(i, d) for every element i < n with d the draw i of the stream, uniform or (NORMAL)
// standard normal: each thread makes the four draws of a Philox block, over a grid-stride loop of
// blocks. Shared by binarisation (uniform) and reparameterisation (normal).
template <bool NORMAL, typename F> __device__ __forceinline__ void for_each_draw(u64 n, u64 seed, u64 stream, F f) {
    const u64 blocks = (n + 3) / 4;
    for (u64 b = thread_index(); b < blocks; b += grid_stride()) {
        double d[4];
        if constexpr (NORMAL) normal4(seed, stream, b, d);
        else uniform4(seed, stream, b, d);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 i = 4 * b + j;
            if (i >= n) break;
            f(i, d[j]);
        }
    }
}

template <typename F> __device__ __forceinline__ void for_each_uniform(u64 n, u64 seed, u64 stream, F f) {
    for_each_draw<false>(n, seed, stream, f);
}

template <typename F> __device__ __forceinline__ void for_each_normal(u64 n, u64 seed, u64 stream, F f) {
    for_each_draw<true>(n, seed, stream, f);
}
