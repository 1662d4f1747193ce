// tc_gemm.cu - the Dense products on tensor cores: TF32 (float32 operands) and bf16 / fp16
// operands, float32 results. sm_80 and newer; the float32 FFMA kernels of gemm.cu stay the
// default for float32 (gn.config.set_float32_matmul_precision("high") picks these).
//
// Kernels (T: float for tf32, bf16_t, fp16_t; one entry per type and operand layout):
//   tc_gemm_<type>_nn(a, b, bias, c, M, K, N, has_bias, k_per_split)   C = A (M, K) @ B (K, N)
//   tc_gemm_<type>_nt(...)   C = A (M, K) @ B^T, B stored (N, K)   (dense input gradient)
//   tc_gemm_<type>_tn(...)   C = A^T @ B, A stored (K, M)          (dense weight gradient)
//   tc_gemm_<type>_<layout>_128x128(...)   the same on 128 x 128 block tiles (tc_gemm.cuh's TcBig),
//   ..._128x64 (TcWide) and ..._128x32 (TcNarrow)
//   tc_sum_splits(partial, bias, c, rows, cols, splits, has_bias)
//   tc_finish<T>(partial, bias, c, gate, rows, cols, splits, has_bias, has_gate, act, alpha)
//       c (rows, cols) in T (float, bf16_t, fp16_t) = epilogue.cuh's act(sum of the splits (+ bias)),
//       or with has_gate that sum times act' read from gate (T, laid out like c): a Dense
//       product's float32 result stored as a layer's 16-bit activations, computed in float and
//       rounded once. It is epilogue.cu's bias_activation_store with the split-K sum fused in
//       (tc_sum_splits and a store pass would read and write the partials twice).
// Grid: (ceil(M / 64), ceil(N / 64), splits) (_BMxBN: / BM, / BN), 128 threads; the core is tc_gemm.cuh.
// Split-K, deterministic: with splits > 1, block z sums k in [z * k_per_split, (z + 1) *
// k_per_split) (a multiple of the k-tile) into c + z * M * N, and tc_sum_splits adds the
// splits in order (and the bias): no atomics, the same bits every run.
// With splits == 1 the kernel writes C (+ bias when has_bias) itself. Writes (=), never +=.
#include "tc_gemm.cuh"
#include "epilogue.cuh"   // store_epilogue for tc_finish

template <class T, class Cfg, bool A_KMAJOR, bool B_KMAJOR>
__device__ __forceinline__ void tc_gemm(const T* __restrict__ a, const T* __restrict__ b,
                                        const float* __restrict__ bias, float* __restrict__ c,
                                        int M, int K, int N, int has_bias, int k_per_split) {
    int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
    int k_begin = blockIdx.z * k_per_split, k_end = min(K, k_begin + k_per_split);
    int lda = A_KMAJOR ? K : M, ldb = B_KMAJOR ? K : N;
    __shared__ __align__(16) TcSmem<Cfg> smem;
    TcAcc<Cfg> acc = {};
    bool fast = tc_aligned16(a) && tc_aligned16(b) && (lda * int(sizeof(T))) % 16 == 0 &&
                (ldb * int(sizeof(T))) % 16 == 0;
    tc_dispatch(fast, [&](auto path) {
        constexpr bool FAST = decltype(path)::value;
        TcLoader<T, FAST, A_KMAJOR, Cfg::BM, Cfg::THREADS> la(a, M, lda, m0, k_begin, k_end);
        TcLoader<T, FAST, B_KMAJOR, Cfg::BN, Cfg::THREADS> lb(b, N, ldb, n0, k_begin, k_end);
        tc_mainloop<T, Cfg>(la, lb, k_begin, k_end, smem, acc);
    });
    tc_store<Cfg>(acc, c + (long long)blockIdx.z * M * N, M, N, m0, n0, has_bias && gridDim.z == 1 ? bias : nullptr);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_tf32_nn(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcSmall, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_tf32_nt(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcSmall, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_tf32_tn(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcSmall, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_bf16_nn(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcSmall, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_bf16_nt(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcSmall, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_bf16_tn(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcSmall, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_f16_nn(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcSmall, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_f16_nt(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcSmall, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_gemm_f16_tn(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcSmall, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_tf32_nn_128x128(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcBig, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_tf32_nt_128x128(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcBig, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_tf32_tn_128x128(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcBig, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_bf16_nn_128x128(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcBig, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_bf16_nt_128x128(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcBig, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_bf16_tn_128x128(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcBig, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_f16_nn_128x128(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcBig, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_f16_nt_128x128(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcBig, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_gemm_f16_tn_128x128(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcBig, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_tf32_nn_128x64(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcWide, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_tf32_nt_128x64(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcWide, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_tf32_tn_128x64(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcWide, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_bf16_nn_128x64(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcWide, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_bf16_nt_128x64(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcWide, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_bf16_tn_128x64(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcWide, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_f16_nn_128x64(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcWide, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_f16_nt_128x64(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcWide, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_gemm_f16_tn_128x64(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcWide, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_tf32_nn_128x32(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcNarrow, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_tf32_nt_128x32(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcNarrow, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_tf32_tn_128x32(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<float, TcNarrow, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_bf16_nn_128x32(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcNarrow, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_bf16_nt_128x32(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcNarrow, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_bf16_tn_128x32(const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<bf16_t, TcNarrow, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_f16_nn_128x32(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcNarrow, true, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_f16_nt_128x32(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcNarrow, true, true>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_gemm_f16_tn_128x32(const fp16_t* __restrict__ a, const fp16_t* __restrict__ b, const float* __restrict__ bias,
        float* __restrict__ c, int M, int K, int N, int has_bias, int k_per_split) {
    tc_gemm<fp16_t, TcNarrow, false, false>(a, b, bias, c, M, K, N, has_bias, k_per_split);
}

// c[i] = partial[0][i] + partial[1][i] + ... (+ bias[i % cols]): the split-K second pass.
extern "C" __global__ void __launch_bounds__(256)
tc_sum_splits(const float* __restrict__ partial, const float* __restrict__ bias, float* __restrict__ c,
              int rows, int cols, int splits, int has_bias) {
    int count = rows * cols;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
        float total = partial[i];
        for (int s = 1; s < splits; ++s) total += partial[(long long)s * count + i];
        c[i] = total + (has_bias ? bias[i % cols] : 0.0f);
    }
}

// Grid-stride over rows * cols, 256 threads a block. The splits are added in order, then the bias,
// as in tc_sum_splits; the activation (or the gate's derivative) is applied in float and the
// result rounded to T once.
template <class T> __global__ void __launch_bounds__(256)
tc_finish(const float* __restrict__ partial, const float* __restrict__ bias, T* __restrict__ c,
          const T* __restrict__ gate, int rows, int cols, int splits, int has_bias, int has_gate, int act,
          float alpha) {
    int count = rows * cols;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
        float total = partial[i];
        for (int s = 1; s < splits; ++s) total += partial[(long long)s * count + i];
        if (has_bias) total += bias[i % cols];
        store_epilogue(c, i, total, has_gate ? gate : (const T*)nullptr, act, alpha);
    }
}
