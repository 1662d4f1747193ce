// sgemm.cu - test-only kernel: C = A @ B with two 16x16 shared-memory tiles.
//
// Kernels:
//   sgemm_tiled(A, B, C, M, N, K)   A (M, K), B (K, N), C (M, N), row-major float32
// Threads: block (16, 16), grid (ceil(N/16), ceil(M/16)); thread (tx, ty) of block (bx, by)
// computes C[by*16 + ty][bx*16 + tx]. Every thread loads one element of each tile (zero
// outside the matrices), so both barriers are reached by all threads of the block.
// Writes C (=).

#define TILE 16

extern "C" __global__ void __launch_bounds__(TILE * TILE)
sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
            int M, int N, int K) {
    __shared__ float a_tile[TILE][TILE];
    __shared__ float b_tile[TILE][TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        a_tile[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
        b_tile[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc += a_tile[ty][k] * b_tile[k][tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}
