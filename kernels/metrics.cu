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

template <class T>
__global__ void threshold_histogram(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                    unsigned long long* __restrict__ hist, int n, int cols, int class_id,
                                    const float* __restrict__ thresholds, int num_thresholds) {
    GRID_STRIDE_LOOP(i, n) {
        if (class_id >= 0 && i % cols != class_id) continue;
        float p = to_float(y_pred[i]);
        int lo = 0, hi = num_thresholds;   // the first threshold not strictly below p
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (p > thresholds[mid]) lo = mid + 1; else hi = mid;
        }
        int positive = y_true[i] != 0.0f ? 1 : 0;
        atomicAdd(hist + positive * (num_thresholds + 1) + lo, 1ull);
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
             int rows, int cols, float threshold, int use_argmax) {
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
        tp += pred * y, fp += pred * (1.0f - y), fn += (1.0f - pred) * y, weight += y;
    }
    tp = block_sum(tp), fp = block_sum(fp), fn = block_sum(fn), weight = block_sum(weight);
    if (threadIdx.x == 0) {
        state[c] += tp, state[cols + c] += fp, state[2 * cols + c] += fn, state[3 * cols + c] += weight;
    }
}
