// collective.cu - what data-parallel training computes around its collectives.
//
// Kernels:
//   weighted_row_sum(parts, weights, out, rows, n)
//       out[i] = sum over r = 0, 1, ..., rows - 1, in that order, of weights[r] * parts[r * n + i]
//
// Used on the gradients all-gathered from every rank (rows = ranks, row r from rank r,
// weights[r] = rank r's share of the global batch), so the sum is taken in rank order and two
// runs on the same ranks round alike; with rows = 1 it scales one buffer (a rank's gradient
// weighted before an all-reduce). The NumPy reference is gpunet/primitives/collective.py's.
// Layout: parts is a (rows, n) C-order float32 buffer; weights (rows,); out (n,).
// Threads: a grid-stride loop, one output element per thread per step; the loop over rows is
// inside the thread, so the order of the additions never depends on the launch.
// Gradients: none (not differentiated); out is written (=).

#include "common.cuh"   // GRID_STRIDE_LOOP

extern "C" __global__ void weighted_row_sum(const float* __restrict__ parts, const float* __restrict__ weights,
                                            float* __restrict__ out, int rows, int n) {
    GRID_STRIDE_LOOP(i, n) {
        float total = weights[0] * parts[i];
        for (int r = 1; r < rows; ++r) total += weights[r] * parts[(size_t)r * n + i];
        out[i] = total;
    }
}
