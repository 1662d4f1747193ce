// pool.cu - pooling over NHWC tensors of T (float, bf16_t, fp16_t): max, average and global
// average, both directions.
//
// Kernels:
//   max_pool2d_forward(x, y, argmax, ...)     y[n,oh,ow,c] = max of its window; argmax[n,oh,ow,c] =
//                                             h * W + w of the winner in the unpadded plane (int32)
//   max_pool2d_backward(dy, argmax, dx, gate, has_gate, act, alpha, ...)
//                                             dx[n,h,w,c] = sum of dy over the windows covering
//                                             (h, w) whose argmax names it; with has_gate, times
//                                             the derivative of the activation before the pool,
//                                             read from its output gate (epilogue.cuh)
//   avg_pool2d_forward(x, y, ...)             y = sum of the window's real cells / their count
//   avg_pool2d_backward(dy, dx, ...)          dx[n,h,w,c] = sum over covering windows of dy / count
//   global_avg_pool2d_forward(x, y, ...)      y[n,c] = mean of x[n,:,:,c] over H * W
//   global_avg_pool2d_backward(dy, dx, ...)   dx[n,h,w,c] = dy[n,c] / (H * W)
//
// Layout: NHWC, C-contiguous; y / dy are (N, OH, OW, C), global pooling's y / dy (N, C).
// Geometry (host side, gpunet/primitives/pool.py): window (kh, kw), stride (sh, sw), padding before
// (pt, pl). Window (oh, ow) covers rows oh*sh - pt ... + kh - 1, clipped to the image; padding is
// never read: max pooling scans from the window's first real cell (a padded -inf never wins),
// average pooling divides by the count of real cells.
// Threads: every kernel but global_avg_pool2d_forward is a grid-stride loop over the elements it
// writes, one thread per element, channel fastest so neighbouring threads touch neighbouring
// addresses. global_avg_pool2d_forward gives a block of 256 threads to `lanes` channels (a power
// of two up to 32) of one sample: 256 / lanes threads per channel sum strided H*W positions,
// then a shared-memory tree adds their partial sums.
// Ties and NaN (as the NumPy reference): the first real cell in row-major window order holding
// the maximum wins; a NaN beats any number and the first NaN stays.
// Backward needs: max pooling the argmax, and the geometry to find the windows covering a cell
// (when the caller lacks it, the host passes a window of H + OH rows, stride 1, padding OH - 1,
// which covers every output: a dx element then checks its whole plane's argmax, still exact);
// average pooling the geometry only; global average pooling H * W.
// Element type: x, y, dy, dx and the gate are T; every kernel loads T as float, sums and
// divides in float registers and rounds once where it stores (max pooling only selects, so its
// y is exact in every T). argmax stays int32.
// Determinism: backward gathers, each dx element adding its terms in window order (rows, then
// columns); no atomics. Gradients: every kernel writes (=) its output, none accumulates.

#define THREADS 256

#include "common.cuh"     // GRID_STRIDE_LOOP, nhwc_at
#include "epilogue.cuh"   // activation_gradient: the ReLU (or other) before the pool, folded

// Clipped extent [*begin, *end) of output index o's window on one axis of size n.
__device__ __forceinline__ void window_span(int o, int stride, int pad, int k, int n, int* begin, int* end) {
    int start = o * stride - pad;
    *begin = max(start, 0);
    *end = min(start + k, n);
}

// Outputs [*first, *last] on one axis whose windows cover input index i (empty when last < first).
__device__ __forceinline__ void covering_windows(int i, int stride, int pad, int k, int out, int* first,
                                                 int* last) {
    int low = i + pad - k + 1;   // a window covers i when low <= o * stride <= i + pad
    *first = low <= 0 ? 0 : (low + stride - 1) / stride;
    *last = min((i + pad) / stride, out - 1);
}

