// group_norm.cu - normalization over groups of values within a sample: LayerNormalization (the
// last axis, one group) and GroupNormalization (G groups of channels over all pixels).
//
// Kernels:
//   group_norm_forward(x, gamma, beta, y, mean, inv_std, rows, p, c, groups, eps, rms, has_gamma, has_beta)
//       per row r (= o * G + g): mean, biased variance var, inv_std = 1 / sqrt(var + eps) over its
//       p * (c / G) values; y = (x - mean) * inv_std * gamma[ch] + beta[ch], or with rms
//       (Keras 3's rms_scaling) y = x * inv_std * gamma[ch] (not centred, no beta).
//   group_norm_backward(dy, x, gamma, mean, inv_std, dx, gamma_terms, rows, p, c, groups, rms, has_gamma)
//       g = dy * gamma; a = mean(g), b = mean(g * t) with t = x_hat (or x for rms) over the row;
//       dx = inv_std * (g - a - x_hat * b)             (centred)
//       dx = inv_std * (g - x_hat * inv_std * b)       (rms; x_hat = (x - mean) * inv_std)
//       gamma_terms = dy * x_hat (or dy * x * inv_std): the host sums them per channel with
//       conv.cu's bias_backward (as it sums dy for dbeta), so no kernel adds across rows.
//
// Layout: x (outer, p, c) C-contiguous, NHWC read so (LayerNormalization: outer = every row of
// the last axis, p = 1; GroupNormalization: outer = batch, p = H * W). Row r = o * G + g holds
// the values x[o, 0..p, g * c/G .. (g + 1) * c/G]; channel ch = g * (c / G) + j.
// Threads: one block of 256 threads per row (grid = rows); each thread strides over the row's
// values, then a shared-memory tree adds the partial sums in a fixed order: bit-identical from
// run to run, no atomics. The mean is taken first and the variance from the centred values (two
// reads), which stays accurate when |mean| >> std.
// Backward needs x, mean and inv_std (written by forward); gradients are written (=).
// Element types: x, y, dy, dx are T (float, bf16_t, fp16_t); gamma, beta, mean, inv_std and
// gamma_terms are float32. Sums run in float32 registers; y and dx round once where stored, and
// gamma_terms stay float32 so the gamma gradient is summed from unrounded terms.

#include "common.cuh"   // dtype.cuh: to_float, from_float<T>

#define GN_THREADS 256

struct GroupRow {
    int count, group_width;
    long long base;   // offset of the row's first value
    int first_channel;
};

__device__ __forceinline__ GroupRow group_row(int row, int p, int c, int groups) {
    GroupRow r;
    r.group_width = c / groups;
    r.count = p * r.group_width;
    int o = row / groups, g = row % groups;
    r.base = (long long)o * p * c + g * r.group_width;
    r.first_channel = g * r.group_width;
    return r;
}

// Value e of the row: pixel e / width, channel offset e % width.
__device__ __forceinline__ long long group_offset(const GroupRow& r, int e, int c) {
    return r.base + (long long)(e / r.group_width) * c + e % r.group_width;
}

// The block's sum of `v`, every thread gets it; the tree's order depends on nothing but 256.
__device__ __forceinline__ float block_sum(float v, float* buffer) {
    buffer[threadIdx.x] = v;
    __syncthreads();
    for (int stride = GN_THREADS / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) buffer[threadIdx.x] += buffer[threadIdx.x + stride];
        __syncthreads();
    }
    float total = buffer[0];
    __syncthreads();
    return total;
}

template <class T> __global__ void __launch_bounds__(GN_THREADS)
group_norm_forward(const T* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                   T* __restrict__ y, float* __restrict__ mean_out, float* __restrict__ inv_std_out,
                   int rows, int p, int c, int groups, float eps, int rms, int has_gamma, int has_beta) {
    __shared__ float buffer[GN_THREADS];
    int row = blockIdx.x;
    if (row >= rows) return;
    GroupRow r = group_row(row, p, c, groups);
    float sum = 0.0f;
    for (int e = threadIdx.x; e < r.count; e += GN_THREADS) sum += to_float(x[group_offset(r, e, c)]);
    float mean = block_sum(sum, buffer) / r.count;
    float squares = 0.0f;
    for (int e = threadIdx.x; e < r.count; e += GN_THREADS) {
        float d = to_float(x[group_offset(r, e, c)]) - mean;
        squares += d * d;
    }
    float inv_std = 1.0f / sqrtf(block_sum(squares, buffer) / r.count + eps);
    for (int e = threadIdx.x; e < r.count; e += GN_THREADS) {
        long long at = group_offset(r, e, c);
        int ch = r.first_channel + e % r.group_width;
        float xv = to_float(x[at]);
        float v = rms ? xv * inv_std : (xv - mean) * inv_std;
        if (has_gamma) v *= gamma[ch];
        if (has_beta && !rms) v += beta[ch];
        y[at] = from_float<T>(v);
    }
    if (threadIdx.x == 0) {
        mean_out[row] = mean;
        inv_std_out[row] = inv_std;
    }
}

template <class T> __global__ void __launch_bounds__(GN_THREADS)
group_norm_backward(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ gamma,
                    const float* __restrict__ mean, const float* __restrict__ inv_std, T* __restrict__ dx,
                    float* __restrict__ gamma_terms, int rows, int p, int c, int groups, int rms, int has_gamma) {
    __shared__ float buffer[GN_THREADS];
    int row = blockIdx.x;
    if (row >= rows) return;
    GroupRow r = group_row(row, p, c, groups);
    float m = mean[row], s = inv_std[row];
    float sum_g = 0.0f, sum_gt = 0.0f;
    for (int e = threadIdx.x; e < r.count; e += GN_THREADS) {
        long long at = group_offset(r, e, c);
        float g = to_float(dy[at]) * (has_gamma ? gamma[r.first_channel + e % r.group_width] : 1.0f);
        float xv = to_float(x[at]);
        sum_g += g;
        sum_gt += g * (rms ? xv : (xv - m) * s);
    }
    float a = rms ? 0.0f : block_sum(sum_g, buffer) / r.count;
    float b = block_sum(sum_gt, buffer) / r.count;
    float slope = rms ? s * b : b;
    for (int e = threadIdx.x; e < r.count; e += GN_THREADS) {
        long long at = group_offset(r, e, c);
        float d = to_float(dy[at]), xv = to_float(x[at]);
        float g = d * (has_gamma ? gamma[r.first_channel + e % r.group_width] : 1.0f);
        float x_hat = (xv - m) * s;
        dx[at] = from_float<T>(s * (g - a - x_hat * slope));
        gamma_terms[at] = d * (rms ? xv * s : x_hat);
    }
}
