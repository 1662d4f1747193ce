// elementwise.cu - element-by-element kernels over flat float32 buffers: the merge layers (Add,
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
// Layout: any; tensors are contiguous NHWC float32 buffers read as flat arrays of n elements,
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

// Self-contained (no common.cuh): tests copy this file alone to other folders to exercise builds.

extern "C" __global__ void add_forward(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = a[i] + b[i];
}

extern "C" __global__ void add_forward_accumulate(float* __restrict__ out, const float* __restrict__ x, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] += x[i];
}

extern "C" __global__ void add_backward(const float* __restrict__ dy, float* __restrict__ dx, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dx[i] = dy[i];
}

extern "C" __global__ void scale_copy(const float* __restrict__ x, float* __restrict__ out, int n, float factor) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = factor * x[i];
}

extern "C" __global__ void subtract_forward(const float* __restrict__ a, const float* __restrict__ b,
                                            float* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = a[i] - b[i];
}

extern "C" __global__ void multiply_forward(const float* __restrict__ a, const float* __restrict__ b,
                                            float* __restrict__ out, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = a[i] * b[i];
}

extern "C" __global__ void multiply_forward_accumulate(float* __restrict__ out, const float* __restrict__ x, int n) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] *= x[i];
}

// The comparison of Maximum (sign 1) and Minimum (sign -1): does `v` beat the current `best`?
__device__ __forceinline__ bool beats(float v, float best, float sign) {
    return sign * v > sign * best || (v != v && best == best);
}

__device__ __forceinline__ void extreme_first(const float* __restrict__ a, const float* __restrict__ b,
                                              float* __restrict__ out, int* __restrict__ winner, int n, float sign) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        bool second = beats(b[i], a[i], sign);
        out[i] = second ? b[i] : a[i];
        winner[i] = second ? 1 : 0;
    }
}

__device__ __forceinline__ void extreme_next(float* __restrict__ out, int* __restrict__ winner,
                                             const float* __restrict__ x, int k, int n, float sign) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (beats(x[i], out[i], sign)) {
            out[i] = x[i];
            winner[i] = k;
        }
    }
}

extern "C" __global__ void maximum_forward(const float* __restrict__ a, const float* __restrict__ b,
                                           float* __restrict__ out, int* __restrict__ winner, int n) {
    extreme_first(a, b, out, winner, n, 1.0f);
}

extern "C" __global__ void maximum_forward_accumulate(float* __restrict__ out, int* __restrict__ winner,
                                                      const float* __restrict__ x, int k, int n) {
    extreme_next(out, winner, x, k, n, 1.0f);
}

extern "C" __global__ void minimum_forward(const float* __restrict__ a, const float* __restrict__ b,
                                           float* __restrict__ out, int* __restrict__ winner, int n) {
    extreme_first(a, b, out, winner, n, -1.0f);
}

extern "C" __global__ void minimum_forward_accumulate(float* __restrict__ out, int* __restrict__ winner,
                                                      const float* __restrict__ x, int k, int n) {
    extreme_next(out, winner, x, k, n, -1.0f);
}

extern "C" __global__ void select_backward(const float* __restrict__ dy, const int* __restrict__ winner,
                                           float* __restrict__ dx, int n, int k) {
    int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dx[i] = winner[i] == k ? dy[i] : 0.0f;
}
