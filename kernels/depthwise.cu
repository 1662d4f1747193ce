// depthwise.cu - depthwise 2-D convolution (DepthwiseConv2D, the first half of SeparableConv2D), NHWC.
//
// Kernels:
//   depthwise_conv2d_forward(x, w, b, y, has_bias, geometry...)
//       y[n, oy, ox, c * M + m] = b[c * M + m] + sum_{ky, kx} x[n, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw, c]
//                                                              * w[ky, kx, c, m]
//   depthwise_conv2d_backward_input(dy, w, dx, geometry...)
//       dx[n, iy, ix, c] = sum over the taps and outputs that read it, and over m, of dy * w
//   depthwise_conv2d_backward_filter(x, dy, partial, per_split, geometry...)
//       partial[s, ky, kx, c, m] = sum over the pixels of split s of x * dy; the splits are then
//       added in order by conv.cu's sum_splits (the bias gradient is conv.cu's bias_backward).
// geometry = n, h, w, c, mult, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl  (pt/pl: top/left padding).
//
// Layout: x (N, H, W, C), w (KH, KW, C, M) as Keras's DepthwiseConv2D kernel, y (N, OH, OW, C*M),
// output channel c * M + m (Keras's order). Outside the input counts as zero (padding).
// Threads: forward and backward-input give one thread one output element (grid-stride), channels
// fastest, so a warp reads consecutive channels (coalesced). A channel only ever meets its own
// kernel taps, so this direct form does kh*kw multiply-adds per output and no GEMM tile is wasted
// (an implicit GEMM per channel would have K = kh*kw, a few percent of a tile's depth).
// Backward-filter: a block of 256 threads = 32 channel lanes x 8 pixel rows takes one tap and 32
// output channels; each thread walks its pixels of the block's split, then the 8 rows are summed
// in a fixed order in shared memory: deterministic, no atomics.
// Backward needs x (filter) and w (input); gradients are written (=), never accumulated.
// Element types: x, w, b, y, dy and dx are T (float, bf16_t, fp16_t: the layer casts its kernel
// and bias to the compute dtype, as Keras does); products accumulate in float registers and y /
// dx round once where stored. The filter gradient's partial sums are float32 (weight gradients
// are float32: the optimizer sees float32 only).

#include "common.cuh"   // GRID_STRIDE_LOOP

#define DW_LANES 32
#define DW_ROWS 8

template <class T> __global__ void depthwise_conv2d_forward(
        const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
        T* __restrict__ y, int has_bias, int n, int h, int wd, int c, int mult, int oh, int ow,
        int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl) {
    int cm = c * mult;
    GRID_STRIDE_LOOP(i, n * oh * ow * cm) {
        int co = i % cm, ci = co / mult;
        int pix = i / cm, ox = pix % ow, oy = (pix / ow) % oh, image = pix / (ow * oh);
        float acc = has_bias ? to_float(b[co]) : 0.0f;
        for (int ky = 0; ky < kh; ++ky) {
            int iy = oy * sh - pt + ky * dh;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                int ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                acc += to_float(x[((image * h + iy) * wd + ix) * c + ci]) * to_float(w[(ky * kw + kx) * cm + co]);
            }
        }
        y[i] = from_float<T>(acc);
    }
}

template <class T> __global__ void depthwise_conv2d_backward_input(
        const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx,
        int n, int h, int wd, int c, int mult, int oh, int ow, int kh, int kw, int sh, int sw,
        int dh, int dw, int pt, int pl) {
    int cm = c * mult;
    GRID_STRIDE_LOOP(i, n * h * wd * c) {
        int ci = i % c, ix = (i / c) % wd, iy = (i / (c * wd)) % h, image = i / (c * wd * h);
        float acc = 0.0f;
        for (int ky = 0; ky < kh; ++ky) {
            int ty = iy + pt - ky * dh;   // = oy * sh for the output that reads this tap
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int kx = 0; kx < kw; ++kx) {
                int tx = ix + pl - kx * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                const T* dyp = dy + ((image * oh + ty / sh) * ow + tx / sw) * cm + ci * mult;
                const T* wp = w + (ky * kw + kx) * cm + ci * mult;
                for (int m = 0; m < mult; ++m) acc += to_float(dyp[m]) * to_float(wp[m]);
            }
        }
        dx[i] = from_float<T>(acc);
    }
}

template <class T> __global__ void __launch_bounds__(256) depthwise_conv2d_backward_filter(
        const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ partial,
        int per_split, int n, int h, int wd, int c, int mult, int oh, int ow, int kh, int kw,
        int sh, int sw, int dh, int dw, int pt, int pl) {
    __shared__ float rows[DW_ROWS][DW_LANES];
    int cm = c * mult;
    int lane = threadIdx.x % DW_LANES, row = threadIdx.x / DW_LANES;
    int tap = blockIdx.x, ky = tap / kw, kx = tap % kw;
    int co = blockIdx.y * DW_LANES + lane, ci = co / mult;
    int pixels = n * oh * ow;
    int first = blockIdx.z * per_split;
    int last = min(first + per_split, pixels);
    float acc = 0.0f;
    if (co < cm) {
        for (int pix = first + row; pix < last; pix += DW_ROWS) {
            int ox = pix % ow, oy = (pix / ow) % oh, image = pix / (ow * oh);
            int iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
            acc += to_float(x[((image * h + iy) * wd + ix) * c + ci]) * to_float(dy[(long long)pix * cm + co]);
        }
    }
    rows[row][lane] = acc;
    __syncthreads();
    if (row == 0 && co < cm) {
        float total = 0.0f;
        for (int r = 0; r < DW_ROWS; ++r) total += rows[r][lane];   // fixed order: bit-identical runs
        partial[((long long)blockIdx.z * kh * kw + tap) * cm + co] = total;
    }
}
