// elementwise.cu - element-by-element kernels over flat float32 buffers: the Add merge.
//
// Kernels:
//   add_forward(a, b, out, n)           out[i] = a[i] + b[i] for i < n  (the first two inputs)
//   add_forward_accumulate(out, x, n)   out[i] += x[i]                  (each further input, in order)
//   add_backward(dy, dx, n)             dx[i] = dy[i]                   (one launch per input's gradient)
//
// Layout: any; tensors are contiguous NHWC float32 buffers read as flat arrays of n elements,
// so an element's position in the tensor does not matter here.
// Threads: a grid-stride loop; thread t of the grid computes elements t, t + stride, ...
// (stride = gridDim.x * blockDim.x), so any grid size covers any n.
// A sum of k inputs is ((x0 + x1) + x2) + ...: add_forward, then add_forward_accumulate in input
// order, the order of the NumPy reference, so both round alike.
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
