// tc_conv.cu - 2-D convolution on tensor cores as implicit GEMM (the core: tc_gemm.cuh):
// forward, input gradient (any stride, per phase) and filter gradient, TF32 (float32 operands),
// bf16 and fp16 operands, float32 results. sm_80 and newer; conv.cu's FFMA kernels stay the
// default for float32 (gn.config.set_float32_matmul_precision("high") picks these).
//
// Kernels (<type>: tf32 with float arrays, bf16 with bf16_t, f16 with fp16_t):
//   tc_conv2d_forward_<type>(x, w, b, y, has_bias, <geometry>)
//       y (N, OH, OW, Cout) = x (*) w (+ b). GEMM: M = N*OH*OW pixels, N = Cout,
//       K = kh*kw*Cin with k = (i, j, c), c fastest. Grid (ceil(M / 64), ceil(Cout / 64)).
//   tc_conv2d_backward_input_<type>(dy, w, dx, <geometry>)
//       dx (N, H, W, Cin) of the conv: dx[h] = sum over (i, j, co) with h + pad - i*dil = s*oh of
//       dy[oh] w[i, j, :, co]. One GEMM per phase (conv_phase.cuh; blockIdx.z): M = N * the
//       phase's dx pixels, N = Cin, K = the phase's taps * Cout, a stride-1 correlation of dy
//       with the taps that reach the phase (offsets +base, taps -shift); its rows are stored at
//       the phase's dx pixels. Grid (ceil(largest phase / 64), ceil(Cin / 64), sh * sw); a
//       stride-1 conv is its one phase (M = N*H*W, K = kh*kw*Cout, offsets +pads, taps -dil).
//       A transposed conv's forward is this kernel of its x.
//   tc_conv2d_backward_filter_<type>(x, dy, dw, pixels_per_split, <geometry>)
//       dw[split] (kh, kw, Cin, Cout) = im2col(x)^T @ dy over one split of the pixels.
//       GEMM: M = kh*kw*Cin taps, N = Cout, K = pixels. Grid (ceil(M / 64), ceil(Cout / 64),
//       splits); conv.cu's sum_splits adds the splits in order (deterministic split-K).
//   tc_conv2d_<product>_<type>_128x128(...): the same on 128 x 128 block tiles (tc_gemm.cuh's TcBig;
//       the grids above with 128 for 64), _128x64 (TcWide) and _128x32 (TcNarrow) likewise.
//   <geometry>: as conv.cu's (batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw,
//   pad_t, pad_l, dil_h, dil_w); x (batch, in_h, in_w, cin) NHWC, w (kh, kw, cin, cout).
// 128 threads a block (TC_THREADS, TC_BIG_THREADS). Operand tiles are gathered straight from the NHWC tensors by cp.async
// (no im2col buffer): a 16-byte chunk is 4 (float) or 8 (16-bit) consecutive channels of one
// pixel at one tap, so the fast path needs Cin (and Cout) times the element size to be a
// multiple of 16 bytes and 16-byte aligned bases; otherwise the same loop gathers element by
// element (slower, any shape). Positions advance incrementally: the (channel, tap column,
// tap row) of the patch loader and the (column, row, image) of the filter-gradient loader are
// TcCounters stepped by one k-tile, so no division runs in the main loop.
// Writes (=) y and dw; nothing accumulates. Backward needs x and dy (and w for dx, in conv.cu).
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
    tc_dispatch(fast, [&](auto path) {
        constexpr bool FAST = decltype(path)::value;
        TcTapLoader<T, FAST, Cfg::BM, Cfg::THREADS> la(x, g, m0, p_begin, p_end);
        TcLoader<T, FAST, false, Cfg::BN, Cfg::THREADS> lb(dy, g.cout, g.cout, n0, p_begin, p_end);
        tc_mainloop<T, Cfg>(la, lb, p_begin, p_end, smem, acc);
    });
    tc_store<Cfg>(acc, dw + (long long)blockIdx.z * taps * g.cout, taps, g.cout, m0, n0, nullptr);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_tf32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_tf32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_bf16(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_f16(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_tf32_128x128(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_tf32_128x128(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_tf32_128x128(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_bf16_128x128(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_bf16_128x128(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_bf16_128x128(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_f16_128x128(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_f16_128x128(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_f16_128x128(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_tf32_128x64(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_tf32_128x64(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_tf32_128x64(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_bf16_128x64(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_bf16_128x64(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_bf16_128x64(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_f16_128x64(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_f16_128x64(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_f16_128x64(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_tf32_128x32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_tf32_128x32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_tf32_128x32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcNarrow>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_bf16_128x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_bf16_128x32(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_bf16_128x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcNarrow>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_f16_128x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_f16_128x32(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_f16_128x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcNarrow>(x, dy, dw, pixels_per_split, g);
}
