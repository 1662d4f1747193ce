// loss_overlap.cu - the overlap losses of segmentation, Dice and Tversky, over all elements
// (Keras's axis=None): three sums, the loss from them, and the gradient.
//
// Kernels (n = all elements; y = y_true, p = y_pred, of one shape):
//   overlap_sum_partials(y, p, partial, n, tversky)   partial[k * blocks + block] = block's sum k:
//       dice:    s0 = sum(y p), s1 = sum(y),         s2 = sum(p)
//       tversky: s0 = sum(y p), s1 = sum(y (1 - p)), s2 = sum(p (1 - y))
//   overlap_finish(partial, blocks, stats, tversky, alpha, beta, eps)   one block: stats[0..2] = the
//       sums (blocks added in order), stats[3] = the loss:
//       dice 1 - 2 s0 / (s1 + s2 + eps);  tversky 1 - s0 / (s0 + alpha s1 + beta s2 + eps)
//   overlap_backward(y, p, stats, dx, n, tversky, alpha, beta, eps)   dx = d loss / d p   (=)
// Dtypes: overlap_sum_partials and overlap_backward are templates on T (float, bf16_t, fp16_t),
// y_pred's and dx's type; y_true, the sums, stats and the loss are float32; dx is rounded once.
// Layout: any; flat buffers. Threads: 256 per block, grid-stride over n; fixed-order
// block and finish sums, so the bits repeat. Backward needs the forward inputs and stats, which
// stay on the device (nothing is read back to the host between the kernels).

#define THREADS 256

#include "common.cuh"   // GRID_STRIDE_LOOP, block_sum (callable several times in a row)

template <class T> __global__ void __launch_bounds__(THREADS)
overlap_sum_partials(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                     float* __restrict__ partial, int n, int tversky) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
    GRID_STRIDE_LOOP(i, n) {
        float y = y_true[i], p = to_float(y_pred[i]);
        s0 += y * p;
        s1 += tversky ? y * (1.0f - p) : y;
        s2 += tversky ? p * (1.0f - y) : p;
    }
    s0 = block_sum(s0), s1 = block_sum(s1), s2 = block_sum(s2);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s0;
        partial[gridDim.x + blockIdx.x] = s1;
        partial[2 * gridDim.x + blockIdx.x] = s2;
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
overlap_finish(const float* __restrict__ partial, int blocks, float* __restrict__ stats, int tversky,
               float alpha, float beta, float eps) {
    float sums[3];
    for (int k = 0; k < 3; ++k) {
        float acc = 0.0f;
        for (int i = threadIdx.x; i < blocks; i += blockDim.x) acc += partial[k * blocks + i];
        sums[k] = block_sum(acc);
    }
    if (threadIdx.x == 0) {
        stats[0] = sums[0], stats[1] = sums[1], stats[2] = sums[2];
        stats[3] = tversky ? 1.0f - sums[0] / (sums[0] + alpha * sums[1] + beta * sums[2] + eps)
                           : 1.0f - 2.0f * sums[0] / (sums[1] + sums[2] + eps);
    }
}

template <class T>
__global__ void overlap_backward(const float* __restrict__ y_true, const T* __restrict__ y_pred,
                                 const float* __restrict__ stats, T* __restrict__ dx, int n,
                                 int tversky, float alpha, float beta, float eps) {
    float s0 = stats[0], s1 = stats[1], s2 = stats[2];
    float denom = tversky ? s0 + alpha * s1 + beta * s2 + eps : s1 + s2 + eps;
    GRID_STRIDE_LOOP(i, n) {
        float y = y_true[i];
        // d denom / d p: tversky y - alpha y + beta (1 - y); dice 1. d s0 / d p = y.
        float ddenom = tversky ? y - alpha * y + beta * (1.0f - y) : 1.0f;
        float scale = tversky ? 1.0f : 2.0f;
        dx[i] = from_float<T>(-scale * (y * denom - s0 * ddenom) / (denom * denom));
    }
}
