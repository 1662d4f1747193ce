// scan.cu - cumulative sums and products along one axis (gn.ops.cumsum / cumprod, and their
// gradients, which are reversed cumulative sums).
//
// Kernels (T = float, bf16_t or fp16_t; kernel_source.py instantiates each template for all three):
//   cumulative_sum(x, out, lines, length, inner, reverse)    out[o, k, r] = sum of x[o, j, r] for j <= k
//       (reverse != 0: for j >= k)
//   cumulative_prod(x, out, lines, length, inner, reverse)   the same with products
// Layout: x and out C-contiguous, seen as (outer, length, inner) with the scanned axis in the middle
// (no transpose: a line's elements are `inner` apart); lines = outer * inner.
// Threads: one thread per line, a grid-stride loop over lines; each thread walks its line in order
// (backwards when reverse), so every element is the same float32 sum or product in the same order
// on every run and on every backend (NumPy's add.accumulate is this sequential order too). No
// atomics, no shared memory: a line is short next to the number of lines in the tensors ops sees.
// Precision: loads widen T to float, the running value stays in a float32 register, each output is
// rounded once to T where stored.
// Backward needs: cumsum's gradient is cumulative_sum(dy, reverse = 1); cumprod's is
// cumulative_sum(dy * y, reverse = 1) / x (gpunet/primitives/scan.py composes them).
#include "common.cuh"

struct ScanSum { __device__ static float start() { return 0.0f; }
                 __device__ static float apply(float a, float b) { return a + b; } };
struct ScanProd { __device__ static float start() { return 1.0f; }
                  __device__ static float apply(float a, float b) { return a * b; } };

template <class Op, class T>
__device__ __forceinline__ void scan_lines(const T* __restrict__ x, T* __restrict__ out, int lines, int length,
                                           int inner, int reverse) {
    GRID_STRIDE_LOOP(line, lines) {
        int o = line / inner, r = line - o * inner;
        int base = o * length * inner + r;   // the host keeps every offset within int
        float acc = Op::start();
        for (int k = 0; k < length; ++k) {
            int at = base + (reverse ? length - 1 - k : k) * inner;
            acc = Op::apply(acc, to_float(x[at]));
            out[at] = from_float<T>(acc);
        }
    }
}

template <class T> __global__ void cumulative_sum(const T* __restrict__ x, T* __restrict__ out, int lines, int length,
                                                  int inner, int reverse) {
    scan_lines<ScanSum>(x, out, lines, length, inner, reverse);
}

template <class T> __global__ void cumulative_prod(const T* __restrict__ x, T* __restrict__ out, int lines,
                                                   int length, int inner, int reverse) {
    scan_lines<ScanProd>(x, out, lines, length, inner, reverse);
}
