// loss.cu - losses (value and gradient) and the metric reductions, deterministic throughout.
//
// Kernels (C = classes, the last axis; rows = every other element; n = all elements):
//   softmax_cross_entropy_forward(y_true, logits, probs, partial, rows, C)
//   sparse_softmax_cross_entropy_forward(labels, logits, probs, partial, rows, C)
//       probs = softmax(logits) (row max subtracted, log-sum-exp); row loss -sum(y * log_softmax)
//   softmax_cross_entropy_backward(y_true, probs, dx, rows, C, rows_f)   dx = (p * sum(y) - y) / rows
//   sparse_softmax_cross_entropy_backward(labels, probs, dx, n, C, rows_f)   dx = (p - onehot) / rows
//   categorical_crossentropy_forward(y_true, y_pred, partial, rows, C, lo, hi)
//   sparse_categorical_crossentropy_forward(labels, y_pred, partial, rows, C, lo, hi)
//       row loss -sum(y * log(clip(p / sum(p), lo, hi)))
//   categorical_crossentropy_backward(y_true, y_pred, dx, rows, C, lo, hi, rows_f)
//   sparse_categorical_crossentropy_backward(labels, y_pred, dx, rows, C, lo, hi, rows_f)
//       through the row normalisation, zero where the clip is active
//   binary_crossentropy_sum_partials(y_true, y_pred, partial, n, lo, hi)   -(y log p + (1-y) log(1-p))
//   binary_crossentropy_from_logits_sum_partials(y_true, logits, partial, n)   max(x,0) - xy + log1p(e^-|x|)
//   squared_error_sum_partials(y_true, y_pred, partial, n)                (p - y)^2
//   absolute_error_sum_partials(y_true, y_pred, partial, n)               |p - y|
//   sum_partials_finish(partial, count, out, divisor)                     out[0] = sum(partial) / divisor
//   sum_scalars(values, count, out, divisor)   the same over 0-d arrays whose addresses `values` holds
//   binary_crossentropy_backward(y_true, y_pred, dx, n, lo, hi, n_f)      (p - y) / (p (1 - p)) / n
//   binary_crossentropy_from_logits_backward(y_true, logits, dx, n, n_f)  (sigmoid(x) - y) / n
//   mse_backward(y_true, y_pred, dx, n, two_over_n)                       (p - y) * (2 / n)
//   mae_backward(y_true, y_pred, dx, n, n_f)                              sign(p - y) / n
//   count_argmax_equal(y_true, y_pred, count, rows, C)     count += rows with equal argmax
//   count_label_equal(labels, y_pred, count, rows, C)      count += rows with argmax == label
//   count_binary_equal(y_true, y_pred, count, n, threshold)   count += elements with (p > t) == y
//
// Layout: any; flat buffers, the class axis last and contiguous (NHWC channels). Sparse labels
// are int32, one per row; a label outside [0, C) makes its row loss NaN.
// Dtypes: the kernels but sum_partials_finish are templates on T (float, bf16_t, fp16_t): the
// predictions / logits and their gradient dx are T; targets, probs, partials and losses float32
// (Keras's Loss converts both y_true and y_pred to its float32 dtype: reading T and widening it
// is that conversion, fused). Each kernel widens what it loads, computes in float32 and rounds
// once where it stores a T (dx); the softmax's probs stay float32, since (p - 1) of a rounded p
// near 1 would lose every bit of the gradient.
// argmax is NumPy's: the first maximum, a NaN counting as the maximum.
// Threads: blocks of 256 threads (8 warps). Row kernels (cross-entropies, argmax counts) give
// each warp whole rows, grid-stride over rows; lane l takes columns l, l + 32, ... and the row's
// max / sums are __shfl_xor_sync reductions. Elementwise kernels grid-stride over n.
// Means: a forward kernel writes one partial sum per block (partial[blockIdx.x]; a block adds its
// warps' or threads' sums in a fixed order), then sum_partials_finish, one block, adds the
// partials in a fixed order and divides. The grid size is a function of the shape alone, so two
// runs give identical bits; no float atomics anywhere.
// Backward needs: the fused softmax cross-entropies their probs (written by forward); the
// others the forward inputs.
// Gradients and partials are written (=). The counts are integers accumulated (+=) with one
// atomicAdd per block into a zeroed unsigned long long: integer sums are exact in any order.

