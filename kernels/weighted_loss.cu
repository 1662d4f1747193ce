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
//   weighted_total(values, weights, count, out)   out[0] = w[0] v[0] + w[1] v[1] + ... (in this
//       order, float32, one thread): a model's total over its outputs' 0-d losses, reached
//       through the address table `values`, so that a captured step computes it on the device
//
// Why the gradients need no kernels of their own: a row's loss depends on that row alone, so the
// weighted gradient is the unweighted one (loss.cu) times the row's weight: scale_rows.
// Threads: blocks of 256 (8 warps); row kernels give each warp whole rows (lanes over columns,
// shuffle reductions), elementwise ones grid-stride over n. Sums are deterministic: per-block
// partials in a fixed order, then one block adds them (no float atomics). A sparse label outside
// [0, C) makes its row NaN, as in loss.cu.
// Dtypes: every kernel but weighted_sum_finish is a template on T (float, bf16_t, fp16_t), the
// predictions' type (scale_rows: the gradient's); targets, weights, probs, partials and losses
// are float32. Loads are widened, the arithmetic is float32, a T output is rounded once.

#define THREADS 256

#include "common.cuh"   // GRID_STRIDE_LOOP, warp_sum, block_total_of_warps
#include "xent.cuh"     // clip, softmax_cross_entropy_rows, categorical_crossentropy_rows (shared with loss.cu)

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

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_softmax_cross_entropy_forward(const float* __restrict__ y_true, const float* __restrict__ w,
                                       const T* __restrict__ logits, float* __restrict__ probs,
                                       float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(WeightedDense{y_true, w, cols}, logits, probs, partial, rows, cols);
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_sparse_softmax_cross_entropy_forward(const int* __restrict__ labels, const float* __restrict__ w,
                                              const T* __restrict__ logits, float* __restrict__ probs,
                                              float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(WeightedLabels{labels, w, cols}, logits, probs, partial, rows, cols);
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_categorical_crossentropy_forward(const float* __restrict__ y_true, const float* __restrict__ w,
                                          const T* __restrict__ y_pred, float* __restrict__ partial,
                                          int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(WeightedDense{y_true, w, cols}, y_pred, partial, rows, cols, lo, hi);
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_sparse_categorical_crossentropy_forward(const int* __restrict__ labels, const float* __restrict__ w,
                                                 const T* __restrict__ y_pred, float* __restrict__ partial,
                                                 int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(WeightedLabels{labels, w, cols}, y_pred, partial, rows, cols, lo, hi);
}

// -- elementwise losses -------------------------------------------------------------------------

// partial[blockIdx.x] = sum of w[i / cols] * term(y_true[i], y_pred[i]) over the block's elements.
template <class T, class Term>
__device__ void weighted_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                      const float* __restrict__ w, float* __restrict__ partial, int n, int cols,
                                      Term term) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) acc += w[i / cols] * term(y_true[i], to_float(y_pred[i]));
    float total = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_binary_crossentropy_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                          const float* __restrict__ w, float* __restrict__ partial, int n,
                                          int cols, float lo, float hi) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [=](float y, float p) {
        float c = clip(p, lo, hi);
        return -(y * logf(c) + (1.0f - y) * logf(1.0f - c));
    });
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_binary_crossentropy_from_logits_sum_partials(const float* __restrict__ y_true, const T* __restrict__ logits,
                                                      const float* __restrict__ w, float* __restrict__ partial,
                                                      int n, int cols) {
    weighted_sum_partials(y_true, logits, w, partial, n, cols, [](float y, float x) {
        return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
    });
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_squared_error_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                    const float* __restrict__ w, float* __restrict__ partial, int n, int cols) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [](float y, float p) { return (p - y) * (p - y); });
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_absolute_error_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                     const float* __restrict__ w, float* __restrict__ partial, int n, int cols) {
    weighted_sum_partials(y_true, y_pred, w, partial, n, cols, [](float y, float p) { return fabsf(p - y); });
}

// One block adds the partials: thread t takes t, t + 256, ... in order, then the warps in order.
extern "C" __global__ void __launch_bounds__(THREADS)
weighted_sum_finish(const float* __restrict__ partial, int count, float* __restrict__ out, float divisor) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    float total = block_sum(acc);
    if (threadIdx.x == 0) out[0] = total / divisor;
}

// A gradient in T times its row's float32 weight, rounded once to T.
template <class T>
__global__ void scale_rows(const T* __restrict__ x, const float* __restrict__ w, T* __restrict__ out, int n, int cols) {
    GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(to_float(x[i]) * w[i / cols]);
}

// The outputs' losses weighted and added in order, as the NumPy side does: acc = acc + w * v.
// (NVRTC may contract the pair into one FMA: on a GPU a weight other than 1 can differ in the last bit.)
extern "C" __global__ void __launch_bounds__(1)
weighted_total(const unsigned long long* __restrict__ values, const float* __restrict__ weights, int count,
               float* __restrict__ out) {
    float acc = 0.0f;
    for (int k = 0; k < count; ++k) acc = acc + weights[k] * *reinterpret_cast<const float*>(values[k]);
    out[0] = acc;
}
