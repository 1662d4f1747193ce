// reduce.cu - test-only kernels: block reductions, atomics and warp operations.
//
// Kernels:
//   sum_shared(x, partial, n)        partial[b] = sum of block b's slice, tree in shared memory
//   sum_shuffle(x, partial, n)       the same with __shfl_down_sync inside warps
//   sum_atomic(x, total, n)          *total += every x[i] with atomicAdd (float)
//   histogram(labels, counts, n)     counts[labels[i]] += 1 with atomicAdd (int)
//   warp_ops(x, idx, up, down, xr, ballot)   one entry per thread: lane results of each op
// Threads: 1-D blocks of 256 (sum_*: a power of two up to 1024, their __launch_bounds__); thread t of block b reads
// x[b * blockDim.x + t] (0 past n). Writes (=) partial, idx, up, down, xr, ballot.

#define FULL 0xffffffffu

extern "C" __global__ void __launch_bounds__(1024)
sum_shared(const float* __restrict__ x, float* __restrict__ partial, int n) {
    __shared__ float cache[1024];
    unsigned tid = threadIdx.x;
    int i = blockIdx.x * blockDim.x + tid;
    cache[tid] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) cache[tid] += cache[tid + s];
        __syncthreads();
    }
    if (tid == 0) partial[blockIdx.x] = cache[0];
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(FULL, v, offset);
    return v;
}

extern "C" __global__ void __launch_bounds__(1024)
sum_shuffle(const float* __restrict__ x, float* __restrict__ partial, int n) {
    __shared__ float warp_sums[32];
    unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    int i = blockIdx.x * blockDim.x + tid;
    float v = warp_sum(i < n ? x[i] : 0.0f);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / 32 ? warp_sums[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

extern "C" __global__ void sum_atomic(const float* __restrict__ x, float* __restrict__ total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(total, x[i]);
}

extern "C" __global__ void histogram(const int* __restrict__ labels, int* __restrict__ counts, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(&counts[labels[i]], 1);
}

extern "C" __global__ void warp_ops(const int* __restrict__ x, int* __restrict__ idx, int* __restrict__ up,
                                    int* __restrict__ down, int* __restrict__ xr, unsigned* __restrict__ ballot) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = x[i];
    idx[i] = __shfl_sync(FULL, v, 3);
    up[i] = __shfl_up_sync(FULL, v, 2, 16);
    down[i] = __shfl_down_sync(FULL, v, 5);
    xr[i] = __shfl_xor_sync(FULL, v, 1);
    ballot[i] = __ballot_sync(FULL, v % 3 == 0);
}
