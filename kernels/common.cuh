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

struct NhwcIndex {
    int image, row, col, ch;
};

__device__ __forceinline__ NhwcIndex nhwc_at(int i, int h, int w, int c) {
    return {i / (c * w * h), (i / (c * w)) % h, (i / c) % w, i % c};
}
