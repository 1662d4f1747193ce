// tc_conv_products.cuh - the three tensor-core convolution products (forward, input gradient per
// phase, filter gradient per split) as templates over the operand type T and the block tile Cfg;
// tc_conv.cu and tc_conv_tall.cu instantiate them as their extern "C" kernels (see tc_conv.cu's
// header for the GEMM of each product, its grid and its arguments).
#pragma once
#include "tc_conv.cuh"     // TcConv, TcGather and the operand loaders (tc_gemm.cuh: the core)
#include "conv_phase.cuh"   // phase_of: a strided input gradient as one stride-1 GEMM per phase

template <class T, class Cfg>
__device__ __forceinline__ void tc_conv_forward(const T* __restrict__ x, const T* __restrict__ w,
                                                const float* __restrict__ b, float* __restrict__ y, int has_bias,
                                                const TcConv& g) {
    __shared__ __align__(16) TcSmem<Cfg> smem;
    int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN, depth = g.kh * g.kw * g.cin;
    TcGather gather = {g.batch, g.in_h, g.in_w, g.cin, g.out_h, g.out_w, g.sh, g.sw, -g.pad_t, -g.pad_l,
                       g.dil_h, g.dil_w, g.kh, g.kw};
    TcAcc<Cfg> acc = {};
    int s = sizeof(T);
    bool fast = tc_aligned16(x) && tc_aligned16(w) && (g.cin * s) % 16 == 0 && (g.cout * s) % 16 == 0 &&
                tc_patch_fast(gather);
    tc_dispatch(fast, [&](auto path) {
        constexpr bool FAST = decltype(path)::value;
        TcPatchLoader<T, FAST, Cfg::BM, Cfg::THREADS> la(x, gather, m0, 0, depth);
        TcLoader<T, FAST, false, Cfg::BN, Cfg::THREADS> lb(w, g.cout, g.cout, n0, 0, depth);
        tc_mainloop<T, Cfg>(la, lb, 0, depth, smem, acc);
    });
    tc_store<Cfg>(acc, y, g.batch * g.out_h * g.out_w, g.cout, m0, n0, has_bias ? b : nullptr);
}

// dx (float32) of the phase's pixels, dx rows h = first_h + sh*a_h, columns first_w + sw*a_w, from
// the phase GEMM's rows m = (image, a_h, a_w), a_w fastest (stride 1: m is the dx pixel itself).
template <class Cfg>
__device__ __forceinline__ void tc_store_phase(const TcAcc<Cfg>& acc, float* __restrict__ dx, int pixels,
                                               int m0, int n0, const Phase& ph, const Phase& pw, const TcConv& g) {
    TcOut<Cfg> at(m0, n0);
#pragma unroll
    for (int i = 0; i < Cfg::MI; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {   // registers 0, 1 share a row; 2, 3 the row 8 below
            int m = at.row_of(i, 2 * half);
            if (m >= pixels) continue;
            int a_w = m % pw.count, rest = m / pw.count, a_h = rest % ph.count, image = rest / ph.count;
            long long base = ((long long)(image * g.in_h + ph.first + g.sh * a_h) * g.in_w + pw.first + g.sw * a_w)
                             * g.cin;
#pragma unroll
            for (int j = 0; j < Cfg::NJ; ++j)
#pragma unroll
                for (int r = 2 * half; r < 2 * half + 2; ++r) {
                    int col = at.col_of(j, r);
                    if (col < g.cin) dx[base + col] = acc[i][j][r];
                }
        }
}

// dx of any conv, one phase (blockIdx.z = row phase * sw + column phase) a launch slice: the
// phase's GEMM M = N * (its dx pixels), N = Cin, K = (its taps) * Cout, a stride-1 correlation of
// dy (offsets +base, taps -shift) with the phase's sub-kernel. Stride 1: one phase, M = N*H*W,
// K = kh*kw*Cout, offsets +pads, taps -dilations.
template <class T, class Cfg>
__device__ __forceinline__ void tc_conv_input(const T* __restrict__ dy, const T* __restrict__ w,
                                              float* __restrict__ dx, const TcConv& g) {
    __shared__ __align__(16) TcSmem<Cfg> smem;
    Phase ph = phase_of(blockIdx.z / g.sw, g.in_h, g.pad_t, g.sh, g.dil_h, g.kh);
    Phase pw = phase_of(blockIdx.z % g.sw, g.in_w, g.pad_l, g.sw, g.dil_w, g.kw);
    int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN, pixels = g.batch * ph.count * pw.count;
    if (m0 >= pixels) return;   // the whole block: this phase has fewer pixels than the grid covers
    int depth = ph.taps * pw.taps * g.cout;
    TcAcc<Cfg> acc = {};
    if (depth > 0) {            // else no tap reaches the phase: it is zeros (the same for the whole block)
        TcGather gather = {g.batch, g.out_h, g.out_w, g.cout, ph.count, pw.count, 1, 1, ph.base, pw.base,
                           -ph.shift, -pw.shift, ph.taps, pw.taps};
        bool fast = tc_aligned16(dy) && tc_aligned16(w) && (g.cout * int(sizeof(T))) % 16 == 0 &&
                    tc_patch_fast(gather);
        tc_dispatch(fast, [&](auto path) {
            constexpr bool FAST = decltype(path)::value;
            TcPatchLoader<T, FAST, Cfg::BM, Cfg::THREADS> la(dy, gather, m0, 0, depth);
            TcFilterLoader<T, FAST, Cfg::BN, Cfg::THREADS> lb(w, g.cin, g.cout, g.kw, n0, depth, ph, pw);
            tc_mainloop<T, Cfg>(la, lb, 0, depth, smem, acc);
        });
    }
    tc_store_phase<Cfg>(acc, dx, pixels, m0, n0, ph, pw, g);
}

template <class T, class Cfg>
__device__ __forceinline__ void tc_conv_filter(const T* __restrict__ x, const T* __restrict__ dy,
                                               float* __restrict__ dw, int pixels_per_split, const TcConv& g) {
    __shared__ __align__(16) TcSmem<Cfg> smem;
    int taps = g.kh * g.kw * g.cin, pixels = g.batch * g.out_h * g.out_w;
    int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
    int p_begin = blockIdx.z * pixels_per_split, p_end = min(p_begin + pixels_per_split, pixels);
    TcAcc<Cfg> acc = {};
    int s = sizeof(T);
    bool fast = tc_aligned16(x) && tc_aligned16(dy) && (g.cin * s) % 16 == 0 && (g.cout * s) % 16 == 0;
    constexpr bool PAIR_A = tc_pairable<T, false>();   // A (x's taps) is MN-major: float pairs (tc_gemm.cuh)
    tc_dispatch(fast, [&](auto path) {
        constexpr bool FAST = decltype(path)::value;
        TcTapLoader<T, FAST, Cfg::BM, Cfg::THREADS> la(x, g, m0, p_begin, p_end);
        TcLoader<T, FAST, false, Cfg::BN, Cfg::THREADS> lb(dy, g.cout, g.cout, n0, p_begin, p_end);
        tc_mainloop<T, Cfg, PAIR_A>(la, lb, p_begin, p_end, smem, acc);
    });
    tc_store<Cfg, PAIR_A>(acc, dw + (long long)blockIdx.z * taps * g.cout, taps, g.cout, m0, n0, nullptr);
}
