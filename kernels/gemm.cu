// gemm.cu - the matrix products of a Dense layer, y = x @ w + b, and its gradients.
//
// Kernels:
//   dense_forward(x, w, b, y, M, K, N, has_bias, act, alpha)
//       y (M, N) = act(x (M, K) @ w (K, N) (+ b (N,)))                                       [NN]
//   dense_backward_input(dy, w, dx, M, K, N, gate, has_gate, act, alpha)
//       dx (M, N) = dy (M, K) @ w^T, w stored (N, K); with a gate (the output of the layer before,
//       whose activation this folds) dx * act'(...) read from the gate                       [NT]
//   dense_backward_filter(x, dy, dw, M, K, N, with_bias)
//       dw (M, N) = x^T @ dy, x stored (K, M), dy (K, N); with_bias: dw has a row M more, the
//       bias gradient (the product of a row of ones with dy)                                 [TN]
//   dense_backward_bias(dy, db, rows, cols)        db (cols,) = column sums of dy (rows, cols)
//   (dense_forward and dense_backward_input end with (partial, k_per_split, arrivals): split-K, below)
//   matmul_batched_nn(a, b, c, M, K, N, batch0, ndim, meta)   c[z] = a[z] @ b[z]              [NN]
//   matmul_batched_nt(a, b, c, M, K, N, batch0, ndim, meta)   c[z] = a[z] @ b[z]^T, b (N, K)  [NT]
//   matmul_batched_tn(a, b, c, M, K, N, batch0, ndim, meta)   c[z] = a[z]^T @ b[z], a (K, M)  [TN]
//       gn.ops.matmul on batches of matrices (forward, then its two gradient products): one launch,
//       batch index z = batch0 + blockIdx.z; meta = [batch shape (ndim), a's batch strides, b's
//       batch strides (elements, ndim each)], a stride of 0 broadcasting that operand along the
//       axis; c is float32, contiguous (z, M, N) (the host rounds a 16-bit result once, after
//       summing a broadcast operand's gradient over its batch).
// The epilogue (act codes, activate / activation_gradient) is epilogue.cuh's, shared with
// conv.cu and pool.cu; a new GEMM kernel fuses the same activations by calling `epilogue`.
//
// Element types: the four kernels are templates on T (float, bf16_t, fp16_t): x, w, dy, y, dx and
// the gate are T, b, dw and db float32. Tiles and accumulators are float (each element converted
// as it is loaded); y and dx are rounded to T once, after the bias and the epilogue. The float
// instances are the float32 kernels as before. (Dense layers with 16-bit operands run on tensor
// cores where they exist, tc_gemm.cu; these instances serve GPUs without them.)
// Layout: row-major matrices. A Dense input of any rank arrives folded to (batch, in);
// the kernel w is Keras's (in, out). M, K, N name the product's own sizes, so in
// dense_backward_input M = batch, K = out, N = in, and in dense_backward_filter M = in,
// K = batch, N = out.
//
// The three products share one tiled SGEMM, gemm_tile<TRANS_A, TRANS_B, T, TC>. A block of 256
// threads computes a 64 x 64 tile of C; each thread owns a 4 x 4 register tile: rows
// ty + 16*i and columns tx + 16*j (tx = tid % 16, ty = tid / 16), so a warp's stores cover
// whole 16-column runs. Grid: (ceil(M / 64), ceil(N / 64)) when M >= N, else (ceil(N / 64),
// ceil(M / 64)): the longer side of C takes grid axis x (2^31 - 1 blocks), the shorter one
// axis y (65,535 blocks, 4.2M rows or columns), which it never fills: M * N < 2^31 (dense.py
// checks) leaves the shorter side under 46,341, i.e. at most 725 tiles.
// K advances 16 at a time through two shared tiles (16 x 64 of A and of B, k-major, rows
// padded to 66 floats: 8,448 B = 8.25 KiB in all), each thread loading 4 elements of each with
// consecutive threads on consecutive addresses of whichever layout the operand has. Elements
// beyond the matrices load as zero, so every thread reaches every barrier. Why 64 x 64 and not
// 16 x 16: a thread reuses each shared value it reads 4 times (16 multiply-adds for 8 shared
// loads), and on cudasim, where each barrier costs a context switch per thread, a layer with
// 64 outputs runs as one block instead of sixteen.
//
// dense_backward_bias: a block of 32 x 8 threads owns 32 columns; thread (tx, ty) sums rows
// ty, ty + 8, ... of column tx in order, then the 8 partial sums of a column are added in a
// fixed tree in shared memory. No atomics: two runs give the same bits.
//
// Split-K, for skinny dense products whose 64 x 64 tiles would leave most SMs idle (the small
// CNN's 64 x 3136 @ 3136 x 128: 2 tiles): grid (x, y, splits); block z sums its own k range
// (whole k-tiles) and writes the raw float sums to partial[z] (M x N, float32), then counts
// itself in arrivals[tile] (an int atomic). The block that arrives last for its tile adds the
// splits' sums in order (z = 0, 1, ...: the same bits whichever block is last), then the bias
// and the epilogue, and writes C: no second launch, no float atomics, the same bits every run;
// it leaves its counter at zero for the next launch. The summation order differs from the
// unsplit product's (a sum per split, then the splits), so the result differs from it within
// float32 rounding; dense.py says when it splits. The weight gradient is never split (its
// output, in x out, has tiles enough unless both are small; the split path would cost it registers).
// Every C element is one thread's sum over k in ascending order (split-K: per split, then the
// splits in order), so all the kernels are deterministic. Backward needs the forward's input x
// (and w); nothing else is saved.
// Gradients: every kernel writes (=) its output, none accumulates (+=).

