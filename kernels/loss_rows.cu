// loss_rows.cu - losses whose per-sample value needs a whole row (the last axis): cosine
// similarity, categorical hinge, categorical focal cross-entropy (on probabilities or logits).
//
// Kernels (C = cols, the last axis; rows = every other element; y = y_true, p = y_pred, (rows, C)):
//   loss_rows_forward(y, p, partial, rows, C, kind, a, b)          partial[block] = sum of row losses
//   loss_rows_backward(y, p, dx, rows, C, kind, a, b, scale)       dx = d row loss / d p * scale  (=)
//
// kind (a, b):              row loss
//   0 cosine (eps)          -sum(y p) * ny * np,  n. = min(rsqrt(sum(.^2)), 1 / eps)   (Keras's normalize)
//   1 categorical hinge     max(max_j((1 - y) p) - sum(y p) + 1, 0); the gradient goes to the first maximum
//   2 categorical focal (alpha, gamma)   sum_j alpha (1 - o)^gamma (-y log o),  o = clip(p / sum(p), eps, 1 - eps)
//   3 the same on logits    p = softmax(p) first (row max subtracted)
// Gradients through the row normalisation: dp_k = f_k (g_k - sum_j g_j q_j) / S with q = p / S,
// S = sum(p), f = 1 (kind 2) or the softmax s_k (kind 3; S = sum(s)).
// Layout: any; flat buffers, the class axis last and contiguous. Threads: 256 per block,
// a warp per row (ROW_PER_WARP_LOOP), lane l takes columns l, l + 32, ...; row sums and maxima
// are warp butterflies, a block adds its warps in order: identical bits from run to run.
// Backward needs the forward inputs only (each kernel recomputes its row statistics).
// Dtypes: both kernels are templates on T (float, bf16_t, fp16_t), y_pred's and dx's type: p is
// widened where it is read, the row statistics and losses are float32, dx is rounded once to T;
// y_true and the partials are float32.

#define THREADS 256
#define ROW_EPS 1e-7f

#include "common.cuh"   // ROW_PER_WARP_LOOP, warp_sum, warp_max, block_total_of_warps