#define THREADS 256

#include "common.cuh"   // GRID_STRIDE_LOOP, ROW_PER_WARP_LOOP, warp_sum, warp_max, block_sum
#include "xent.cuh"     // clip, softmax_cross_entropy_rows, categorical_crossentropy_rows

// Targets of a cross-entropy row: dense (..., C) floats, or one int32 label per row.
struct DenseTargets {
    const float* y;
    int cols;
    __device__ float at(int row, int j) const { return y[(long long)row * cols + j]; }
    __device__ bool valid(int) const { return true; }
};

struct LabelTargets {
    const int* labels;
    int cols;
    __device__ float at(int row, int j) const { return labels[row] == j ? 1.0f : 0.0f; }
    __device__ bool valid(int row) const { return labels[row] >= 0 && labels[row] < cols; }
};

// -- softmax cross-entropy from logits (fused) --------------------------------------------------

template <class T> __global__ void __launch_bounds__(THREADS)
softmax_cross_entropy_forward(const float* __restrict__ y_true, const T* __restrict__ logits,
                              float* __restrict__ probs, float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(DenseTargets{y_true, cols}, logits, probs, partial, rows, cols);
}

template <class T> __global__ void __launch_bounds__(THREADS)
sparse_softmax_cross_entropy_forward(const int* __restrict__ labels, const T* __restrict__ logits,
                                     float* __restrict__ probs, float* __restrict__ partial, int rows, int cols) {
    softmax_cross_entropy_rows(LabelTargets{labels, cols}, logits, probs, partial, rows, cols);
}

// probs float32 (from forward), dx in the logits' T: one rounding, of the finished gradient.
template <class T> __global__ void __launch_bounds__(THREADS)
softmax_cross_entropy_backward(const float* __restrict__ y_true, const float* __restrict__ probs,
                               T* __restrict__ dx, int rows, int cols, float rows_f) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        long long base = (long long)row * cols;
        float total = 0.0f;   // sum(y_true): 1 for one-hot rows, anything for soft targets
        for (int j = lane; j < cols; j += 32) total += y_true[base + j];
        total = warp_sum(total);
        for (int j = lane; j < cols; j += 32)
            dx[base + j] = from_float<T>((probs[base + j] * total - y_true[base + j]) / rows_f);
    }
}

template <class T>
__global__ void sparse_softmax_cross_entropy_backward(const int* __restrict__ labels, const float* __restrict__ probs,
                                                      T* __restrict__ dx, int n, int cols, float rows_f) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>((probs[i] - (labels[i / cols] == i % cols ? 1.0f : 0.0f)) / rows_f);
}

// -- categorical cross-entropy on probabilities ---------------------------------------------------

// d(-y log(clip(q)) / rows)/dq: zero where the clip is active.
__device__ __forceinline__ float clipped_log_gradient(float y, float q, float lo, float hi, float rows_f) {
    return q >= lo && q <= hi ? -y / q / rows_f : 0.0f;
}

template <class Targets, class T>
__device__ void categorical_crossentropy_backward_rows(Targets targets, const T* __restrict__ y_pred,
                                                       T* __restrict__ dx, int rows, int cols,
                                                       float lo, float hi, float rows_f) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        const T* pr = y_pred + (long long)row * cols;
        T* dr = dx + (long long)row * cols;
        float scale = 0.0f;
        for (int j = lane; j < cols; j += 32) scale += to_float(pr[j]);
        scale = warp_sum(scale);
        // dq = d(loss)/d(p / scale), recomputed in the second pass rather than stored.
        float dot = 0.0f;
        for (int j = lane; j < cols; j += 32) {
            float q = to_float(pr[j]) / scale;
            dot += clipped_log_gradient(targets.at(row, j), q, lo, hi, rows_f) * q;
        }
        dot = warp_sum(dot);
        for (int j = lane; j < cols; j += 32) {
            float q = to_float(pr[j]) / scale;
            dr[j] = from_float<T>((clipped_log_gradient(targets.at(row, j), q, lo, hi, rows_f) - dot) / scale);
        }
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
categorical_crossentropy_forward(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                 float* __restrict__ partial, int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(DenseTargets{y_true, cols}, y_pred, partial, rows, cols, lo, hi);
}

