// metrics.cu - the state updates of the confusion-matrix metrics, kept on the device. Every
// count is an integer added with integer atomics (exact in any order); the F-score sums are
// fixed-order block sums. So every update is deterministic.
//
// Kernels (rows = samples or pixels; states zeroed by the host, then += here):
//   confusion_update(y_true, y_pred, cm, rows, cols_true, cols_pred, classes, ignore_class,
//                    mode_true, mode_pred, threshold)
//       one thread per row: class t of y_true, p of y_pred (mode 0: the value, truncated; 1: the
//       first argmax of the row's cols_* entries; 2: value >= threshold), cm[t * classes + p] += 1
//       unless t or p is outside [0, classes) or t == ignore_class.           cm: uint64 (classes^2)
//   threshold_histogram(y_true, y_pred, hist, n, cols, class_id, thresholds, T)
//       one thread per element (only column class_id when class_id >= 0): b = how many of the
//       ascending thresholds lie strictly below y_pred; hist[(y_true != 0) * (T + 1) + b] += 1.
//       tp[t] = sum of the positive bins above t, and so on (the host sums the T + 1 bins).
//   top_k_count(y_true, y_pred, count, rows, cols, k, sparse)
//       one thread per row: the target class (a label, or the first argmax of a one-hot row) is
//       in the top k when fewer than k predictions exceed its own (ties count as in).  count += .
//   fbeta_update(y_true, y_pred, state, rows, cols, threshold, use_argmax)
//       one block per class c, threads over rows in a fixed order: pred = y_pred >= row max and
//       |y_pred| > 1e-9 (use_argmax) or y_pred > threshold; state[0..3][c] += sum(pred y),
//       sum(pred (1 - y)), sum((1 - pred) y), sum(y).                        state: float (4, cols)
// Weighted updates (Keras 3's sample_weight; weights float32, weight of row / element r is
// weights[r / per], so one weight may cover a sample's every row):
//   weighted_row_sums(y_true, y_pred, weights, partial, rows, cols, per, kind, param)
//   weighted_label_sums(labels, y_pred, weights, partial, rows, cols, per, kind, k)
//       one thread per row in a fixed grid-stride order: v = the row's value (kind 0: argmax of
//       y_true == argmax of y_pred; 1: (y_pred > param) == y_true, cols 1; 2 / 3: mean over the
//       cols of (p - y)^2 / |p - y|; 4: the target class in the top k = param; 5: the mean of
//       y_pred's cols, y_true unread (Mean / Sum); labels: 0 argmax == label, 4 top k); partial[b] = block b's sum of v * w, partial[blocks + b] its sum of
//       the weights, each weight once (the rows r with r % per == 0). Then
//   weighted_sums_finish(partial, blocks, out): out[0..1] = the two sums over the blocks, in order.
//   confusion_update_weighted(..., weights, cm, ..., per, whole)   cm[t * classes + p] += w (float cm;
//       whole: w truncated to an integer first, as an IoU of Keras's default int dtype casts it)
//   threshold_histogram_weighted(..., weights, hist, ..., per)   hist[...] += w (float hist)
//       float atomics: the weighted counts are float32 sums whose last bits may vary with the
//       order the atomics land in (the unweighted counts stay exact integers).
//   fbeta_update takes weights (one per row, read only when weighted != 0): each term times w.
// Dtypes: every kernel is a template on T (float, bf16_t, fp16_t), y_pred's type, read widened
// (exactly: every comparison is the 16-bit values' own); y_true, thresholds and the F-score state
// are float32, the counts integers.
// Layout: flat, the class axis last (NHWC). Threads: 256 per block.

#define THREADS 256

#include "common.cuh"   // GRID_STRIDE_LOOP, block_sum, to_float

// E: float (targets) or T (predictions), widened exactly, so comparisons are the values' own.
template <class E>
__device__ __forceinline__ int first_argmax(const E* row, int cols) {
    int best = 0;
    for (int j = 1; j < cols; ++j) {
        float v = to_float(row[j]), top = to_float(row[best]);
        if (v > top || (v != v && top == top)) best = j;   // NaN wins, as NumPy
    }
    return best;
}

template <class E>
__device__ __forceinline__ int class_of(const E* values, int row, int cols, int mode, float threshold) {
    if (mode == 1) return first_argmax(values + (long long)row * cols, cols);
    float v = to_float(values[row]);
    if (mode == 2) return v >= threshold ? 1 : 0;
    return v != v ? -1 : (int)v;
}