#include "common.cuh"     // dtype.cuh: bf16_t / fp16_t, to_float, from_float<T>
#include "epilogue.cuh"   // epilogue: the activation applied to C, or its gradient folded in (a T gate read as float)

#define BLOCK_M 64
#define BLOCK_N 64
#define BLOCK_K 16
#define THREADS 256
#define SIDE 16          // threads along each side of the 16 x 16 thread grid
#define PER_THREAD 4     // BLOCK_M / SIDE outputs per thread along each axis
// Row padding of the shared tiles. An operand stored with k fastest (A as (M, K), B as (N, K))
// is transposed on its way in: a warp writes tile[k][m] with k = lane % 16 and m = lane / 16
// plus a multiple of 16, in bank (k * (64 + PAD) + m) % 32 = (k * PAD + m) % 32. PAD 2 puts
// the 32 lanes in 32 distinct banks (m in even banks, m + 1 in odd ones): no conflict. PAD 1
// would put two lanes in each of banks 1-15 (2-way conflicts). The other stores and all tile
// reads touch consecutive (or identical) addresses, conflict-free at any padding.
#define PAD 2


// Loads the BLOCK_K x BLOCK_M slice of op(A) starting at (row0, k0) into tile[k][m].
// op(A) is (M, K); A is stored (M, K), or (K, M) when TRANS. Row ones_row of op(A), when not
// -1, is all ones (not stored): its row of C is then the column sums of op(B).
template <bool TRANS, class T>
__device__ __forceinline__ void load_a(const T* __restrict__ a, float (*tile)[BLOCK_M + PAD],
                                       int rows, int depth, int row0, int k0, int tid, int ones_row) {
    int stride = TRANS ? (ones_row >= 0 ? ones_row : rows) : depth;
    for (int l = 0; l < BLOCK_M * BLOCK_K / THREADS; ++l) {
        int index = tid + l * THREADS;
        int k = TRANS ? index / BLOCK_M : index % BLOCK_K;
        int m = TRANS ? index % BLOCK_M : index / BLOCK_K;
        int row = row0 + m, kk = k0 + k;
        bool inside = row < rows && kk < depth;
        tile[k][m] = !inside ? 0.0f : row == ones_row ? 1.0f
                                    : to_float(TRANS ? a[kk * stride + row] : a[row * stride + kk]);
    }
}