template <class T> __global__ void __launch_bounds__(THREADS)
max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                   int n, int h, int w, int c, int out_h, int out_w, int kh, int kw,
                   int sh, int sw, int pt, int pl) {
    GRID_STRIDE_LOOP(index, n * out_h * out_w * c) {
        auto [image, oh, ow, ch] = nhwc_at(index, out_h, out_w, c);
        int row0, row1, col0, col1;
        window_span(oh, sh, pt, kh, h, &row0, &row1);
        window_span(ow, sw, pl, kw, w, &col0, &col1);
        const T* plane = x + image * h * w * c + ch;
        int best_at = row0 * w + col0;
        float best = to_float(plane[best_at * c]);
        for (int row = row0; row < row1; ++row) {
            for (int col = col0; col < col1; ++col) {
                float v = to_float(plane[(row * w + col) * c]);
                if (v > best || (v != v && best == best)) {   // v != v: NaN, which wins and stays
                    best = v;
                    best_at = row * w + col;
                }
            }
        }
        y[index] = from_float<T>(best);
        argmax[index] = best_at;
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
max_pool2d_backward(const T* __restrict__ dy, const int* __restrict__ argmax, T* __restrict__ dx,
                    const T* __restrict__ gate, int has_gate, int act, float alpha, int n, int h, int w, int c, int out_h, int out_w, int kh, int kw,
                    int sh, int sw, int pt, int pl) {
    GRID_STRIDE_LOOP(index, n * h * w * c) {
        auto [image, row, col, ch] = nhwc_at(index, h, w, c);
        int oh0, oh1, ow0, ow1;
        covering_windows(row, sh, pt, kh, out_h, &oh0, &oh1);
        covering_windows(col, sw, pl, kw, out_w, &ow0, &ow1);
        int cell = row * w + col, base = image * out_h * out_w * c + ch;
        float sum = 0.0f;
        for (int oh = oh0; oh <= oh1; ++oh) {
            for (int ow = ow0; ow <= ow1; ++ow) {
                int at = base + (oh * out_w + ow) * c;
                if (argmax[at] == cell) sum += to_float(dy[at]);
            }
        }
        dx[index] = from_float<T>(has_gate ? activation_gradient(sum, to_float(gate[index]), act, alpha) : sum);
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y,
                   int n, int h, int w, int c, int out_h, int out_w, int kh, int kw,
                   int sh, int sw, int pt, int pl) {
    GRID_STRIDE_LOOP(index, n * out_h * out_w * c) {
        auto [image, oh, ow, ch] = nhwc_at(index, out_h, out_w, c);
        int row0, row1, col0, col1;
        window_span(oh, sh, pt, kh, h, &row0, &row1);
        window_span(ow, sw, pl, kw, w, &col0, &col1);
        const T* plane = x + image * h * w * c + ch;
        float sum = 0.0f;
        for (int row = row0; row < row1; ++row)
            for (int col = col0; col < col1; ++col) sum += to_float(plane[(row * w + col) * c]);
        y[index] = from_float<T>(sum / (float)((row1 - row0) * (col1 - col0)));
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx,
                    int n, int h, int w, int c, int out_h, int out_w, int kh, int kw,
                    int sh, int sw, int pt, int pl) {
    GRID_STRIDE_LOOP(index, n * h * w * c) {
        auto [image, row, col, ch] = nhwc_at(index, h, w, c);
        int oh0, oh1, ow0, ow1;
        covering_windows(row, sh, pt, kh, out_h, &oh0, &oh1);
        covering_windows(col, sw, pl, kw, out_w, &ow0, &ow1);
        int base = image * out_h * out_w * c + ch;
        float sum = 0.0f;
        for (int oh = oh0; oh <= oh1; ++oh) {
            int row0, row1;
            window_span(oh, sh, pt, kh, h, &row0, &row1);
            for (int ow = ow0; ow <= ow1; ++ow) {
                int col0, col1;
                window_span(ow, sw, pl, kw, w, &col0, &col1);
                sum += to_float(dy[base + (oh * out_w + ow) * c]) / (float)((row1 - row0) * (col1 - col0));
            }
        }
        dx[index] = from_float<T>(sum);
    }
}

// grid (n, ceil(c / lanes)), block THREADS; lanes a power of two <= 32.
template <class T> __global__ void __launch_bounds__(THREADS)
global_avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, int n, int hw, int c,
                          int lanes) {
    __shared__ float partial[THREADS];
    int lane = threadIdx.x % lanes, part = threadIdx.x / lanes, parts = THREADS / lanes;
    int ch = blockIdx.y * lanes + lane, image = blockIdx.x;
    float sum = 0.0f;
    if (ch < c) {
        const T* column = x + image * hw * c + ch;
        for (int p = part; p < hw; p += parts) sum += to_float(column[p * c]);
    }
    partial[threadIdx.x] = sum;
    for (int half = parts / 2; half > 0; half /= 2) {
        __syncthreads();
        if (part < half) partial[threadIdx.x] += partial[threadIdx.x + half * lanes];
    }
    if (part == 0 && ch < c) y[image * c + ch] = from_float<T>(partial[lane] / (float)hw);
}

template <class T> __global__ void __launch_bounds__(THREADS)
global_avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx, int n, int hw, int c) {
    GRID_STRIDE_LOOP(index, n * hw * c) {
        dx[index] = from_float<T>(to_float(dy[(index / (hw * c)) * c + index % c]) / (float)hw);
    }
}
