// norm.cu - batch normalization over the channel axis, both directions, for x / y / dy / dx of
// element type T (float, bf16_t, fp16_t); the statistics and parameters are always float32.
//
// Kernels:
//   batch_norm_statistics(x, mean, var, inv_std, partial, counters, ...)
//                                                  one pass: the batch mean, biased variance and
//                                                  inv_std = 1 / sqrt(var + eps) per channel
//   batch_norm_backward_sums(dy, x, mean, inv_std, dbeta_out, dgamma_out, partial, counters, ...)
//                                                  dbeta = sum of dy; dgamma = sum of dy * (x - mean) * inv_std
//   batch_norm_inv_std(var, inv_std, c, eps)       inv_std = 1 / sqrt(var + eps)
//   batch_norm_normalize(x, mean, inv_std, gamma, beta, y, ..., act, alpha)
//                                                  y = act((x - mean) * inv_std * gamma + beta)
//                                                  (act: epilogue.cuh's codes, 0 for none)
//   batch_norm_update_moving_stats(moving_mean, moving_var, mean, var, ...)
//                                                  moving = momentum * moving + blend * batch, in place,
//                                                  for the batch mean and biased batch variance
//   batch_norm_backward_input(dy, x, mean, inv_std, gamma, dgamma, dbeta, dx, ...)
//                                                  dx = (dy - dbeta / M - x_hat * dgamma / M) * inv_std * gamma
//   batch_norm_inference_backward_input(dy, inv_std, gamma, dx, ...)
//                                                  dx = dy * inv_std * gamma
//
// Layout: any tensor (..., C), C-contiguous, read as a matrix of M = size / C rows by C columns
// (NHWC: a row is one pixel). Per-channel vectors are (C,); gamma and beta are always given (the
// host passes ones / zeros for a layer without scale / center).
// Reductions (the two column-sum kernels): grid (ceil(C / lanes), chunks), block 256 threads.
// A block serves `lanes` channels (a power of two up to 32, so a warp reads consecutive floats)
// and `chunk_rows` rows; its 256 / lanes threads per channel take rows r, r + 256 / lanes, ...
// of the chunk, then a shared-memory tree adds their sums into partial (2, chunks, C); the last
// block of each channel tile to finish adds the chunks in order (an atomic counter per tile,
// zero before and after the launch, says which block is last and nothing else). Summation
// order depends on the shapes only: results are bit-identical run to run.
// Training forward: batch_norm_statistics (sums of x - x[0] and of its squares: the shift keeps
// the variance accurate when |mean| >> std), then batch_norm_normalize: two launches. Backward needs x, mean and inv_std (the training
// forward's, or the moving mean and 1 / sqrt(moving_var + eps) in inference mode). The moving
// variance is updated from the variance itself: 1 / inv_std^2 - eps loses the digits of a
// variance far below eps.
// Elementwise kernels: a grid-stride loop, one thread per element (per channel for the (C,) ones).
// Gradients: dx, dgamma and dbeta are written (=); only the moving statistics update in place.
// Element types: x, y, dy, dx are T; mean, var, inv_std, gamma, beta, the moving statistics,
// dgamma, dbeta and the partial sums are float32 (float*), accumulated in float32 registers. A
// templated kernel loads T as float and rounds once where it stores a T (y, dx); the (C,)
// kernels batch_norm_inv_std and batch_norm_update_moving_stats see float32 only.

#define THREADS 256

#include "common.cuh"     // GRID_STRIDE_LOOP
#include "epilogue.cuh"   // activate: an activation after the normalisation, in the same pass

// This thread's place in a column-reduction block: channel `c`, and the rows it visits,
// begin, begin + step, ... < end.
struct ColumnThread {
    int lane, part, parts, c, begin, end;
};

__device__ __forceinline__ ColumnThread column_thread(int rows, int c, int chunk_rows, int lanes) {
    ColumnThread t;
    t.lane = threadIdx.x % lanes;
    t.part = threadIdx.x / lanes;
    t.parts = THREADS / lanes;
    t.c = blockIdx.x * lanes + t.lane;
    int first = blockIdx.y * chunk_rows;
    t.begin = first + t.part;
    t.end = t.c < c ? min(first + chunk_rows, rows) : 0;   // a column past C visits no rows
    return t;
}