template <class T> __global__ void __launch_bounds__(THREADS)
sparse_categorical_crossentropy_forward(const int* __restrict__ labels, const T* __restrict__ y_pred,
                                        float* __restrict__ partial, int rows, int cols, float lo, float hi) {
    categorical_crossentropy_rows(LabelTargets{labels, cols}, y_pred, partial, rows, cols, lo, hi);
}

// (THREADS, 6): with the block size alone, sm_90's ptxas fits the 16-bit instances in 32
// registers by spilling 4 bytes; asked for 6 resident blocks it fits every instance in 31, spill-free.
template <class T> __global__ void __launch_bounds__(THREADS, 6)
categorical_crossentropy_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                  T* __restrict__ dx, int rows, int cols, float lo, float hi, float rows_f) {
    categorical_crossentropy_backward_rows(DenseTargets{y_true, cols}, y_pred, dx, rows, cols, lo, hi, rows_f);
}

template <class T> __global__ void __launch_bounds__(THREADS)
sparse_categorical_crossentropy_backward(const int* __restrict__ labels, const T* __restrict__ y_pred,
                                         T* __restrict__ dx, int rows, int cols, float lo, float hi, float rows_f) {
    categorical_crossentropy_backward_rows(LabelTargets{labels, cols}, y_pred, dx, rows, cols, lo, hi, rows_f);
}

// -- elementwise losses: per-block partial sums, then sum_partials_finish ---------------------------

__device__ __forceinline__ float binary_crossentropy_term(float y, float p, float lo, float hi) {
    float c = clip(p, lo, hi);
    return -(y * logf(c) + (1.0f - y) * logf(1.0f - c));
}

__device__ __forceinline__ float logistic_loss_term(float y, float x) {
    return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
}

// partial[blockIdx.x] = sum of term(y_true[i], y_pred[i]) over the block's grid-stride elements.
template <class T, class Term>
__device__ void sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                             float* __restrict__ partial, int n, Term term) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) acc += term(y_true[i], to_float(y_pred[i]));
    float total = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T> __global__ void __launch_bounds__(THREADS)
binary_crossentropy_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                 float* __restrict__ partial, int n, float lo, float hi) {
    sum_partials(y_true, y_pred, partial, n,
                 [=](float y, float p) { return binary_crossentropy_term(y, p, lo, hi); });
}

template <class T> __global__ void __launch_bounds__(THREADS)
binary_crossentropy_from_logits_sum_partials(const float* __restrict__ y_true, const T* __restrict__ logits,
                                             float* __restrict__ partial, int n) {
    sum_partials(y_true, logits, partial, n, [](float y, float x) { return logistic_loss_term(y, x); });
}

template <class T> __global__ void __launch_bounds__(THREADS)
squared_error_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                           float* __restrict__ partial, int n) {
    sum_partials(y_true, y_pred, partial, n, [](float y, float p) { return (p - y) * (p - y); });
}

template <class T> __global__ void __launch_bounds__(THREADS)
absolute_error_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                            float* __restrict__ partial, int n) {
    sum_partials(y_true, y_pred, partial, n, [](float y, float p) { return fabsf(p - y); });
}

// One block adds up to any number of partials: thread t takes t, t + 256, ... in order, then
// the block sums the threads in a fixed order. divisor 1 gives the plain sum. float32 only.
extern "C" __global__ void __launch_bounds__(THREADS)
sum_partials_finish(const float* __restrict__ partial, int count, float* __restrict__ out, float divisor) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    float total = block_sum(acc);
    if (threadIdx.x == 0) out[0] = total / divisor;
}

// sum_partials_finish over 0-d float32 arrays reached through an address table (a loss and its
// regularization penalties): the same order, so the same bits as summing them stacked.
extern "C" __global__ void __launch_bounds__(THREADS)
sum_scalars(const unsigned long long* __restrict__ values, int count, float* __restrict__ out, float divisor) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += *reinterpret_cast<const float*>(values[i]);
    float total = block_sum(acc);
    if (threadIdx.x == 0) out[0] = total / divisor;
}

// -- elementwise loss gradients: y_pred and dx in T, computed in float, rounded once -------------

