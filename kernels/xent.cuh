// xent.cuh - the cross-entropy rows that loss.cu and weighted_loss.cu share: softmax cross-entropy
// from logits (fused) and categorical cross-entropy on probabilities, one warp per row.
//
// A Targets type gives the row's target weights: at(row, j) (a float: a dense target, a one-hot
// label, either times a sample weight) and valid(row) (false for a label outside [0, C), whose
// row loss is then NaN, not a silent 0). Predictions are read as E (float, bf16_t or fp16_t) and
// widened; everything else is float32: targets, probs, losses, partial sums.
// Threads: blocks of BLOCK_WARPS warps (256 threads); warp w of the grid takes rows w, w + warps
// of the grid, ...; lane l takes columns l, l + 32, ...; row max and sums are warp butterflies, a
// block adds its warps' losses in warp order, so the bits repeat from run to run.
#pragma once
#include "common.cuh"   // ROW_PER_WARP_LOOP, warp_sum, warp_max, block_total_of_warps, to_float

// NaN stays NaN, as in np.clip (fminf/fmaxf would replace it by a bound).
__device__ __forceinline__ float clip(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// One row of the softmax cross-entropy: pr = softmax(xr) (float32), the row loss
// -sum(y * log_softmax(xr)) returned in every lane (NaN for an invalid label).
template <class Targets, class E>
__device__ __forceinline__ float softmax_xent_row(Targets targets, const E* __restrict__ xr, float* __restrict__ pr,
                                                  int row, int cols, int lane) {
    float row_max = -INFINITY;
    for (int j = lane; j < cols; j += 32) row_max = fmaxf(row_max, to_float(xr[j]));
    row_max = warp_max(row_max);   // subtracted first: logits of 1e4 stay finite
    float total = 0.0f;
    for (int j = lane; j < cols; j += 32) total += expf(to_float(xr[j]) - row_max);
    float log_total = logf(warp_sum(total));
    float loss = 0.0f;
    for (int j = lane; j < cols; j += 32) {
        float log_prob = (to_float(xr[j]) - row_max) - log_total;
        pr[j] = expf(log_prob);
        loss -= targets.at(row, j) * log_prob;
    }
    loss = warp_sum(loss);
    return targets.valid(row) ? loss : NAN;
}

// partial[blockIdx.x] = the block's rows' softmax cross-entropies, added in row order per warp.
template <class Targets, class E>
__device__ void softmax_cross_entropy_rows(Targets targets, const E* __restrict__ logits,
                                           float* __restrict__ probs, float* __restrict__ partial,
                                           int rows, int cols) {
    int lane = threadIdx.x % 32;
    float warp_loss = 0.0f;
    ROW_PER_WARP_LOOP(row, rows) {
        long long base = (long long)row * cols;
        warp_loss += softmax_xent_row(targets, logits + base, probs + base, row, cols, lane);
    }
    float total = block_total_of_warps(warp_loss);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// partial[blockIdx.x] = the block's rows' -sum(y * log(clip(p / sum(p), lo, hi))).
template <class Targets, class E>
__device__ void categorical_crossentropy_rows(Targets targets, const E* __restrict__ y_pred,
                                              float* __restrict__ partial, int rows, int cols, float lo, float hi) {
    int lane = threadIdx.x % 32;
    float warp_loss = 0.0f;
    ROW_PER_WARP_LOOP(row, rows) {
        const E* pr = y_pred + (long long)row * cols;
        float scale = 0.0f;   // rows are rescaled to sum 1 before the clip, as Keras does
        for (int j = lane; j < cols; j += 32) scale += to_float(pr[j]);
        scale = warp_sum(scale);
        float loss = 0.0f;
        for (int j = lane; j < cols; j += 32) loss -= targets.at(row, j) * logf(clip(to_float(pr[j]) / scale, lo, hi));
        loss = warp_sum(loss);
        warp_loss += targets.valid(row) ? loss : NAN;
    }
    float total = block_total_of_warps(warp_loss);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}
