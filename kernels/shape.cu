// shape.cu - kernels that move values without weights: zero padding, upsampling, concatenation.
//
// Kernels:
//   zero_pad2d_forward(x, y, ...)                 y (N, top+H+bottom, left+W+right, C) = x framed by zeros
//   zero_pad2d_backward(dy, dx, ...)              dx (N, H, W, C) = the interior of dy (a crop)
//   upsample2d_nearest_forward(x, y, ...)         y (N, sh*H, sw*W, C): each pixel repeated sh x sw times
//   upsample2d_nearest_backward(dy, dx, ...)      dx = sum of its sh x sw block of dy
//   upsample2d_bilinear_forward(x, y, ...)        y: half-pixel-centre bilinear, edge pixel repeated
//   upsample2d_bilinear_backward(dy, dx, ...)     dx = sum of weight * dy over the outputs that read it
//   concat_forward(x, y, ...)                     copies one input into its slice of y
//   concat_backward(dy, dx, ...)                  copies one slice of dy out into dx
//
// Element type T (float, bf16_t, fp16_t) for x, y, dy and dx alike. Copies (padding, nearest
// forward, concatenation) move T values as they are, exact; upsampling's sums and interpolations
// load T as float, compute in float registers and round once where they store.
// Layout: NHWC, C-contiguous. Concatenation sees any tensor as (outer, size, inner), the
// joined axis in the middle, so one pair of kernels serves every axis; it launches once per input.
// Threads: a grid-stride loop over the elements of the array being written; a thread computes
// whole elements of it (one output of forward, one dx of backward), so no two threads write the
// same element and no atomics are needed.
// Determinism: backward gathers. A dx element of upsampling adds its dy terms in a fixed order
// (block rows, then columns), so two runs give identical bits.
// Backward needs nothing saved beyond the settings (padding, size, the input sizes of concat).
// Gradients: every kernel here writes (=) its output, never accumulates (+=).

#include "common.cuh"   // GRID_STRIDE_LOOP, nhwc_at

template <class T> __global__ void zero_pad2d_forward(const T* __restrict__ x, T* __restrict__ y,
                                              int n, int h, int w, int c, int top, int left,
                                              int out_h, int out_w) {
    GRID_STRIDE_LOOP(index, n * out_h * out_w * c) {
        int ch = index % c;
        int col = (index / c) % out_w - left;
        int row = (index / (c * out_w)) % out_h - top;
        int image = index / (c * out_w * out_h);
        bool inside = row >= 0 && row < h && col >= 0 && col < w;
        y[index] = inside ? x[((image * h + row) * w + col) * c + ch] : from_float<T>(0.0f);
    }
}

template <class T> __global__ void zero_pad2d_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                               int n, int h, int w, int c, int top, int left,
                                               int out_h, int out_w) {
    GRID_STRIDE_LOOP(index, n * h * w * c) {
        auto [image, row, col, ch] = nhwc_at(index, h, w, c);
        dx[index] = dy[((image * out_h + row + top) * out_w + col + left) * c + ch];
    }
}

template <class T> __global__ void upsample2d_nearest_forward(const T* __restrict__ x, T* __restrict__ y,
                                                      int n, int h, int w, int c, int sh, int sw) {
    int out_h = h * sh, out_w = w * sw;
    GRID_STRIDE_LOOP(index, n * out_h * out_w * c) {
        auto [image, row, col, ch] = nhwc_at(index, out_h, out_w, c);
        y[index] = x[((image * h + row / sh) * w + col / sw) * c + ch];
    }
}

template <class T> __global__ void upsample2d_nearest_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                                       int n, int h, int w, int c, int sh, int sw) {
    int out_w = w * sw;
    GRID_STRIDE_LOOP(index, n * h * w * c) {
        auto [image, row, col, ch] = nhwc_at(index, h, w, c);
        const T* block = dy + ((image * h * sh + row * sh) * out_w + col * sw) * c + ch;
        float sum = 0.0f;
        for (int i = 0; i < sh; ++i)
            for (int j = 0; j < sw; ++j) sum += to_float(block[(i * out_w + j) * c]);
        dx[index] = from_float<T>(sum);
    }
}

