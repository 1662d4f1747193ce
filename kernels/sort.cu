// sort.cu - sorting along one axis by rank (gn.ops.sort, argsort, top_k) and the scatter that
// carries their gradient back.
//
// Kernels (T = float, bf16_t or fp16_t; kernel_source.py instantiates each template for all three):
//   rank_sort(x, values, indices, lines, length, inner, k, descending)
//       x (outer, length, inner), a line being x[o, :, r] (lines = outer * inner); element p of a
//       line goes to place q = its rank (the number of elements ordered before it, ties broken by
//       position: a stable sort); places q < k are written: values[o, q, r] = x[o, p, r],
//       indices[o, q, r] = p (int32). k = length sorts the whole line, k < length keeps the first
//       k (top_k, descending != 0).
//   rank_scatter(dy, indices, dx, lines, length, inner, k)   dx[o, indices[o, q, r], r] = dy[o, q, r]
//       (dx zeroed first by the host); the indices of a line are distinct, so no two threads write
//       one element: no atomics, the same result every run.
// Order: ascending, NaN after every number (NumPy's sort); descending, NaN before every number.
// Threads: one thread per element of x (a grid-stride loop), reading its whole line: length
// comparisons each, O(length^2) per line, chosen for lines of up to a few thousand (class scores,
// a row of logits) where it needs no shared memory and no sorting network; the result depends on
// the values only, not on thread order.
// Precision: values are compared as float (16-bit types widened exactly) and copied unchanged.
#include "common.cuh"

// u goes before v in the order (ascending: smaller first, NaN last; descending: larger first, NaN first)
__device__ __forceinline__ bool ordered_before(float u, float v, int descending) {
    if (descending) return u > v || (u != u && v == v);
    return u < v || (v != v && u == u);
}

template <class T>
__global__ void rank_sort(const T* __restrict__ x, T* __restrict__ values, int* __restrict__ indices, int lines,
                          int length, int inner, int k, int descending) {
    GRID_STRIDE_LOOP(i, lines * length) {
        int o = i / (length * inner), rest = i - o * length * inner;
        int p = rest / inner, r = rest - p * inner;
        const T* line = x + o * length * inner + r;
        float v = to_float(line[p * inner]);
        int rank = 0;
        for (int j = 0; j < length; ++j) {
            float u = to_float(line[j * inner]);
            rank += ordered_before(u, v, descending) || (j < p && !ordered_before(v, u, descending));
        }
        if (rank < k) {
            int at = (o * k + rank) * inner + r;
            values[at] = line[p * inner];
            indices[at] = p;
        }
    }
}

template <class T>
__global__ void rank_scatter(const T* __restrict__ dy, const int* __restrict__ indices, T* __restrict__ dx, int lines,
                             int length, int inner, int k) {
    GRID_STRIDE_LOOP(i, lines * k) {
        int o = i / (k * inner), r = i % inner;
        dx[(o * length + indices[i]) * inner + r] = dy[i];
    }
}
