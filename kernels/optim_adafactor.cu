// optim_adafactor.cu - Adafactor's update (Shazeer & Stern 2018, Keras 3's form) in a few launches
// per parameter: factored second moments for parameters of rank >= 2, a plain one below.
//
// A parameter of rank >= 2 is seen as (batches, rows, cols) (its leading axes, then the last two):
//   adafactor_decay(p, n, weight_decay, lr)            p -= p * weight_decay * lr   (=)
//   adafactor_row_col(g, r, c, batches, rows, cols, beta, eps1)
//       r[b, i] = beta r + (1 - beta) mean_j(g^2 + eps1);  c[b, j] = beta c + (1 - beta) mean_i(g^2 + eps1)
//   adafactor_row_means(r, r_mean, batches, rows)      r_mean[b] = mean_i r[b, i]
//   adafactor_velocity(g, v, n, beta, eps1)            rank < 2: v = beta v + (1 - beta)(g^2 + eps1)
//   adafactor_u_squares(g, r, c, r_mean, v, partial, n, rows, cols, factored)
//       partial[block] = sum of u^2, u = g / sqrt(v_hat), v_hat = r[b,i] / r_mean[b] * c[b,j] (factored) or v
//   adafactor_apply(p, g, r, c, r_mean, v, param_ms, u_ms, n, rows, cols, factored, rho, eps2, clip)
//       p -= max(eps2, sqrt(param_ms)) rho * u / max(1, sqrt(u_ms) / clip)
// param_ms and u_ms are 0-d device arrays (means of p^2 and u^2, from loss.cu's
// sum_partials_finish), so nothing comes back to the host. Threads: 256 per block, grid-stride;
// row / column means are one thread each adding in index order; the u^2 partials are fixed-order
// block sums. Deterministic. Writes (=) p and the moments.

#define THREADS 256

#include "common.cuh"   // GRID_STRIDE_LOOP, block_sum

extern "C" __global__ void adafactor_decay(float* __restrict__ p, int n, float weight_decay, float lr) {
    GRID_STRIDE_LOOP(i, n) p[i] -= p[i] * weight_decay * lr;
}

extern "C" __global__ void adafactor_row_col(const float* __restrict__ g, float* __restrict__ r, float* __restrict__ c,
                                             int batches, int rows, int cols, float beta, float eps1) {
    int row_items = batches * rows;
    GRID_STRIDE_LOOP(item, row_items + batches * cols) {
        if (item < row_items) {
            const float* gr = g + (long long)item * cols;
            float sum = 0.0f;
            for (int j = 0; j < cols; ++j) sum += gr[j] * gr[j] + eps1;
            r[item] = beta * r[item] + (1.0f - beta) * (sum / cols);
        } else {
            int k = item - row_items, b = k / cols, j = k % cols;
            const float* gb = g + (long long)b * rows * cols + j;
            float sum = 0.0f;
            for (int i = 0; i < rows; ++i) sum += gb[(long long)i * cols] * gb[(long long)i * cols] + eps1;
            c[k] = beta * c[k] + (1.0f - beta) * (sum / rows);
        }
    }
}

extern "C" __global__ void adafactor_row_means(const float* __restrict__ r, float* __restrict__ r_mean, int batches,
                                               int rows) {
    GRID_STRIDE_LOOP(b, batches) {
        float sum = 0.0f;
        for (int i = 0; i < rows; ++i) sum += r[(long long)b * rows + i];
        r_mean[b] = sum / rows;
    }
}

extern "C" __global__ void adafactor_velocity(const float* __restrict__ g, float* __restrict__ v, int n, float beta,
                                              float eps1) {
    GRID_STRIDE_LOOP(i, n) v[i] = beta * v[i] + (1.0f - beta) * (g[i] * g[i] + eps1);
}

__device__ __forceinline__ float adafactor_u(const float* g, const float* r, const float* c, const float* r_mean,
                                             const float* v, int i, int rows, int cols, int factored) {
    if (!factored) return g[i] / sqrtf(v[i]);
    int j = i % cols, row = i / cols, b = row / rows;
    return g[i] / sqrtf(r[row] / r_mean[b] * c[b * cols + j]);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adafactor_u_squares(const float* __restrict__ g, const float* __restrict__ r, const float* __restrict__ c,
                    const float* __restrict__ r_mean, const float* __restrict__ v, float* __restrict__ partial, int n,
                    int rows, int cols, int factored) {
    float acc = 0.0f;
    GRID_STRIDE_LOOP(i, n) {
        float u = adafactor_u(g, r, c, r_mean, v, i, rows, cols, factored);
        acc += u * u;
    }
    float total = block_sum(acc);   // common.cuh: warp butterflies, then the warps in order
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void adafactor_apply(float* __restrict__ p, const float* __restrict__ g,
                                           const float* __restrict__ r, const float* __restrict__ c,
                                           const float* __restrict__ r_mean, const float* __restrict__ v,
                                           const float* __restrict__ param_ms, const float* __restrict__ u_ms, int n,
                                           int rows, int cols, int factored, float rho, float eps2, float clip) {
    float alpha = fmaxf(eps2, sqrtf(param_ms[0])) * rho;
    float denominator = fmaxf(1.0f, sqrtf(u_ms[0]) / clip);
    GRID_STRIDE_LOOP(i, n) {
        float u = adafactor_u(g, r, c, r_mean, v, i, rows, cols, factored);
        p[i] -= alpha * (u / denominator);
    }
}