// Adds the `parts` partial sums of each lane in `partial` (thread order: part-major) into
// partial[lane] with a fixed tree; `second`, if given, is reduced alongside. The totals are
// read by the part-0 threads, which wrote them last: no barrier after the final step.
__device__ __forceinline__ void tree_sum(float* partial, float* second, const ColumnThread& t, int lanes) {
    int at = t.part * lanes + t.lane;
    for (int half = t.parts / 2; half > 0; half /= 2) {
        __syncthreads();
        if (t.part < half) {
            partial[at] += partial[at + half * lanes];
            if (second) second[at] += second[at + half * lanes];
        }
    }
}

// Split column reductions end in their last block: each chunk's block writes its partial sums,
// then takes a ticket from its channel tile's counter; the block arriving last (the counter
// reaching chunks - 1) adds the chunks in chunk order and resets the counter for the next launch.
// The atomic only counts arrivals, so the sums' order, and their bits, are fixed by the shapes.
__device__ __forceinline__ bool last_chunk(int* __restrict__ counters) {
    __shared__ int last;
    __threadfence();                 // this block's partials are visible before its ticket
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(&counters[blockIdx.x], 1) == (int)gridDim.y - 1;
        if (last) counters[blockIdx.x] = 0;
    }
    __syncthreads();
    if (last) __threadfence();       // ...and the other blocks' before it reads them
    return last;
}

// sum over chunks k of partial[k * c + ch], in chunk order, read past the cache.
__device__ __forceinline__ float chunk_total(const float* partial, int ch, int c, int chunks) {
    const volatile float* p = partial;
    float total = p[ch];
    for (int k = 1; k < chunks; ++k) total += p[k * c + ch];
    return total;
}

// One pass over x (rows, c) for the batch statistics. Sums of d = x - x[0, ch] and of d^2 (the
// shift by a sample of the channel keeps E[d^2] - E[d]^2 accurate when |mean| >> std), per chunk
// of rows, into partial (2, chunks, c); the last block of each channel tile adds the chunks and
// writes mean, the biased variance and inv_std = 1 / sqrt(var + eps).
template <class T> __global__ void __launch_bounds__(THREADS)
batch_norm_statistics(const T* __restrict__ x, float* __restrict__ mean, float* __restrict__ var,
                      float* __restrict__ inv_std, float* __restrict__ partial, int* __restrict__ counters,
                      int rows, int c, int chunk_rows, int lanes, float eps) {
    __shared__ float sums[THREADS];
    __shared__ float squares[THREADS];
    ColumnThread t = column_thread(rows, c, chunk_rows, lanes);
    float shift = t.c < c && rows > 0 ? to_float(x[t.c]) : 0.0f, s1 = 0.0f, s2 = 0.0f;
    for (int r = t.begin; r < t.end; r += t.parts) {
        float d = to_float(x[r * c + t.c]) - shift;
        s1 += d;
        s2 += d * d;
    }
    sums[threadIdx.x] = s1;
    squares[threadIdx.x] = s2;
    tree_sum(sums, squares, t, lanes);
    int chunks = gridDim.y;
    if (t.part == 0 && t.c < c) {
        partial[blockIdx.y * c + t.c] = sums[t.lane];
        partial[(chunks + blockIdx.y) * c + t.c] = squares[t.lane];
    }
    if (!last_chunk(counters) || t.part != 0 || t.c >= c) return;
    float n = (float)rows;
    float d_mean = chunk_total(partial, t.c, c, chunks) / n;
    float variance = fmaxf(chunk_total(partial + chunks * c, t.c, c, chunks) / n - d_mean * d_mean, 0.0f);
    mean[t.c] = shift + d_mean;
    var[t.c] = variance;
    inv_std[t.c] = 1.0f / sqrtf(variance + eps);
}

