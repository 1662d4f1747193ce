// regularize.cu - weight regularizers (L1, L2) and weight constraints (max_norm, min_max_norm,
// unit_norm, non_neg), deterministic throughout.
//
// Kernels (w = a weight or an activation, flat, n elements; the penalty kernels are templates on T:
// float, bf16_t, fp16_t for an activity penalty on 16-bit activations, summed in float32 into
// float32 partials, the gradient added in float32 and rounded once into grad (T); the constraints
// act on float32 weights only):
//   penalty_sum_partials(w, partial, n, l1, l2)    partial[block] = sum of l1 |w| + l2 w^2
//       (loss.cu's sum_partials_finish adds the blocks, optionally dividing: activity penalties)
//   penalty_add_gradient(w, grad, n, l1, l2, scale, factor, at)  grad += (l1 sign(w) + 2 l2 w) * scale
//       * factor[at]  (+=); factor: the loss scale in an optimizer's device step state (the
//       gradients it joins are scaled), or a table holding 1
//   norm_constraint(w, d0, d1, d2, d3, reduce_mask, groups, kind, min_value, max_value, rate)
//       w is (d0, d1, d2, d3) (leading 1s for fewer axes); bit a of reduce_mask marks axis a as
//       one the norm runs over. One thread per group (an index over the other axes): it adds the
//       group's squares in a fixed order, then rescales the group in place (=):
//         kind 0 max_norm:     w * clip(norm, 0, max) / (eps + norm)
//         kind 1 min_max_norm: w * (rate clip(norm, min, max) + (1 - rate) norm) / (eps + norm)
//         kind 2 unit_norm:    w / (eps + norm)
//         kind 3 non_neg:      max(w, 0)     (reduce_mask 0: every element its own group)
// Threads: 256 per block; grid-stride over n or over the groups. Reductions: per-block fixed-order
// sums; no float atomics.

#define THREADS 256
#define NORM_EPS 1e-7f

#include "common.cuh"   // GRID_STRIDE_LOOP, block_sum

__device__ __forceinline__ float signf(float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); }

template <class T> __global__ void __launch_bounds__(THREADS)
penalty_sum_partials(const T* __restrict__ w, float* __restrict__ partial, int n, float l1, float l2) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(w[i]);
        acc += l1 * fabsf(v) + l2 * v * v;
    }
    float total = block_sum(acc);   // common.cuh: warp butterflies, then the warps in order
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T> __global__ void penalty_add_gradient(const T* __restrict__ w, T* __restrict__ grad, int n,
                                                        float l1, float l2, float scale,
                                                        const double* __restrict__ factor, int factor_at) {
    scale *= (float)factor[factor_at];   // the loss scale from the optimizer's device state, or 1
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(w[i]);
        grad[i] = from_float<T>(to_float(grad[i]) + (l1 * signf(v) + 2.0f * l2 * v) * scale);
    }
}

extern "C" __global__ void norm_constraint(float* __restrict__ w, int d0, int d1, int d2, int d3, int reduce_mask,
                                           int groups, int kind, float min_value, float max_value, float rate) {
    int dims[4] = {d0, d1, d2, d3};
    GRID_STRIDE_LOOP(g, groups) {
        // The group's first element and the strides of the reduced axes.
        int kept = g, base = 0, stride = 1, reduced_count = 1;
        int strides[4], sizes[4], count = 0;
        for (int a = 3; a >= 0; --a) {
            if (reduce_mask & (1 << a)) {
                strides[count] = stride, sizes[count] = dims[a], reduced_count *= dims[a], ++count;
            } else {
                base += (kept % dims[a]) * stride;
                kept /= dims[a];
            }
            stride *= dims[a];
        }
        if (kind == 3) {
            for (int k = 0; k < reduced_count; ++k) {
                int offset = base, rest = k;
                for (int c = 0; c < count; ++c) offset += (rest % sizes[c]) * strides[c], rest /= sizes[c];
                w[offset] = fmaxf(w[offset], 0.0f);
            }
            continue;
        }
        float squares = 0.0f;
        for (int k = 0; k < reduced_count; ++k) {
            int offset = base, rest = k;
            for (int c = 0; c < count; ++c) offset += (rest % sizes[c]) * strides[c], rest /= sizes[c];
            squares += w[offset] * w[offset];
        }
        float norm = sqrtf(squares);
        float desired = kind == 0 ? fminf(fmaxf(norm, 0.0f), max_value)
                      : kind == 1 ? rate * fminf(fmaxf(norm, min_value), max_value) + (1.0f - rate) * norm
                                  : 1.0f;
        float scale = desired / (NORM_EPS + norm);
        for (int k = 0; k < reduced_count; ++k) {
            int offset = base, rest = k;
            for (int c = 0; c < count; ++c) offset += (rest % sizes[c]) * strides[c], rest /= sizes[c];
            w[offset] = kind == 2 ? w[offset] / (NORM_EPS + norm) : w[offset] * scale;
        }
    }
}
