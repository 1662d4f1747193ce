// common.cuh - the loops and warp reductions the kernel files share (included by them; it
// defines no kernels of its own).
//
// GRID_STRIDE_LOOP(i, count): thread t of the grid visits t, t + stride, ... < count, stride =
//     gridDim.x * blockDim.x, so any grid size covers any count (the launch helpers keep
//     count + stride within a 32-bit int).
// ROW_PER_WARP_LOOP(row, rows): warp w of the grid (blocks of ROW_WARPS warps) takes rows w,
//     w + warps in the grid, ...; every lane of a warp sees the same rows, so the warp's
//     shuffles are reached by all 32 lanes together.
// warp_sum / warp_max: butterfly reductions with __shfl_xor_sync; every lane gets the result
//     and the order of the operations is fixed (bit-identical from run to run).
// block_total_of_warps(v) / block_sum(v): a block's total of one value per warp / per thread,
//     for blocks of BLOCK_WARPS warps (256 threads); see below.
// nhwc_at(i, h, w, c): (image, row, col, channel) of flat index i of a channels-last array.

#pragma once
#include "dtype.cuh"   // bf16_t / fp16_t, to_float, from_float<T>: what templated kernels load and store

#define FULL_MASK 0xffffffffu

#define GRID_STRIDE_LOOP(i, count) \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (count); i += gridDim.x * blockDim.x)

// Row kernels launch blocks of 256 threads = 8 warps (a constant: blockDim.x / 32 costs the
// loss kernels up to 6 more registers).
#define ROW_WARPS 8
#define ROW_PER_WARP_LOOP(row, rows)                                                            \
    for (int row = blockIdx.x * ROW_WARPS + (int)(threadIdx.x / 32); row < (rows); row += gridDim.x * ROW_WARPS)

template <class T> __device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Blocks of the reductions below: 8 warps (the 256-thread blocks of the loss and metric kernels).
#define BLOCK_WARPS 8

// The block's total of one value per warp (the same in every lane of that warp), the warps added
// in order from 0: a fixed order, so the bits repeat. Every thread of the block must call it; the
// total is meaningful in thread 0 only. The leading barrier lets a kernel call it twice in a row
// (the second call's writes wait until the first call's reader, thread 0, is done).
template <class V> __device__ __forceinline__ V block_total_of_warps(V warp_value) {
    __shared__ V per_warp[BLOCK_WARPS];
    __syncthreads();
    if (threadIdx.x % 32 == 0) per_warp[threadIdx.x / 32] = warp_value;
    __syncthreads();
    V total = 0;
    if (threadIdx.x == 0)
        for (int w = 0; w < BLOCK_WARPS; ++w) total += per_warp[w];
    return total;
}

// The block's total of one value per thread: warp butterflies, then the warps in order (thread 0).
template <class V> __device__ __forceinline__ V block_sum(V v) {
    return block_total_of_warps(warp_sum(v));
}

struct NhwcIndex {
    int image, row, col, ch;
};

__device__ __forceinline__ NhwcIndex nhwc_at(int i, int h, int w, int c) {
    return {i / (c * w * h), (i / (c * w)) % h, (i / c) % w, i % c};
}
