// loss_terms.cu - losses that are a sum of one term per element, their gradients, and the
// target transforms they need (label smoothing, hinge labels). Deterministic throughout.
//
// Kernels (n = all elements; y = y_true, p = y_pred, of one shape):
//   loss_term_sum_partials(y, p, partial, n, kind, a, b, c)    partial[block] = sum of term(kind)
//   loss_term_backward(y, p, dx, n, kind, a, b, c, scale)      dx = d term / d p * scale   (=)
//   affine_targets(y, out, n, scale, shift)                    out = y * scale + shift (label smoothing)
//   count_non_binary(y, count, n)                              count += elements not 0 or 1 (+=, integer)
//   hinge_targets(y, count, out, n)                            out = 2y - 1 when *count == 0, else y
//
// kind (a, b, c):                    term(y, p)
//   0 huber (delta)                  |e| <= delta ? e^2 / 2 : delta |e| - delta^2 / 2,  e = p - y
//   1 log_cosh                       x + softplus(-2x) - log 2,  x = p - y
//   2 poisson (eps)                  p - y log(p + eps)
//   3 squared log error (eps)        (log(max(p, eps) + 1) - log(max(y, eps) + 1))^2
//   4 absolute percentage (eps)      100 |y - p| / max(|y|, eps)
//   5 kl divergence (eps)            yc log(yc / pc),  yc, pc = clip(y, p; eps, 1)
//   6 hinge                          max(1 - y p, 0)
//   7 squared hinge                  max(1 - y p, 0)^2
//   8 binary focal (gamma, alpha, balanced)   w (1 - pt)^gamma bce(y, clip(p)),  pt = y p + (1-y)(1-p)
//   9 binary focal from logits (gamma, alpha, balanced)   the same with p = sigmoid(p)
// The losses' means are the partials' total (sum_partials_finish of loss.cu) over n (or rows).
// Layout: any; flat float32 buffers. Threads: 256 per block, grid-stride over n; a block adds
// its threads' terms in a fixed order (warp butterflies, then warps in order), so the grid size,
// a function of n alone, fixes the bits. Backward needs the forward inputs only.
// Dtypes: loss_term_sum_partials and loss_term_backward are templates on T (float, bf16_t,
// fp16_t), y_pred's and dx's type: p is widened, the term and its derivative are float32, dx is
// rounded once to T. Targets (and the target transforms), partials and counts are float32 / integers.

#define THREADS 256
#define FOCAL_EPS 1e-7f

#include "common.cuh"   // GRID_STRIDE_LOOP, warp_sum, block_sum

__device__ __forceinline__ float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

__device__ __forceinline__ float softplus(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }

__device__ __forceinline__ float sigmoid(float x) {
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

__device__ __forceinline__ float signf(float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); }

// The binary focal term for a probability p and its derivative with respect to p.
__device__ __forceinline__ void binary_focal(float y, float p, float gamma, float alpha, float balanced, float* value,
                             float* grad) {
    float pc = clampf(p, FOCAL_EPS, 1.0f - FOCAL_EPS);
    float inside = p >= FOCAL_EPS && p <= 1.0f - FOCAL_EPS ? 1.0f : 0.0f;
    float bce = -(y * logf(pc) + (1.0f - y) * logf(1.0f - pc));
    float dbce = -(y / pc - (1.0f - y) / (1.0f - pc)) * inside;
    float base = 1.0f - (y * p + (1.0f - y) * (1.0f - p));
    float focal = powf(base, gamma);
    // d(base)/dp = 1 - 2y; at base 0 the derivative of base^gamma is 0 for gamma > 1.
    float dfocal = base > 0.0f ? gamma * powf(base, gamma - 1.0f) * (1.0f - 2.0f * y) : 0.0f;
    float weight = balanced != 0.0f ? y * alpha + (1.0f - y) * (1.0f - alpha) : 1.0f;
    *value = weight * focal * bce;
    *grad = weight * (dfocal * bce + focal * dbce);
}

// term(kind) and, when grad is not null, its derivative with respect to p.
__device__ __forceinline__ float loss_term(int kind, float y, float p, float a, float b, float c, float* grad) {
    float g = 0.0f, v = 0.0f;
    switch (kind) {
    case 0: {
        float e = p - y, ae = fabsf(e);
        v = ae <= a ? 0.5f * e * e : a * ae - 0.5f * a * a;
        g = ae <= a ? e : a * signf(e);
        break;
    }
    case 1: {
        float x = p - y;
        v = x + softplus(-2.0f * x) - 0.69314718055994531f;
        g = tanhf(x);
        break;
    }
    case 2:
        v = p - y * logf(p + a);
        g = 1.0f - y / (p + a);
        break;
    case 3: {
        float d = logf(fmaxf(p, a) + 1.0f) - logf(fmaxf(y, a) + 1.0f);
        v = d * d;
        g = p > a ? 2.0f * d / (p + 1.0f) : 0.0f;
        break;
    }
    case 4: {
        float scale = 100.0f / fmaxf(fabsf(y), a);
        v = fabsf(y - p) * scale;
        g = signf(p - y) * scale;
        break;
    }
    case 5: {
        float yc = clampf(y, a, 1.0f), pc = clampf(p, a, 1.0f);
        v = yc * logf(yc / pc);
        g = p >= a && p <= 1.0f ? -yc / pc : 0.0f;
        break;
    }
    case 6: case 7: {
        float margin = fmaxf(1.0f - y * p, 0.0f);
        v = kind == 6 ? margin : margin * margin;
        g = margin > 0.0f ? (kind == 6 ? -y : -2.0f * y * margin) : 0.0f;
        break;
    }
    case 8:
        binary_focal(y, p, a, b, c, &v, &g);
        break;
    case 9: {
        float s = sigmoid(p);
        binary_focal(y, s, a, b, c, &v, &g);
        g *= s * (1.0f - s);
        break;
    }
    default:
        v = g = NAN;
    }
    if (grad) *grad = g;
    return v;
}

template <class T> __global__ void __launch_bounds__(THREADS)
loss_term_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                       float* __restrict__ partial, int n, int kind, float a, float b, float c) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) acc += loss_term(kind, y_true[i], to_float(y_pred[i]), a, b, c, nullptr);
    float total = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T>
__global__ void loss_term_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                   T* __restrict__ dx, int n, int kind, float a, float b, float c, float scale) {
    GRID_STRIDE_LOOP(i, n) {
        float g;
        loss_term(kind, y_true[i], to_float(y_pred[i]), a, b, c, &g);
        dx[i] = from_float<T>(g * scale);
    }
}

extern "C" __global__ void affine_targets(const float* __restrict__ y, float* __restrict__ out, int n,
                                          float scale, float shift) {
    GRID_STRIDE_LOOP(i, n) out[i] = y[i] * scale + shift;
}

// One integer atomicAdd per block: exact in any order.
extern "C" __global__ void __launch_bounds__(THREADS)
count_non_binary(const float* __restrict__ y, unsigned long long* __restrict__ count, int n) {
    unsigned long long mine = 0;
    GRID_STRIDE_LOOP(i, n) mine += (y[i] != 0.0f && y[i] != 1.0f) ? 1ull : 0ull;
    unsigned long long total = block_sum(mine);
    if (threadIdx.x == 0 && total) atomicAdd(count, total);
}

extern "C" __global__ void hinge_targets(const float* __restrict__ y, const unsigned long long* __restrict__ count,
                                         float* __restrict__ out, int n) {
    bool binary = *count == 0ull;
    GRID_STRIDE_LOOP(i, n) out[i] = binary ? 2.0f * y[i] - 1.0f : y[i];
}
