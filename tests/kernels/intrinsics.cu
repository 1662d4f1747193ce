// intrinsics.cu - test-only kernels using the math and integer intrinsics gpunet's kernels
// may use, so that cudasim.h is checked against NVRTC (which compiles this file too) and
// against NumPy.
//
// Kernels:
//   float_ops(x, out, n)      out[i * 12 + k] = the k-th function of x[i] (list below)
//   int_ops(a, out, top, n)   out[i * 4 + k] = min/max/bit ops of a[i]; *top = max of a (atomicMax)
// Threads: one per element, 1-D grid. Writes (=) out; top accumulates with atomicMax.

extern "C" __global__ void float_ops(const float* __restrict__ x, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = __ldg(x + i);
    float* o = out + i * 12;
    o[0] = expf(v);
    o[1] = logf(fabsf(v) + 1.0f);
    o[2] = sqrtf(fabsf(v));
    o[3] = rsqrtf(fabsf(v) + 1.0f);
    o[4] = fmaxf(v, 0.25f) + fminf(v, -0.25f);
    o[5] = tanhf(v);
    o[6] = __expf(v) + __logf(fabsf(v) + 2.0f);
    o[7] = __fdividef(v, 3.0f);
    o[8] = __uint_as_float(__float_as_uint(v) & 0x7fffffffu);   // |v| by bit manipulation
    o[9] = v > 0.0f ? INFINITY : -FLT_MAX;
    o[10] = max(v, 0.5f) - min(v, -0.5f);
    o[11] = __saturatef(v);
}

extern "C" __global__ void int_ops(const int* __restrict__ a, int* __restrict__ out, int* __restrict__ top, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int v = a[i];
    int* o = out + i * 4;
    o[0] = min(v, 3) + max(v, -3);
    o[1] = int(min(unsigned(v * v), 100u));
    o[2] = __popc(unsigned(v)) + __ffs(v);
    o[3] = __clz(v);
    atomicMax(top, v);
}
