// elementwise.cu - element-by-element kernels over flat buffers: the merge layers (Add,
// Subtract, Multiply, Average, Maximum, Minimum).
//
// Kernels:
//   add_forward(a, b, out, n)           out[i] = a[i] + b[i] for i < n  (the first two inputs)
//   add_forward_accumulate(out, x, n)   out[i] += x[i]                  (each further input, in order)
//   add_backward(dy, dx, n)             dx[i] = dy[i]                   (one launch per input's gradient)
//   scale_copy(x, out, n, factor)       out[i] = factor * x[i]   (Average's mean and gradient, -dy of Subtract)
//   subtract_forward(a, b, out, n)      out[i] = a[i] - b[i]
//   multiply_forward(a, b, out, n)      out[i] = a[i] * b[i]; with dy as a, also Multiply's backward
//   multiply_forward_accumulate(out, x, n)   out[i] *= x[i]    (further factors, in input order)
//   maximum_forward(a, b, out, winner, n)   out = max(a, b), winner[i] = 0 or 1 (int32: which input)
//   maximum_forward_accumulate(out, winner, x, k, n)   out = max(out, x_k), winner = k where x_k wins
//   minimum_forward / minimum_forward_accumulate      the same with min
//   select_backward(dy, winner, dx, n, k)   dx[i] = winner[i] == k ? dy[i] : 0
//
// Element types: every kernel is a template on T (float, bf16_t, fp16_t): loads T as float,
// computes in float32, stores T, one rounding per kernel. A merge of k inputs runs k - 1 kernels
// and so rounds after each pairwise step, as Keras's bf16 / fp16 merges do; maximum, minimum and
// the copies are exact. winner stays int32.
// Layout: any; tensors are contiguous NHWC buffers read as flat arrays of n elements,
// so an element's position in the tensor does not matter here.
// Threads: a grid-stride loop; thread t of the grid computes elements t, t + stride, ...
// (stride = gridDim.x * blockDim.x), so any grid size covers any n.
// A sum of k inputs is ((x0 + x1) + x2) + ...: add_forward, then add_forward_accumulate in input
// order, the order of the NumPy reference, so both round alike.
// Maximum / Minimum: a later input wins only when strictly greater (smaller), or NaN, so ties go
// to the first input (as max pooling does) and a NaN anywhere makes the output NaN.
// Backward: Multiply needs its inputs; Maximum / Minimum the int32 winner of each element.
// Backward: add needs nothing saved: d(x_k) = d(out) for every input, written as copies of dy.
// Gradients: add_backward writes (=) dx; only the forward accumulate kernel uses +=.

// Self-contained but for dtype.cuh (no common.cuh): tests copy this file and dtype.cuh to other
// folders to exercise builds.
#include "dtype.cuh"   // bf16_t / fp16_t, to_float, from_float<T>

template <class T> __global__ void add_forward(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T> __global__ void add_forward_accumulate(T* __restrict__ out, const T* __restrict__ x, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(out[i]) + to_float(x[i]));
}

template <class T> __global__ void add_backward(const T* __restrict__ dy, T* __restrict__ dx, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dx[i] = dy[i];
}

template <class T> __global__ void scale_copy(const T* __restrict__ x, T* __restrict__ out, int n, float factor) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(factor * to_float(x[i]));
}

template <class T> __global__ void subtract_forward(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(a[i]) - to_float(b[i]));
}

template <class T> __global__ void multiply_forward(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(a[i]) * to_float(b[i]));
}

template <class T> __global__ void multiply_forward_accumulate(T* __restrict__ out, const T* __restrict__ x, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_float<T>(to_float(out[i]) * to_float(x[i]));
}

// The comparison of Maximum (sign 1) and Minimum (sign -1): does `v` beat the current `best`?
__device__ __forceinline__ bool beats(float v, float best, float sign) {
    return sign * v > sign * best || (v != v && best == best);
}

template <class T>
__device__ __forceinline__ void extreme_first(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int* __restrict__ winner, int n, float sign) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        bool second = beats(to_float(b[i]), to_float(a[i]), sign);
        out[i] = second ? b[i] : a[i];
        winner[i] = second ? 1 : 0;
    }
}

template <class T>
__device__ __forceinline__ void extreme_next(T* __restrict__ out, int* __restrict__ winner,
        const T* __restrict__ x, int k, int n, float sign) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (beats(to_float(x[i]), to_float(out[i]), sign)) {
            out[i] = x[i];
            winner[i] = k;
        }
    }
}

template <class T> __global__ void maximum_forward(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int* __restrict__ winner, int n) {
    extreme_first(a, b, out, winner, n, 1.0f);
}

template <class T> __global__ void maximum_forward_accumulate(T* __restrict__ out, int* __restrict__ winner,
        const T* __restrict__ x, int k, int n) {
    extreme_next(out, winner, x, k, n, 1.0f);
}

template <class T> __global__ void minimum_forward(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int* __restrict__ winner, int n) {
    extreme_first(a, b, out, winner, n, -1.0f);
}

template <class T> __global__ void minimum_forward_accumulate(T* __restrict__ out, int* __restrict__ winner,
        const T* __restrict__ x, int k, int n) {
    extreme_next(out, winner, x, k, n, -1.0f);
}

template <class T> __global__ void select_backward(const T* __restrict__ dy, const int* __restrict__ winner,
        T* __restrict__ dx, int n, int k) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = winner[i] == k ? dy[i] : from_float<T>(0.0f);
}