__device__ __forceinline__ int warp_min_int(int v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = min(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// The statistics of one row that its loss and gradient need (every lane of the warp holds them).
struct RowStats {
    float s0, s1, s2;   // cosine: sum y^2, sum p^2, sum y p; hinge: sum y p, max (1-y)p, first argmax;
                        // focal: sum of the (softmaxed) predictions S, row max (logits), sum exp
};

template <class T>
__device__ __forceinline__ RowStats row_stats(const float* y, const T* p, int cols, int kind, int lane) {
    RowStats st = {0.0f, 0.0f, 0.0f};
    if (kind == 0) {
        for (int j = lane; j < cols; j += 32) {
            st.s0 += y[j] * y[j];
            st.s1 += to_float(p[j]) * to_float(p[j]);
            st.s2 += y[j] * to_float(p[j]);
        }
        st.s0 = warp_sum(st.s0), st.s1 = warp_sum(st.s1), st.s2 = warp_sum(st.s2);
    } else if (kind == 1) {
        float best = -INFINITY;
        for (int j = lane; j < cols; j += 32) {
            st.s0 += y[j] * to_float(p[j]);
            best = fmaxf(best, (1.0f - y[j]) * to_float(p[j]));
        }
        st.s0 = warp_sum(st.s0);
        st.s1 = warp_max(best);
        int first = cols;
        for (int j = lane; j < cols; j += 32)
            if ((1.0f - y[j]) * to_float(p[j]) == st.s1 && j < first) first = j;
        st.s2 = (float)warp_min_int(first);
    } else {
        float row_max = -INFINITY;
        if (kind == 3) {
            for (int j = lane; j < cols; j += 32) row_max = fmaxf(row_max, to_float(p[j]));
            row_max = warp_max(row_max);
            float total = 0.0f;
            for (int j = lane; j < cols; j += 32) total += expf(to_float(p[j]) - row_max);
            st.s2 = warp_sum(total);
        }
        float sum = 0.0f;
        for (int j = lane; j < cols; j += 32) sum += kind == 3 ? expf(to_float(p[j]) - row_max) / st.s2 : to_float(p[j]);
        st.s0 = warp_sum(sum);
        st.s1 = row_max;
    }
    return st;
}

// Focal: the row's prediction before normalisation, the softmax s_j (kind 3) or p_j (kind 2);
// q_j = that / S. The softmax is also the gradient's factor f_j (1 for kind 2).
template <class T>
__device__ __forceinline__ float focal_input(const T* p, int j, int kind, RowStats st) {
    return kind == 3 ? expf(to_float(p[j]) - st.s1) / st.s2 : to_float(p[j]);
}

// base^e for base >= 0 by exp2/log2: powf's general path is an out-of-line call that spills on
// sm_80. base 0 gives 0 (1 when e is 0), as powf does for e >= 0.
__device__ __forceinline__ float pow_nonneg(float base, float e) {
    return base > 0.0f ? exp2f(e * log2f(base)) : (e == 0.0f ? 1.0f : 0.0f);
}

// One focal term alpha (1 - o)^gamma (-y log o), o = clip(q, eps, 1 - eps).
__device__ __forceinline__ float focal_term(float y, float q, float alpha, float gamma) {
    float o = fminf(fmaxf(q, ROW_EPS), 1.0f - ROW_EPS);
    return alpha * pow_nonneg(1.0f - o, gamma) * y * -logf(o);
}

// Its derivative with respect to q (zero where the clip holds q).
__device__ __forceinline__ float focal_grad(float y, float q, float alpha, float gamma) {
    float o = fminf(fmaxf(q, ROW_EPS), 1.0f - ROW_EPS);
    float inside = q >= ROW_EPS && q <= 1.0f - ROW_EPS ? 1.0f : 0.0f;
    float rest = 1.0f - o;
    float dmod = rest > 0.0f ? gamma * pow_nonneg(rest, gamma - 1.0f) : 0.0f;
    return -alpha * y * (pow_nonneg(rest, gamma) / o + dmod * -logf(o)) * inside;
}

__device__ __forceinline__ float inv_norm(float squares, float eps) { return fminf(rsqrtf(squares), 1.0f / eps); }

template <class T> __global__ void __launch_bounds__(THREADS)
loss_rows_forward(const float* __restrict__ y_true, const T* __restrict__ y_pred, float* __restrict__ partial,
                  int rows, int cols, int kind, float a, float b) {
    int lane = threadIdx.x % 32;
    float warp_loss = 0.0f;
    ROW_PER_WARP_LOOP(row, rows) {
        const float* y = y_true + (long long)row * cols;
        const T* p = y_pred + (long long)row * cols;
        RowStats st = row_stats(y, p, cols, kind, lane);
        float loss;
        if (kind == 0) {
            loss = -st.s2 * inv_norm(st.s0, a) * inv_norm(st.s1, a);
        } else if (kind == 1) {
            loss = fmaxf(st.s1 - st.s0 + 1.0f, 0.0f);
        } else {
            float sum = 0.0f;
            for (int j = lane; j < cols; j += 32) sum += focal_term(y[j], focal_input(p, j, kind, st) / st.s0, a, b);
            loss = warp_sum(sum);
        }
        warp_loss += loss;
    }
    float total = block_total_of_warps(warp_loss);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T>
__global__ void loss_rows_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred, T* __restrict__ dx,
                                   int rows, int cols, int kind, float a, float b, float scale) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        const float* y = y_true + (long long)row * cols;
        const T* p = y_pred + (long long)row * cols;
        T* d = dx + (long long)row * cols;
        RowStats st = row_stats(y, p, cols, kind, lane);
        if (kind == 0) {
            float ny = inv_norm(st.s0, a), np_ = inv_norm(st.s1, a);
            bool clamped = rsqrtf(st.s1) > 1.0f / a;   // the norm's floor: np_ is then a constant
            for (int j = lane; j < cols; j += 32)
                d[j] = from_float<T>(-ny * (y[j] * np_ - (clamped ? 0.0f : st.s2 * to_float(p[j]) * np_ * np_ * np_)) * scale);
        } else if (kind == 1) {
            bool active = st.s1 - st.s0 + 1.0f > 0.0f;
            int first = (int)st.s2;
            for (int j = lane; j < cols; j += 32)
                d[j] = from_float<T>(active ? (-y[j] + (j == first ? 1.0f - y[j] : 0.0f)) * scale : 0.0f);
        } else {
            float dot = 0.0f;
            for (int j = lane; j < cols; j += 32) {
                float q = focal_input(p, j, kind, st) / st.s0;
                dot += focal_grad(y[j], q, a, b) * q;
            }
            dot = warp_sum(dot);
            for (int j = lane; j < cols; j += 32) {
                float v = focal_input(p, j, kind, st);
                float factor = kind == 3 ? v : 1.0f;
                d[j] = from_float<T>(factor * (focal_grad(y[j], v / st.s0, a, b) - dot) / st.s0 * scale);
            }
        }
    }
}
