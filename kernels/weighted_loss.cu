// weighted_loss.cu - losses with sample weights (Keras's sample_weight / class_weight): the
// weighted sum of the per-row losses, and the row scaling that weights any loss gradient.
//
// A "row" is one per-sample loss: every element but the last axis (classes for the
// cross-entropies, the averaged axis for the elementwise losses); w holds one float per row.
// Keras's "sum_over_batch_size" divides the weighted sum by the number of rows (not by sum(w)).
//
// Kernels (C = the last axis; rows = n / C):
//   weighted_softmax_cross_entropy_forward(y_true, w, logits, probs, partial, rows, C)
//   weighted_sparse_softmax_cross_entropy_forward(labels, w, logits, probs, partial, rows, C)
//       probs = softmax(logits); partial sums of w[row] * -sum(y * log_softmax)
//   weighted_categorical_crossentropy_forward(y_true, w, y_pred, partial, rows, C, lo, hi)
//   weighted_sparse_categorical_crossentropy_forward(labels, w, y_pred, partial, rows, C, lo, hi)
//       partial sums of w[row] * -sum(y * log(clip(p / sum(p), lo, hi)))
//   weighted_binary_crossentropy_sum_partials(y_true, y_pred, w, partial, n, C, lo, hi)
//   weighted_binary_crossentropy_from_logits_sum_partials(y_true, logits, w, partial, n, C)
//   weighted_squared_error_sum_partials(y_true, y_pred, w, partial, n, C)
//   weighted_absolute_error_sum_partials(y_true, y_pred, w, partial, n, C)
//       partial sums of w[i / C] * term(y, p) over elements
//   weighted_sum_finish(partial, count, out, divisor)      out[0] = sum(partial) / divisor
//   scale_rows(x, w, out, n, C)                            out[i] = x[i] * w[i / C]
//
// Why the gradients need no kernels of their own: a row's loss depends on that row alone, so the
// weighted gradient is the unweighted one (loss.cu) times the row's weight: scale_rows.
// Threads: blocks of 256 (8 warps); row kernels give each warp whole rows (lanes over columns,
// shuffle reductions), elementwise ones grid-stride over n. Sums are deterministic: per-block
// partials in a fixed order, then one block adds them (no float atomics). A sparse label outside
// [0, C) makes its row NaN, as in loss.cu.

#define THREADS 256
#define WARPS (THREADS / 32)

#include "common.cuh"   // GRID_STRIDE_LOOP, ROW_PER_WARP_LOOP, warp_sum, warp_max

// The block's total of one value per warp, in warp order; meaningful in thread 0.
__device__ __forceinline__ float block_total_of_warps(float warp_value) {
    __shared__ float per_warp[WARPS];
    if (threadIdx.x % 32 == 0) per_warp[threadIdx.x / 32] = warp_value;
    __syncthreads();
    float total = 0.0f;
    if (threadIdx.x == 0)
        for (int k = 0; k < WARPS; ++k) total += per_warp[k];
    return total;
}