template <class T>
__global__ void confusion_update(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                 unsigned long long* __restrict__ cm, int rows, int cols_true, int cols_pred,
                                 int classes, int ignore_class, int mode_true, int mode_pred, float threshold) {
    GRID_STRIDE_LOOP(r, rows) {
        int t = class_of(y_true, r, cols_true, mode_true, threshold);
        int p = class_of(y_pred, r, cols_pred, mode_pred, threshold);
        if (t >= 0 && t < classes && p >= 0 && p < classes && t != ignore_class)
            atomicAdd(cm + (long long)t * classes + p, 1ull);
    }
}

// The histogram bin of prediction p: how many of the ascending thresholds lie strictly below it.
__device__ __forceinline__ int threshold_bin(float p, const float* __restrict__ thresholds, int num_thresholds) {
    int lo = 0, hi = num_thresholds;   // the first threshold not strictly below p
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p > thresholds[mid]) lo = mid + 1; else hi = mid;
    }
    return lo;
}

template <class T>
__global__ void threshold_histogram(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                    unsigned long long* __restrict__ hist, int n, int cols, int class_id,
                                    const float* __restrict__ thresholds, int num_thresholds) {
    GRID_STRIDE_LOOP(i, n) {
        if (class_id >= 0 && i % cols != class_id) continue;
        int bin = threshold_bin(to_float(y_pred[i]), thresholds, num_thresholds);
        int positive = y_true[i] != 0.0f ? 1 : 0;
        atomicAdd(hist + positive * (num_thresholds + 1) + bin, 1ull);
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
top_k_count(const float* __restrict__ y_true, const T* __restrict__ y_pred, unsigned long long* __restrict__ count,
            int rows, int cols, int k, int sparse) {
    unsigned long long hits = 0;
    GRID_STRIDE_LOOP(r, rows) {
        const T* p = y_pred + (long long)r * cols;
        int target = sparse ? (int)y_true[r] : first_argmax(y_true + (long long)r * cols, cols);
        if (target < 0 || target >= cols) continue;
        int above = 0;
        for (int j = 0; j < cols; ++j) above += to_float(p[j]) > to_float(p[target]) ? 1 : 0;
        hits += above < k ? 1ull : 0ull;
    }
    unsigned long long total = block_sum(hits);
    if (threadIdx.x == 0 && total) atomicAdd(count, total);
}

template <class T> __global__ void __launch_bounds__(THREADS)
fbeta_update(const float* __restrict__ y_true, const T* __restrict__ y_pred, float* __restrict__ state,
             int rows, int cols, float threshold, int use_argmax, const float* __restrict__ weights, int weighted) {
    int c = blockIdx.x;
    float tp = 0.0f, fp = 0.0f, fn = 0.0f, weight = 0.0f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        const T* p = y_pred + (long long)r * cols;
        float v = to_float(p[c]), y = y_true[(long long)r * cols + c];
        bool positive;
        if (use_argmax) {
            float row_max = to_float(p[0]);
            for (int j = 1; j < cols; ++j) row_max = fmaxf(row_max, to_float(p[j]));
            positive = v >= row_max && fabsf(v) > 1e-9f;
        } else {
            positive = v > threshold;
        }
        float pred = positive ? 1.0f : 0.0f;
        if (weighted) {   // Keras multiplies each term by the row's weight
            float w = weights[r];
            tp += pred * y * w, fp += pred * (1.0f - y) * w, fn += (1.0f - pred) * y * w, weight += y * w;
        } else {
            tp += pred * y, fp += pred * (1.0f - y), fn += (1.0f - pred) * y, weight += y;
        }
    }
    tp = block_sum(tp), fp = block_sum(fp), fn = block_sum(fn), weight = block_sum(weight);
    if (threadIdx.x == 0) {
        state[c] += tp, state[cols + c] += fp, state[2 * cols + c] += fn, state[3 * cols + c] += weight;
    }
}

// -- weighted updates -----------------------------------------------------------------------------
// Whether the target class is among the k largest predictions of the row (ties count as in).
template <class T>
__device__ __forceinline__ float in_top_k(const T* p, int target, int cols, int k) {
    if (target < 0 || target >= cols) return 0.0f;
    int above = 0;
    for (int j = 0; j < cols; ++j) above += to_float(p[j]) > to_float(p[target]) ? 1 : 0;
    return above < k ? 1.0f : 0.0f;
}

// The value Keras's metric function gives row r (float32): see "kind" in the header.
template <class T>
__device__ __forceinline__ float row_value(const float* y_true, const T* y_pred, int r, int cols, int kind,
                                           float param) {
    const float* t = y_true + (long long)r * cols;
    const T* p = y_pred + (long long)r * cols;
    if (kind == 0) return first_argmax(t, cols) == first_argmax(p, cols) ? 1.0f : 0.0f;
    if (kind == 1) return (to_float(p[0]) > param ? 1.0f : 0.0f) == t[0] ? 1.0f : 0.0f;
    if (kind == 4) return in_top_k(p, first_argmax(t, cols), cols, (int)param);
    float sum = 0.0f;
    for (int j = 0; j < cols; ++j) {
        float d = kind == 5 ? to_float(p[j]) : to_float(p[j]) - t[j];
        sum += kind == 2 ? d * d : kind == 5 ? d : fabsf(d);
    }
    return sum / (float)cols;
}

// A block's two sums (values times weights, weights) into partial[b] and partial[blocks + b].
__device__ __forceinline__ void store_weighted_partials(float* partial, float v, float w) {
    v = block_sum(v);
    w = block_sum(w);
    if (threadIdx.x == 0) partial[blockIdx.x] = v, partial[gridDim.x + blockIdx.x] = w;
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_row_sums(const float* __restrict__ y_true, const T* __restrict__ y_pred, const float* __restrict__ weights,
                  float* __restrict__ partial, int rows, int cols, int per, int kind, float param) {
    float v = 0.0f, w = 0.0f;
    GRID_STRIDE_LOOP(r, rows) {
        float weight = weights[r / per];
        v += row_value(y_true, y_pred, r, cols, kind, param) * weight;
        if (r % per == 0) w += weight;
    }
    store_weighted_partials(partial, v, w);
}

template <class T> __global__ void __launch_bounds__(THREADS)
weighted_label_sums(const int* __restrict__ labels, const T* __restrict__ y_pred, const float* __restrict__ weights,
                    float* __restrict__ partial, int rows, int cols, int per, int kind, int k) {
    float v = 0.0f, w = 0.0f;
    GRID_STRIDE_LOOP(r, rows) {
        const T* p = y_pred + (long long)r * cols;
        float weight = weights[r / per];
        float hit = kind == 4 ? in_top_k(p, labels[r], cols, k) : (first_argmax(p, cols) == labels[r] ? 1.0f : 0.0f);
        v += hit * weight;
        if (r % per == 0) w += weight;
    }
    store_weighted_partials(partial, v, w);
}

extern "C" __global__ void __launch_bounds__(THREADS)
weighted_sums_finish(const float* __restrict__ partial, int blocks, float* __restrict__ out) {
    float v = 0.0f, w = 0.0f;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) v += partial[b], w += partial[blocks + b];
    v = block_sum(v);
    w = block_sum(w);
    if (threadIdx.x == 0) out[0] = v, out[1] = w;
}

template <class T>
__global__ void confusion_update_weighted(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                          const float* __restrict__ weights, float* __restrict__ cm, int rows,
                                          int cols_true, int cols_pred, int classes, int ignore_class, int mode_true,
                                          int mode_pred, float threshold, int per, int whole) {
    GRID_STRIDE_LOOP(r, rows) {
        int t = class_of(y_true, r, cols_true, mode_true, threshold);
        int p = class_of(y_pred, r, cols_pred, mode_pred, threshold);
        float w = whole ? truncf(weights[r / per]) : weights[r / per];   // Keras's int-dtype IoU truncates
        if (t >= 0 && t < classes && p >= 0 && p < classes && t != ignore_class)
            atomicAdd(cm + (long long)t * classes + p, w);
    }
}

template <class T>
__global__ void threshold_histogram_weighted(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                             const float* __restrict__ weights, float* __restrict__ hist, int n,
                                             int cols, int class_id, const float* __restrict__ thresholds,
                                             int num_thresholds, int per) {
    GRID_STRIDE_LOOP(i, n) {
        if (class_id >= 0 && i % cols != class_id) continue;
        int bin = threshold_bin(to_float(y_pred[i]), thresholds, num_thresholds);
        int positive = y_true[i] != 0.0f ? 1 : 0;
        atomicAdd(hist + positive * (num_thresholds + 1) + bin, weights[i / per]);
    }
}