// Loads the BLOCK_K x BLOCK_N slice of op(B) starting at (k0, col0) into tile[k][n].
// op(B) is (K, N); B is stored (K, N), or (N, K) when TRANS.
template <bool TRANS, class T>
__device__ __forceinline__ void load_b(const T* __restrict__ b, float (*tile)[BLOCK_N + PAD],
                                       int depth, int cols, int k0, int col0, int tid) {
    for (int l = 0; l < BLOCK_N * BLOCK_K / THREADS; ++l) {
        int index = tid + l * THREADS;
        int k = TRANS ? index % BLOCK_K : index / BLOCK_N;
        int n = TRANS ? index / BLOCK_K : index % BLOCK_N;
        int col = col0 + n, kk = k0 + k;
        bool inside = col < cols && kk < depth;
        tile[k][n] = inside ? to_float(TRANS ? b[col * depth + kk] : b[kk * cols + col]) : 0.0f;
    }
}

// Block z's share of K under split-K (gridDim.z splits of k_per_split, a multiple of BLOCK_K so
// that no k-tile straddles two splits); with one split (k_per_split >= K) partial is null and
// the block writes C itself.
struct SplitK {
    int k_begin, k_end;
    float* partial;    // (splits, M, N) float32
    int* arrivals;     // one zeroed counter per output tile
};

__device__ __forceinline__ SplitK split_k(int K, int k_per_split, float* __restrict__ partial,
                                          int* __restrict__ arrivals) {
    int begin = blockIdx.z * k_per_split;
    return {begin, min(K, begin + k_per_split), gridDim.z > 1 ? partial : nullptr, arrivals};
}