template <class T>
__global__ void binary_crossentropy_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                             T* __restrict__ dx, int n, float lo, float hi, float n_f) {
    GRID_STRIDE_LOOP(i, n) {
        float p = to_float(y_pred[i]), c = clip(p, lo, hi);
        float inside = p >= lo && p <= hi ? 1.0f : 0.0f;
        dx[i] = from_float<T>((c - y_true[i]) / (c * (1.0f - c)) * inside / n_f);
    }
}

template <class T>
__global__ void binary_crossentropy_from_logits_backward(const float* __restrict__ y_true, const T* __restrict__ logits,
                                                         T* __restrict__ dx, int n, float n_f) {
    GRID_STRIDE_LOOP(i, n) {
        float x = to_float(logits[i]);
        float e = expf(-fabsf(x));
        float sigmoid = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        dx[i] = from_float<T>((sigmoid - y_true[i]) / n_f);
    }
}

template <class T>
__global__ void mse_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred, T* __restrict__ dx,
                             int n, float two_over_n) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>((to_float(y_pred[i]) - y_true[i]) * two_over_n);
}

template <class T>
__global__ void mae_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred, T* __restrict__ dx,
                             int n, float n_f) {
    GRID_STRIDE_LOOP(i, n) {
        float d = to_float(y_pred[i]) - y_true[i];
        float sign = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : d);   // 0 stays 0, NaN stays NaN
        dx[i] = from_float<T>(sign / n_f);
    }
}

// -- metric counts --------------------------------------------------------------------------------

// NumPy's argmax order as one 64-bit key, the larger key first: the value mapped to an unsigned
// order (every NaN above +inf; -0 as +0, since they compare equal), then the complemented index,
// so that ties go to the lower index. One key makes the warp's argmax one max-reduction.
__device__ __forceinline__ unsigned long long argmax_key(float v, int j) {
    unsigned bits = v == 0.0f ? 0u : __float_as_uint(v);
    unsigned ordered = v != v ? 0xffffffffu : (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((unsigned long long)ordered << 32) | (unsigned)~j;
}

// The row's argmax, the same in every lane of the warp (E: float targets or T predictions,
// widened exactly, so the order is the 16-bit values' own).
template <class E>
__device__ __forceinline__ int warp_row_argmax(const E* __restrict__ xr, int cols, int lane) {
    unsigned long long key = 0;   // below every element's key, -inf's included
    for (int j = lane; j < cols; j += 32) key = max(key, argmax_key(to_float(xr[j]), j));
    for (int offset = 16; offset > 0; offset >>= 1) key = max(key, __shfl_xor_sync(FULL_MASK, key, offset));
    return (int)~(unsigned)key;
}

__device__ __forceinline__ void add_block_count(unsigned long long* count, int warp_count) {
    int total = block_total_of_warps(warp_count);
    if (threadIdx.x == 0 && total != 0) atomicAdd(count, (unsigned long long)total);
}

template <class T> __global__ void __launch_bounds__(THREADS)
count_argmax_equal(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                   unsigned long long* __restrict__ count, int rows, int cols) {
    int lane = threadIdx.x % 32, hits = 0;
    ROW_PER_WARP_LOOP(row, rows) {
        long long base = (long long)row * cols;
        hits += warp_row_argmax(y_true + base, cols, lane) == warp_row_argmax(y_pred + base, cols, lane);
    }
    add_block_count(count, hits);
}

template <class T> __global__ void __launch_bounds__(THREADS)
count_label_equal(const int* __restrict__ labels, const T* __restrict__ y_pred,
                  unsigned long long* __restrict__ count, int rows, int cols) {
    int lane = threadIdx.x % 32, hits = 0;
    ROW_PER_WARP_LOOP(row, rows) hits += warp_row_argmax(y_pred + (long long)row * cols, cols, lane) == labels[row];
    add_block_count(count, hits);
}

template <class T> __global__ void __launch_bounds__(THREADS)
count_binary_equal(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                   unsigned long long* __restrict__ count, int n, float threshold) {
    int hits = 0;
    GRID_STRIDE_LOOP(i, n) hits += (to_float(y_pred[i]) > threshold ? 1.0f : 0.0f) == y_true[i];
    int total = block_sum(hits);
    if (threadIdx.x == 0 && total != 0) atomicAdd(count, (unsigned long long)total);
}