// Where output coordinate `o` of an axis enlarged `scale` times samples its input of `length`:
// (1 - frac) * in[src] + frac * in[neighbour], the centre of output o being (o + 0.5) / scale - 0.5.
struct BilinearTap {
    int src, neighbour;
    float frac;
};

__device__ __forceinline__ BilinearTap bilinear_tap(int o, int scale, int length) {
    int src = o / scale;
    float offset = ((o - src * scale) + 0.5f) / scale - 0.5f;
    int step = offset >= 0.0f ? 1 : -1;
    int neighbour = min(max(src + step, 0), length - 1);
    return {src, neighbour, offset >= 0.0f ? offset : -offset};
}

// How much input `i` contributes to output `o` (0, 1 - frac, frac, or 1 at a clamped edge).
__device__ __forceinline__ float bilinear_weight(int o, int i, int scale, int length) {
    BilinearTap tap = bilinear_tap(o, scale, length);
    return (tap.src == i ? 1.0f - tap.frac : 0.0f) + (tap.neighbour == i ? tap.frac : 0.0f);
}

__device__ __forceinline__ float lerp_taps(float a, float b, float frac) {
    return frac == 0.0f ? a : (1.0f - frac) * a + frac * b;
}

template <class T> __global__ void upsample2d_bilinear_forward(const T* __restrict__ x, T* __restrict__ y,
                                                       int n, int h, int w, int c, int sh, int sw) {
    int out_h = h * sh, out_w = w * sw;
    GRID_STRIDE_LOOP(index, n * out_h * out_w * c) {
        int ch = index % c;
        BilinearTap across = bilinear_tap((index / c) % out_w, sw, w);
        BilinearTap down = bilinear_tap((index / (c * out_w)) % out_h, sh, h);
        const T* image = x + (index / (c * out_w * out_h)) * h * w * c + ch;
        // Rows first, then columns: the order of the NumPy reference, so rounding agrees.
        float left = lerp_taps(to_float(image[(down.src * w + across.src) * c]),
                               to_float(image[(down.neighbour * w + across.src) * c]), down.frac);
        float right = lerp_taps(to_float(image[(down.src * w + across.neighbour) * c]),
                                to_float(image[(down.neighbour * w + across.neighbour) * c]), down.frac);
        y[index] = from_float<T>(lerp_taps(left, right, across.frac));
    }
}

template <class T> __global__ void upsample2d_bilinear_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                                        int n, int h, int w, int c, int sh, int sw) {
    int out_h = h * sh, out_w = w * sw;
    GRID_STRIDE_LOOP(index, n * h * w * c) {
        int ch = index % c;
        int col = (index / c) % w;
        int row = (index / (c * w)) % h;
        const T* image = dy + (index / (c * w * h)) * out_h * out_w * c + ch;
        // Taps reach one input pixel either way, so only blocks row-1 .. row+1 can read this one.
        int row_end = min((row + 2) * sh, out_h), col_end = min((col + 2) * sw, out_w);
        float sum = 0.0f;
        for (int o = max(row - 1, 0) * sh; o < row_end; ++o) {
            float weight_down = bilinear_weight(o, row, sh, h);
            if (weight_down == 0.0f) continue;
            float line = 0.0f;
            for (int p = max(col - 1, 0) * sw; p < col_end; ++p) {
                float weight_across = bilinear_weight(p, col, sw, w);
                if (weight_across != 0.0f) line += weight_across * to_float(image[(o * out_w + p) * c]);
            }
            sum += weight_down * line;
        }
        dx[index] = from_float<T>(sum);
    }
}

// Input k of a concatenation, (outer, size, inner), lands at [offset, offset + size) of the
// joined axis of y, (outer, total, inner).
template <class T> __global__ void concat_forward(const T* __restrict__ x, T* __restrict__ y,
                                          int outer, int size, int inner, int total, int offset) {
    GRID_STRIDE_LOOP(index, outer * size * inner) {
        int slab = index / (size * inner);
        y[(slab * total + offset) * inner + index - slab * size * inner] = x[index];
    }
}

template <class T> __global__ void concat_backward(const T* __restrict__ dy, T* __restrict__ dx,
                                           int outer, int size, int inner, int total, int offset) {
    GRID_STRIDE_LOOP(index, outer * size * inner) {
        int slab = index / (size * inner);
        dx[index] = dy[(slab * total + offset) * inner + index - slab * size * inner];
    }
}
