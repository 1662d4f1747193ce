// dropout.cu - inverted dropout with a counter-based mask, and random draws from the same hash:
// no random state, only a hash.
//
// Kernels:
//   dropout_forward(x, y, mask, n, base, calls, arrivals, keep_threshold, scale)
//       seed = base + calls[0] (uint32); element i is kept iff (hash(seed, i) >> 8) >= keep_threshold;
//       mask[i] = kept ? scale : 0 (scale = 1 / (1 - rate)), y[i] = x[i] * mask[i]; then calls[0] += 1
//   dropout_backward(dy, mask, dx, n)     dx[i] = dy[i] * mask[i]
//   dropout_mask(mask, n, base, calls, arrivals, keep_threshold, scale)   mask[i] alone, seeded and
//       counted the same way (SpatialDropout2D: i = image * C + ch)
//   channel_mask_multiply(x, mask, y, n, hw, c)   y = x * mask[image, ch] over (N, H, W, C):
//       SpatialDropout2D's forward (x) and backward (dy); mask (N, C) as dropout_mask wrote it
//
// The hash is gpunet/primitives/dropout.py's, bit for bit (all uint32, wrapping):
//   mix32(h): h ^= h >> 16; h *= 0x7feb352d; h ^= h >> 15; h *= 0x846ca68b; h ^= h >> 16
//   key = mix32(seed); hash(seed, i) = mix32(mix32(i ^ key) + key)
// keep_threshold = ceil(rate * 2^24) is computed on the host, so "u >= rate" is an exact integer
// comparison here as there.
// Element type: every kernel is a template on T (float, bf16_t, fp16_t; x, y, mask, dy, dx all T).
// The mask holds 0 or scale rounded to T; y = x * mask and dx = dy * mask are computed in float32
// and rounded once (primitives/dropout.py's NumPy reference does the same).
// Layout: any; flat buffers of n elements, i the flat C-order index.
// Threads: a grid-stride loop, one element per thread per step.
// Backward needs the mask that forward writes.
// Gradients: written (=).
// The layer's call count lives in device memory (calls), not in a seed computed on the host, so
// that a captured CUDA graph draws a new mask at every replay: every block reads calls[0] first,
// and the block that arrives last (arrivals: a zeroed counter, left zero) adds one.

#include "common.cuh"   // GRID_STRIDE_LOOP, to_float, from_float<T>

__device__ __forceinline__ unsigned mix32(unsigned h) {
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    return h ^ (h >> 16);
}

// The last block to finish counts the call: every block has read calls[0] before it arrives.
__device__ __forceinline__ void count_call(unsigned* __restrict__ calls, int* __restrict__ arrivals) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(&arrivals[0], 1) == (int)(gridDim.x * gridDim.y * gridDim.z) - 1) {
            arrivals[0] = 0;
            calls[0] += 1u;
        }
    }
}

template <class T> __global__ void dropout_forward(const T* __restrict__ x, T* __restrict__ y,
                                                   T* __restrict__ mask, int n, unsigned base,
                                                   unsigned* __restrict__ calls, int* __restrict__ arrivals,
                                                   unsigned keep_threshold, float scale) {
    unsigned key = mix32(base + calls[0]);
    float kept = to_float(from_float<T>(scale));   // the mask's value, as T holds it
    GRID_STRIDE_LOOP(i, n) {
        unsigned h = mix32(mix32((unsigned)i ^ key) + key);
        float m = (h >> 8) >= keep_threshold ? kept : 0.0f;
        mask[i] = from_float<T>(m);
        y[i] = from_float<T>(to_float(x[i]) * m);
    }
    count_call(calls, arrivals);
}

template <class T> __global__ void dropout_backward(const T* __restrict__ dy, const T* __restrict__ mask,
                                                    T* __restrict__ dx, int n) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>(to_float(dy[i]) * to_float(mask[i]));
}

template <class T> __global__ void dropout_mask(T* __restrict__ mask, int n, unsigned base,
                                                unsigned* __restrict__ calls, int* __restrict__ arrivals,
                                                unsigned keep_threshold, float scale) {
    unsigned key = mix32(base + calls[0]);
    T kept = from_float<T>(scale), dropped = from_float<T>(0.0f);
    GRID_STRIDE_LOOP(i, n) {
        unsigned h = mix32(mix32((unsigned)i ^ key) + key);
        mask[i] = (h >> 8) >= keep_threshold ? kept : dropped;
    }
    count_call(calls, arrivals);
}

// Random draws, seeded and counted as dropout's masks (graph replays draw anew):
//   random_uniform: out[i] = lo + (hi - lo) * u, u = (hash(seed, i) >> 8) * 2^-24 in [0, 1)
//   random_normal:  Box-Muller over hash(seed, 2i) and hash(seed, 2i + 1):
//       u1 = ((h1 >> 8) + 1) * 2^-24 in (0, 1], u2 = (h2 >> 8) * 2^-24,
//       out[i] = mean + stddev * sqrt(-2 log u1) * cos(6.2831853 u2)
// primitives/random.py's NumPy reference does the same in float32; logf / cosf / sqrtf and NumPy's
// float32 routines (and NVRTC's FMA contraction of the last line) may differ in the last bits.
template <class T> __global__ void random_uniform(T* __restrict__ out, int n, unsigned base,
                                                  unsigned* __restrict__ calls, int* __restrict__ arrivals,
                                                  float lo, float hi) {
    unsigned key = mix32(base + calls[0]);
    float span = hi - lo;
    GRID_STRIDE_LOOP(i, n) {
        unsigned h = mix32(mix32((unsigned)i ^ key) + key);
        out[i] = from_float<T>(lo + span * ((float)(h >> 8) * 0x1p-24f));
    }
    count_call(calls, arrivals);
}

template <class T> __global__ void random_normal(T* __restrict__ out, int n, unsigned base,
                                                 unsigned* __restrict__ calls, int* __restrict__ arrivals,
                                                 float mean, float stddev) {
    unsigned key = mix32(base + calls[0]);
    GRID_STRIDE_LOOP(i, n) {
        unsigned j = 2u * (unsigned)i;
        unsigned h1 = mix32(mix32(j ^ key) + key), h2 = mix32(mix32((j + 1u) ^ key) + key);
        float u1 = (float)((h1 >> 8) + 1u) * 0x1p-24f;
        float u2 = (float)(h2 >> 8) * 0x1p-24f;
        float z = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
        out[i] = from_float<T>(mean + stddev * z);
    }
    count_call(calls, arrivals);
}

template <class T> __global__ void channel_mask_multiply(const T* __restrict__ x, const T* __restrict__ mask,
                                                         T* __restrict__ y, int n, int hw, int c) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(to_float(x[i]) * to_float(mask[(i / (hw * c)) * c + i % c]));
}