// Split-K's end of a block: writes its sums to its split's slice of partial and counts the block
// in; true in the block that arrives last for the tile, which then finishes C (split_finish).
__device__ __forceinline__ bool split_arrive(const SplitK& split, float (*acc)[PER_THREAD], int row0, int col0,
                                             int tx, int ty, int M, int N) {
    __shared__ int last;
    float* slice = split.partial + (long long)blockIdx.z * M * N;
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i)
#pragma unroll
        for (int j = 0; j < PER_THREAD; ++j) {
            int row = row0 + ty + SIDE * i, col = col0 + tx + SIDE * j;
            if (row < M && col < N) slice[row * N + col] = acc[i][j];
        }
    __threadfence();   // each thread's sums visible to the whole device before the block counts itself
    __syncthreads();
    if (threadIdx.x == 0) {
        int tile = blockIdx.y * gridDim.x + blockIdx.x;
        last = atomicAdd(&split.arrivals[tile], 1) == (int)gridDim.z - 1;
        if (last) split.arrivals[tile] = 0;   // ready for the next launch
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

// The last block of a tile: each element of the tile (thread t takes t, t + 256, ...) is the
// splits' sums added in order z = 0, 1, ... (+ bias), through the epilogue, rounded once.
template <class T, class TC>
__device__ __forceinline__ void split_finish(const SplitK split, const float* __restrict__ bias, TC* __restrict__ c,
                                          int M, int N, int row0, int col0, const T* __restrict__ gate, int act,
                                          float alpha) {
    const volatile float* partial = split.partial;   // written by other blocks: read past L1
    long long slice = (long long)M * N;
    for (int e = threadIdx.x; e < BLOCK_M * BLOCK_N; e += THREADS) {
        int row = row0 + e / BLOCK_N, col = col0 + e % BLOCK_N;
        if (row >= M || col >= N) continue;
        int index = row * N + col;
        float total = partial[index];
        for (int z = 1; z < (int)gridDim.z; ++z) total += partial[z * slice + index];
        c[index] = from_float<TC>(epilogue(bias ? total + bias[col] : total, gate, index, act, alpha));
    }
}

// C (M, N) = op(A) (M, K) @ op(B) (K, N), plus bias[n] on every row when bias is not null,
// then the epilogue (epilogue.cuh): act(C), or with a gate activation_gradient(C, gate[same
// element]). ones_row: see load_a. Operands and gate T, C of type TC (T, or float for dw), each
// C element rounded once from its float sum.
// k in [k_begin, k_end) only. Split-K (`split` not null, see split_k): the raw float sums go to
// this split's slice of split.partial, and the last block of the tile to arrive finishes C.
template <bool TRANS_A, bool TRANS_B, class T, class TC>
__device__ __forceinline__ void gemm_tile(const T* __restrict__ a, const T* __restrict__ b,
                                          const float* __restrict__ bias, TC* __restrict__ c,
                                          int M, int K, int N, SplitK split,
                                          int ones_row = -1, const T* __restrict__ gate = nullptr,
                                          int act = ACT_NONE, float alpha = 0.0f) {
    __shared__ float a_tile[BLOCK_K][BLOCK_M + PAD];
    __shared__ float b_tile[BLOCK_K][BLOCK_N + PAD];
    int tid = threadIdx.x, tx = tid % SIDE, ty = tid / SIDE;
    // The longer side of C runs along grid axis x (up to 2^31 - 1 blocks), the shorter along y.
    int row_tile = M >= N ? blockIdx.x : blockIdx.y, col_tile = M >= N ? blockIdx.y : blockIdx.x;
    int row0 = row_tile * BLOCK_M, col0 = col_tile * BLOCK_N;
    float acc[PER_THREAD][PER_THREAD];
    for (int i = 0; i < PER_THREAD; ++i)
        for (int j = 0; j < PER_THREAD; ++j) acc[i][j] = 0.0f;

    for (int k0 = split.k_begin; k0 < split.k_end; k0 += BLOCK_K) {
        load_a<TRANS_A>(a, a_tile, M, K, row0, k0, tid, ones_row);
        load_b<TRANS_B>(b, b_tile, K, N, k0, col0, tid);
        __syncthreads();
        for (int k = 0; k < BLOCK_K; ++k) {
            float a_frag[PER_THREAD], b_frag[PER_THREAD];
            for (int i = 0; i < PER_THREAD; ++i) a_frag[i] = a_tile[k][ty + SIDE * i];
            for (int j = 0; j < PER_THREAD; ++j) b_frag[j] = b_tile[k][tx + SIDE * j];
            for (int i = 0; i < PER_THREAD; ++i)
                for (int j = 0; j < PER_THREAD; ++j) acc[i][j] += a_frag[i] * b_frag[j];
        }
        __syncthreads();   // the tiles are overwritten by the next step's loads
    }

    if (split.partial) {   // split-K: the block that arrives last for this tile writes C
        if (split_arrive(split, acc, row0, col0, tx, ty, M, N))
            split_finish<T, TC>(split, bias, c, M, N, row0, col0, gate, act, alpha);
        return;
    }
    for (int i = 0; i < PER_THREAD; ++i) {
        int row = row0 + ty + SIDE * i;
        for (int j = 0; j < PER_THREAD; ++j) {
            int col = col0 + tx + SIDE * j;
            if (row < M && col < N)
                c[row * N + col] = from_float<TC>(epilogue(bias ? acc[i][j] + bias[col] : acc[i][j], gate,
                                                              row * N + col, act, alpha));
        }
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
dense_forward(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ b,
              T* __restrict__ y, int M, int K, int N, int has_bias, int act, float alpha,
              float* __restrict__ partial, int k_per_split, int* __restrict__ arrivals) {
    gemm_tile<false, false, T, T>(x, w, has_bias ? b : nullptr, y, M, K, N, split_k(K, k_per_split, partial, arrivals),
                                  -1, nullptr, act, alpha);
}

template <class T> __global__ void __launch_bounds__(THREADS)
dense_backward_input(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx,
                     int M, int K, int N, const T* __restrict__ gate, int has_gate, int act, float alpha,
                     float* __restrict__ partial, int k_per_split, int* __restrict__ arrivals) {
    gemm_tile<false, true, T, T>(dy, w, nullptr, dx, M, K, N, split_k(K, k_per_split, partial, arrivals), -1,
                                 has_gate ? gate : nullptr, act, alpha);
}

// with_bias: dw is (M + 1, N), its last row the bias gradient (column sums of dy), from a row of
// ones appended to x^T: M here is the layer's input features, x stored (K, M).
template <class T> __global__ void __launch_bounds__(THREADS)
dense_backward_filter(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ dw,
                      int M, int K, int N, int with_bias) {
    gemm_tile<true, false, T, float>(x, dy, nullptr, dw, M + with_bias, K, N, SplitK{0, K, nullptr, nullptr},
                                     with_bias ? M : -1);
}

#define BIAS_COLS 32
#define BIAS_ROWS 8

template <class T> __global__ void __launch_bounds__(BIAS_COLS * BIAS_ROWS)
dense_backward_bias(const T* __restrict__ dy, float* __restrict__ db, int rows, int cols) {
    __shared__ float partial[BIAS_ROWS][BIAS_COLS];
    int tx = threadIdx.x, ty = threadIdx.y;
    int col = blockIdx.x * BIAS_COLS + tx;
    float sum = 0.0f;
    if (col < cols)
        for (int row = ty; row < rows; row += BIAS_ROWS) sum += to_float(dy[row * cols + col]);
    partial[ty][tx] = sum;
    __syncthreads();
    for (int half = BIAS_ROWS / 2; half > 0; half /= 2) {
        if (ty < half) partial[ty][tx] += partial[ty + half][tx];
        __syncthreads();
    }
    if (ty == 0 && col < cols) db[col] = partial[0][tx];
}

// -- batched products: gn.ops.matmul on (..., M, K) @ (..., K, N) -------------------------------------

// The tile of batch z = batch0 + blockIdx.z: a and b advanced by their batch offsets (meta's
// strides; 0 on an axis the operand broadcasts along), c by z whole (M, N) matrices.
template <bool TRANS_A, bool TRANS_B, class T>
__device__ __forceinline__ void batched_tile(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                                             int M, int K, int N, int batch0, int ndim, const int* __restrict__ meta) {
    int z = batch0 + blockIdx.z, rest = z;
    long long a_off = 0, b_off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
        int coord = rest % meta[d];
        rest /= meta[d];
        a_off += (long long)coord * meta[ndim + d];
        b_off += (long long)coord * meta[2 * ndim + d];
    }
    gemm_tile<TRANS_A, TRANS_B, T, float>(a + a_off, b + b_off, nullptr, c + (long long)z * M * N, M, K, N,
                                          SplitK{0, K, nullptr, nullptr});
}

template <class T> __global__ void __launch_bounds__(THREADS)
matmul_batched_nn(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c, int M, int K, int N,
                  int batch0, int ndim, const int* __restrict__ meta) {
    batched_tile<false, false>(a, b, c, M, K, N, batch0, ndim, meta);
}

template <class T> __global__ void __launch_bounds__(THREADS)
matmul_batched_nt(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c, int M, int K, int N,
                  int batch0, int ndim, const int* __restrict__ meta) {
    batched_tile<false, true>(a, b, c, M, K, N, batch0, ndim, meta);
}

template <class T> __global__ void __launch_bounds__(THREADS)
matmul_batched_tn(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c, int M, int K, int N,
                  int batch0, int ndim, const int* __restrict__ meta) {
    batched_tile<true, false>(a, b, c, M, K, N, batch0, ndim, meta);
}