// dbeta = sum of dy, dgamma = sum of dy * x_hat over the rows, in chunks finished by the last
// block of each channel tile (partial: (2, chunks, c)), as batch_norm_statistics does.
template <class T> __global__ void __launch_bounds__(THREADS)
batch_norm_backward_sums(const T* __restrict__ dy, const T* __restrict__ x,
                         const float* __restrict__ mean, const float* __restrict__ inv_std,
                         float* __restrict__ dbeta_out, float* __restrict__ dgamma_out,
                         float* __restrict__ partial, int* __restrict__ counters,
                         int rows, int c, int chunk_rows, int lanes) {
    __shared__ float dbeta_partial[THREADS];
    __shared__ float dgamma_partial[THREADS];
    ColumnThread t = column_thread(rows, c, chunk_rows, lanes);
    float center = t.c < c ? mean[t.c] : 0.0f, scale = t.c < c ? inv_std[t.c] : 0.0f;
    float dbeta = 0.0f, dgamma = 0.0f;
    for (int r = t.begin; r < t.end; r += t.parts) {
        float g = to_float(dy[r * c + t.c]);
        dbeta += g;
        dgamma += g * ((to_float(x[r * c + t.c]) - center) * scale);
    }
    dbeta_partial[threadIdx.x] = dbeta;
    dgamma_partial[threadIdx.x] = dgamma;
    tree_sum(dbeta_partial, dgamma_partial, t, lanes);
    int chunks = gridDim.y;
    if (t.part == 0 && t.c < c) {
        partial[blockIdx.y * c + t.c] = dbeta_partial[t.lane];
        partial[(chunks + blockIdx.y) * c + t.c] = dgamma_partial[t.lane];
    }
    if (!last_chunk(counters) || t.part != 0 || t.c >= c) return;
    dbeta_out[t.c] = chunk_total(partial, t.c, c, chunks);
    dgamma_out[t.c] = chunk_total(partial + chunks * c, t.c, c, chunks);
}

extern "C" __global__ void __launch_bounds__(THREADS)
batch_norm_inv_std(const float* __restrict__ var, float* __restrict__ inv_std, int c, float eps) {
    GRID_STRIDE_LOOP(ch, c) inv_std[ch] = 1.0f / sqrtf(var[ch] + eps);
}

template <class T> __global__ void __launch_bounds__(THREADS)
batch_norm_normalize(const T* __restrict__ x, const float* __restrict__ mean,
                     const float* __restrict__ inv_std, const float* __restrict__ gamma,
                     const float* __restrict__ beta, T* __restrict__ y, int count, int c, int act,
                     float alpha) {
    GRID_STRIDE_LOOP(i, count) {
        int ch = i % c;
        y[i] = from_float<T>(activate((to_float(x[i]) - mean[ch]) * inv_std[ch] * gamma[ch] + beta[ch], act, alpha));
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
batch_norm_update_moving_stats(float* __restrict__ moving_mean, float* __restrict__ moving_var,
                               const float* __restrict__ mean, const float* __restrict__ var,
                               int c, float momentum, float blend) {
    GRID_STRIDE_LOOP(ch, c) {
        moving_mean[ch] = moving_mean[ch] * momentum + blend * mean[ch];
        moving_var[ch] = moving_var[ch] * momentum + blend * var[ch];
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
batch_norm_backward_input(const T* __restrict__ dy, const T* __restrict__ x,
                          const float* __restrict__ mean, const float* __restrict__ inv_std,
                          const float* __restrict__ gamma, const float* __restrict__ dgamma,
                          const float* __restrict__ dbeta, T* __restrict__ dx, int count, int c) {
    float rows = (float)(count / c);
    GRID_STRIDE_LOOP(i, count) {
        int ch = i % c;
        float x_hat = (to_float(x[i]) - mean[ch]) * inv_std[ch];
        dx[i] = from_float<T>((to_float(dy[i]) - dbeta[ch] / rows - x_hat * (dgamma[ch] / rows)) * (inv_std[ch] * gamma[ch]));
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
batch_norm_inference_backward_input(const T* __restrict__ dy, const float* __restrict__ inv_std,
                                    const float* __restrict__ gamma, T* __restrict__ dx,
                                    int count, int c) {
    GRID_STRIDE_LOOP(i, count) {
        int ch = i % c;
        dx[i] = from_float<T>(to_float(dy[i]) * (inv_std[ch] * gamma[ch]));
    }
}
