// faults.cu - test-only kernels with planted bugs that the cudasim backend must catch.
//
// Kernels:
//   sum_missing_sync(x, partial, n)   sum_shared without its barriers: a race
//   scale_missing_sync(x, y, n)       thread 0 stores a block-wide factor, nobody waits for it
//   write_past_end(out, n)            i <= n: writes out[n], one past the end
//   write_before_start(out, n)        writes out[i - 1]: out[-1] for i = 0
//   divergent_barrier(out)            __syncthreads reached by threads 0-15 only
//   two_barriers(out)                 even and odd threads wait at different __syncthreads
//   divergent_shuffle(out)            lanes 16-31 named in the mask return before the shuffle
// Threads: 1-D blocks; thread t of block b handles element b * blockDim.x + t.

extern "C" __global__ void sum_missing_sync(const float* __restrict__ x, float* __restrict__ partial, int n) {
    __shared__ float cache[1024];
    unsigned tid = threadIdx.x;
    int i = blockIdx.x * blockDim.x + tid;
    cache[tid] = i < n ? x[i] : 0.0f;
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1)
        if (tid < s) cache[tid] += cache[tid + s];   // planted: no __syncthreads
    if (tid == 0) partial[blockIdx.x] = cache[0];
}

extern "C" __global__ void scale_missing_sync(const float* __restrict__ x, float* __restrict__ y, int n) {
    __shared__ float factor;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (threadIdx.x == 0) factor = 2.0f + blockIdx.x;   // planted: no __syncthreads after it
    if (i < n) y[i] = x[i] * factor;
}

extern "C" __global__ void write_past_end(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;
}

extern "C" __global__ void write_before_start(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i - 1] = 1.0f;
}

extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

extern "C" __global__ void two_barriers(float* out) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

extern "C" __global__ void divergent_shuffle(float* out) {
    unsigned lane = threadIdx.x % 32;
    if (lane >= 16) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
}