// NaN stays NaN, as in np.clip.
__device__ __forceinline__ float clip(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Targets of a cross-entropy row times the row's weight (cross-entropies are linear in the targets).
struct WeightedDense {
    const float* y;
    const float* w;
    int cols;
    __device__ float at(int row, int j) const { return w[row] * y[(long long)row * cols + j]; }
    __device__ bool valid(int) const { return true; }
};

struct WeightedLabels {
    const int* labels;
    const float* w;
    int cols;
    __device__ float at(int row, int j) const { return labels[row] == j ? w[row] : 0.0f; }
    __device__ bool valid(int row) const { return labels[row] >= 0 && labels[row] < cols; }
};

template <class Targets>
__device__ void softmax_cross_entropy_rows(Targets targets, const float* __restrict__ logits,
                                           float* __restrict__ probs, float* __restrict__ partial,
                                           int rows, int cols) {
    int lane = threadIdx.x % 32;
    float warp_loss = 0.0f;
    ROW_PER_WARP_LOOP(row, rows) {
        const float* xr = logits + (long long)row * cols;
        float* pr = probs + (long long)row * cols;
        float row_max = -INFINITY;
        for (int j = lane; j < cols; j += 32) row_max = fmaxf(row_max, xr[j]);
        row_max = warp_max(row_max);
        float total = 0.0f;
        for (int j = lane; j < cols; j += 32) total += expf(xr[j] - row_max);
        float log_total = logf(warp_sum(total));
        float loss = 0.0f;
        for (int j = lane; j < cols; j += 32) {
            float log_prob = (xr[j] - row_max) - log_total;
            pr[j] = expf(log_prob);
            loss -= targets.at(row, j) * log_prob;
        }
        loss = warp_sum(loss);
        warp_loss += targets.valid(row) ? loss : NAN;
    }
    float total = block_total_of_warps(warp_loss);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class Targets>
__device__ void categorical_crossentropy_rows(Targets targets, const float* __restrict__ y_pred,
                                              float* __restrict__ partial, int rows, int cols, float lo, float hi) {
    int lane = threadIdx.x % 32;
    float warp_loss = 0.0f;
    ROW_PER_WARP_LOOP(row, rows) {
        const float* pr = y_pred + (long long)row * cols;
        float scale = 0.0f;   // rows rescaled to sum 1 before the clip, as Keras does
        for (int j = lane; j < cols; j += 32) scale += pr[j];
        scale = warp_sum(scale);
        float loss = 0.0f;
        for (int j = lane; j < cols; j += 32) loss -= targets.at(row, j) * logf(clip(pr[j] / scale, lo, hi));
        loss = warp_sum(loss);
        warp_loss += targets.valid(row) ? loss : NAN;
    }
    float total = block_total_of_warps(warp_loss);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_softmax_cross_entropy_forward(const float* __restrict__ y_true, const float* __restrict__ w,
                                       const float* __restrict__ logits, float* __restrict__ probs,
                                       float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(WeightedDense{y_true, w, cols}, logits, probs, partial, rows, cols);
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_sparse_softmax_cross_entropy_forward(const int* __restrict__ labels, const float* __restrict__ w,
                                              const float* __restrict__ logits, float* __restrict__ probs,
                                              float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(WeightedLabels{labels, w, cols}, logits, probs, partial, rows, cols);
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_categorical_crossentropy_forward(const float* __restrict__ y_true, const float* __restrict__ w,
                                          const float* __restrict__ y_pred, float* __restrict__ partial,
                                          int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(WeightedDense{y_true, w, cols}, y_pred, partial, rows, cols, lo, hi);
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_sparse_categorical_crossentropy_forward(const int* __restrict__ labels, const float* __restrict__ w,
                                                 const float* __restrict__ y_pred, float* __restrict__ partial,
                                                 int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(WeightedLabels{labels, w, cols}, y_pred, partial, rows, cols, lo, hi);
}

// -- elementwise losses -------------------------------------------------------------------------

// partial[blockIdx.x] = sum of w[i / cols] * term(y_true[i], y_pred[i]) over the block's elements.
template <class Term>
__device__ void weighted_sum_partials(const float* __restrict__ y_true, const float* __restrict__ y_pred,
                                      const float* __restrict__ w, float* __restrict__ partial, int n, int cols,
                                      Term term) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) acc += w[i / cols] * term(y_true[i], y_pred[i]);
    float total = block_total_of_warps(warp_sum(acc));
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_binary_crossentropy_sum_partials(const float* __restrict__ y_true, const float* __restrict__ y_pred,
                                          const float* __restrict__ w, float* __restrict__ partial, int n,
                                          int cols, float lo, float hi) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [=](float y, float p) {
        float c = clip(p, lo, hi);
        return -(y * logf(c) + (1.0f - y) * logf(1.0f - c));
    });
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_binary_crossentropy_from_logits_sum_partials(const float* __restrict__ y_true,
                                                      const float* __restrict__ logits, const float* __restrict__ w,
                                                      float* __restrict__ partial, int n, int cols) {
    weighted_sum_partials(y_true, logits, w, partial, n, cols, [](float y, float x) {
        return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
    });
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_squared_error_sum_partials(const float* __restrict__ y_true, const float* __restrict__ y_pred,
                                    const float* __restrict__ w, float* __restrict__ partial, int n, int cols) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [](float y, float p) { return (p - y) * (p - y); });
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_absolute_error_sum_partials(const float* __restrict__ y_true, const float* __restrict__ y_pred,
                                     const float* __restrict__ w, float* __restrict__ partial, int n, int cols) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [](float y, float p) { return fabsf(p - y); });
}

// One block adds the partials: thread t takes t, t + 256, ... in order, then the warps in order.
extern "C" __global__ void __launch_bounds__(THREADS)
weighted_sum_finish(const float* __restrict__ partial, int count, float* __restrict__ out, float divisor) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    float total = block_total_of_warps(warp_sum(acc));
    if (threadIdx.x == 0) out[0] = total / divisor;
}

extern "C" __global__ void scale_rows(const float* __restrict__ x, const float* __restrict__ w,
                                      float* __restrict__ out, int n, int cols) {
    GRID_STRIDE_LOOP(i, n) out[i] = x[i] * w[i / cols];
}
