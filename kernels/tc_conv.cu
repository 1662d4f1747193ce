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
//   <geometry>: as conv.cu's (batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw,
//   pad_t, pad_l, dil_h, dil_w); x (batch, in_h, in_w, cin) NHWC, w (kh, kw, cin, cout).
// 128 threads a block. Operand tiles are gathered straight from the NHWC tensors by cp.async
// (no im2col buffer): a 16-byte chunk is 4 (float) or 8 (16-bit) consecutive channels of one
// pixel at one tap, so the fast path needs Cin (and Cout) times the element size to be a
// multiple of 16 bytes and 16-byte aligned bases; otherwise the same loop gathers element by
// element (slower, any shape). Positions advance incrementally: the (channel, tap column,
// tap row) of the patch loader and the (column, row, image) of the filter-gradient loader are
// TcCounters stepped by one k-tile, so no division runs in the main loop.
// Writes (=) y and dw; nothing accumulates. Backward needs x and dy (and w for dx, in conv.cu).
#include "tc_gemm.cuh"
#include "conv_phase.cuh"   // Phase, phase_of: a strided input gradient as one stride-1 GEMM per phase

struct TcConv {
    int batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw, pad_t, pad_l, dil_h, dil_w;
};
#define TC_GEOMETRY {batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw, pad_t, pad_l, dil_h, dil_w}

__device__ __forceinline__ bool tc_inside(int i, int size) { return (unsigned)i < (unsigned)size; }

// Where a patch loader gathers from: a (batch, src_h, src_w, src_c) tensor read at
// (row0 + tap_h * i, col0 + tap_w * j) for output pixel (oh, ow) with row0 = oh * stride_h +
// off_h. Forward: x with the conv's strides, -pads and dilations. Input gradient, one phase:
// dy, offsets +base and taps -shift (dx[first + s*a] = sum over q of dy[base + a - q*shift] w[tap q]).
struct TcGather {
    int batch, src_h, src_w, src_c, out_h, out_w, stride_h, stride_w, off_h, off_w, tap_h, tap_w, kw;
};

// A, K-major: rows are output pixels m0.., k = (i, j, c), c fastest. Thread t's two chunks are
// rows t / 4 and t / 4 + 32 at the same k (bytes 16 (t % 4)), so they share one tap counter.
template <class T>
struct TcPatchLoader {
    static constexpr bool KMAJOR = true;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T);
    const T* x;
    TcGather g;
    const T* image[2];
    int ih0[2], iw0[2], smem[2], k, k_end;
    TcCounter tap;   // (c, j, i) of k

    __device__ TcPatchLoader(const T* x_, const TcGather& g_, int m0, int k_begin, int k_end_)
        : x(x_), g(g_), k_end(k_end_) {
        int pixels = g.batch * g.out_h * g.out_w;
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            int c = threadIdx.x + TC_THREADS * q, row = c >> 2, m = m0 + row;
            int ow = m % g.out_w, oh = (m / g.out_w) % g.out_h, n = m / (g.out_w * g.out_h);
            image[q] = x + (long long)n * g.src_h * g.src_w * g.src_c;
            ih0[q] = m < pixels ? oh * g.stride_h + g.off_h : -(1 << 30);   // a row past the end: never inside
            iw0[q] = ow * g.stride_w + g.off_w;
            smem[q] = row * TC_KMAJOR_STRIDE + (c & 3) * 16;
        }
        k = k_begin + (threadIdx.x & 3) * EPC;
        tap.start(k, g.src_c, g.kw, BK);
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem[q]);
            if (FAST) {   // src_c % EPC == 0: the chunk is EPC channels of one tap
                int ih = ih0[q] + tap.d2 * g.tap_h, iw = iw0[q] + tap.d1 * g.tap_w;
                bool ok = k < k_end && tc_inside(ih, g.src_h) && tc_inside(iw, g.src_w);
                const T* src = ok ? image[q] + ((long long)ih * g.src_w + iw) * g.src_c + tap.d0 : x;
                cp_async_cg16(dst, src, ok ? 16 : 0);
            } else {      // element by element, each with its own (c, j, i)
                TcCounter e = tap;
#pragma unroll
                for (int v = 0; v < EPC; ++v, e.next()) {
                    int ih = ih0[q] + e.d2 * g.tap_h, iw = iw0[q] + e.d1 * g.tap_w;
                    bool ok = k + v < k_end && tc_inside(ih, g.src_h) && tc_inside(iw, g.src_w);
                    dst[v] = ok ? image[q][((long long)ih * g.src_w + iw) * g.src_c + e.d0] : T{};
                }
            }
        }
        k += BK;
        tap.advance();
    }
};

// Input-gradient B, K-major: rows are input channels ci n0.., k = (qh, qw, co), co fastest, over
// the phase's taps i = tap0_h + step_h*qh, j = tap0_w + step_w*qw (stride 1: every tap, i = qh);
// element w[i, j, ci, co] (a tap's w is (Cin, Cout): co contiguous). Thread t's chunks: rows
// t / 4 and t / 4 + 32, k bytes 16 (t % 4), one (co, qw, qh) counter for both.
template <class T>
struct TcFilterLoader {
    static constexpr bool KMAJOR = true;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T);
    const T* w;
    int cin, cout, kw, tap0_h, step_h, tap0_w, step_w, k, k_end, ci[2], smem[2];
    TcCounter tap;   // (co, qw, qh) of k

    __device__ TcFilterLoader(const T* w_, int cin_, int cout_, int kw_, int n0, int k_end_, const Phase& ph,
                              const Phase& pw)
        : w(w_), cin(cin_), cout(cout_), kw(kw_), tap0_h(ph.tap0), step_h(ph.step), tap0_w(pw.tap0),
          step_w(pw.step), k_end(k_end_) {
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            int c = threadIdx.x + TC_THREADS * q, row = c >> 2;
            ci[q] = n0 + row;
            smem[q] = row * TC_KMAJOR_STRIDE + (c & 3) * 16;
        }
        k = (threadIdx.x & 3) * EPC;
        tap.start(k, cout, pw.taps, BK);
    }
    __device__ __forceinline__ int tap_of(const TcCounter& c) const {   // (i, j) of (qh, qw) as i * kw + j
        return (tap0_h + c.d2 * step_h) * kw + tap0_w + c.d1 * step_w;
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem[q]);
            if (FAST) {   // cout % EPC == 0: EPC output channels of one tap
                bool ok = k < k_end && ci[q] < cin;
                const T* src = w + ((long long)tap_of(tap) * cin + ci[q]) * cout + tap.d0;
                cp_async_cg16(dst, ok ? src : w, ok ? 16 : 0);
            } else {
                TcCounter e = tap;
#pragma unroll
                for (int v = 0; v < EPC; ++v, e.next()) {
                    bool ok = k + v < k_end && ci[q] < cin;
                    dst[v] = ok ? w[((long long)tap_of(e) * cin + ci[q]) * cout + e.d0] : T{};
                }
            }
        }
        k += BK;
        tap.advance();
    }
};

// Filter-gradient A, MN-major: rows are taps (i, j, c) m0.., k = output pixels. Thread t's
// chunks are k rows c / CPR (c = t, t + 128), columns 16 (c % CPR) bytes: fixed taps, and a
// pixel counter (ow, oh, image) per chunk stepped by one k-tile.
template <class T>
struct TcTapLoader {
    static constexpr bool KMAJOR = false;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T), CPR = 64 / EPC;
    const T* x;
    TcConv g;
    int smem[2], p[2], p_end, di[2], dj[2], ch[2], tap_j[2], tap_i[2];
    bool row_ok[2];
    TcCounter pixel[2];   // (ow, oh, image) of p

    __device__ TcTapLoader(const T* x_, const TcConv& g_, int m0, int p_begin, int p_end_)
        : x(x_), g(g_), p_end(p_end_) {
        int taps = g.kh * g.kw * g.cin;
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            int c = threadIdx.x + TC_THREADS * q, krow = c / CPR, col = c % CPR;
            int m = m0 + col * EPC, tap = m / g.cin;
            row_ok[q] = m < taps;
            ch[q] = m % g.cin;
            tap_i[q] = tap / g.kw, tap_j[q] = tap % g.kw;
            di[q] = tap_i[q] * g.dil_h - g.pad_t;
            dj[q] = tap_j[q] * g.dil_w - g.pad_l;
            p[q] = p_begin + krow;
            pixel[q].start(p[q], g.out_w, g.out_h, BK);
            smem[q] = krow * TcType<T>::MN_STRIDE + col * 16;
        }
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem[q]);
            const TcCounter& px = pixel[q];
            int ih0 = px.d1 * g.sh, iw0 = px.d0 * g.sw;
            const T* at = x + ((long long)px.d2 * g.in_h * g.in_w) * g.cin;
            if (FAST) {   // Cin % EPC == 0: EPC channels of one tap
                int ih = ih0 + di[q], iw = iw0 + dj[q];
                bool ok = row_ok[q] && p[q] < p_end && tc_inside(ih, g.in_h) && tc_inside(iw, g.in_w);
                cp_async_cg16(dst, ok ? at + ((long long)ih * g.in_w + iw) * g.cin + ch[q] : x, ok ? 16 : 0);
            } else {      // element by element: taps (c, j, i) counted from the chunk's first
                int taps = g.kh * g.kw * g.cin, c = ch[q], j = tap_j[q], i = tap_i[q];
#pragma unroll
                for (int v = 0; v < EPC; ++v) {
                    int ih = ih0 + i * g.dil_h - g.pad_t, iw = iw0 + j * g.dil_w - g.pad_l;
                    bool ok = row_ok[q] && (i * g.kw + j) * g.cin + c < taps && p[q] < p_end &&
                              tc_inside(ih, g.in_h) && tc_inside(iw, g.in_w);
                    dst[v] = ok ? at[((long long)ih * g.in_w + iw) * g.cin + c] : T{};
                    if (++c == g.cin) {
                        c = 0;
                        if (++j == g.kw) j = 0, ++i;
                    }
                }
            }
            p[q] += BK;
            pixel[q].advance();
        }
    }
};

template <class T>
__device__ __forceinline__ void tc_conv_forward(const T* __restrict__ x, const T* __restrict__ w,
                                                const float* __restrict__ b, float* __restrict__ y, int has_bias,
                                                const TcConv& g) {
    __shared__ __align__(16) TcSmem smem;
    int m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN, depth = g.kh * g.kw * g.cin;
    TcGather gather = {g.batch, g.in_h, g.in_w, g.cin, g.out_h, g.out_w, g.sh, g.sw, -g.pad_t, -g.pad_l,
                       g.dil_h, g.dil_w, g.kw};
    TcPatchLoader<T> la(x, gather, m0, 0, depth);
    TcLoader<T, false> lb(w, g.cout, g.cout, n0, 0, depth);
    float acc[2][4][4] = {};
    int s = sizeof(T);
    bool fast = tc_aligned16(x) && tc_aligned16(w) && (g.cin * s) % 16 == 0 && (g.cout * s) % 16 == 0;
    if (fast) tc_mainloop<T, true>(la, lb, 0, depth, smem, acc);
    else tc_mainloop<T, false>(la, lb, 0, depth, smem, acc);
    tc_store(acc, y, g.batch * g.out_h * g.out_w, g.cout, m0, n0, has_bias ? b : nullptr);
}

// dx (float32) of the phase's pixels, dx rows h = first_h + sh*a_h, columns first_w + sw*a_w, from
// the phase GEMM's rows m = (image, a_h, a_w), a_w fastest (stride 1: m is the dx pixel itself).
__device__ __forceinline__ void tc_store_phase(const float (&acc)[2][4][4], float* __restrict__ dx, int pixels,
                                               int m0, int n0, const Phase& ph, const Phase& pw, const TcConv& g) {
    TcOut at(m0, n0);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {   // registers 0, 1 share a row; 2, 3 the row 8 below
            int m = at.row_of(i, 2 * half);
            if (m >= pixels) continue;
            int a_w = m % pw.count, rest = m / pw.count, a_h = rest % ph.count, image = rest / ph.count;
            long long base = ((long long)(image * g.in_h + ph.first + g.sh * a_h) * g.in_w + pw.first + g.sw * a_w)
                             * g.cin;
#pragma unroll
            for (int j = 0; j < 4; ++j)
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
template <class T>
__device__ __forceinline__ void tc_conv_input(const T* __restrict__ dy, const T* __restrict__ w,
                                              float* __restrict__ dx, const TcConv& g) {
    __shared__ __align__(16) TcSmem smem;
    Phase ph = phase_of(blockIdx.z / g.sw, g.in_h, g.pad_t, g.sh, g.dil_h, g.kh);
    Phase pw = phase_of(blockIdx.z % g.sw, g.in_w, g.pad_l, g.sw, g.dil_w, g.kw);
    int m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN, pixels = g.batch * ph.count * pw.count;
    if (m0 >= pixels) return;   // the whole block: this phase has fewer pixels than the grid covers
    int depth = ph.taps * pw.taps * g.cout;
    float acc[2][4][4] = {};
    if (depth > 0) {            // else no tap reaches the phase: it is zeros (the same for the whole block)
        TcGather gather = {g.batch, g.out_h, g.out_w, g.cout, ph.count, pw.count, 1, 1, ph.base, pw.base,
                           -ph.shift, -pw.shift, pw.taps};
        TcPatchLoader<T> la(dy, gather, m0, 0, depth);
        TcFilterLoader<T> lb(w, g.cin, g.cout, g.kw, n0, depth, ph, pw);
        bool fast = tc_aligned16(dy) && tc_aligned16(w) && (g.cout * int(sizeof(T))) % 16 == 0;
        if (fast) tc_mainloop<T, true>(la, lb, 0, depth, smem, acc);
        else tc_mainloop<T, false>(la, lb, 0, depth, smem, acc);
    }
    tc_store_phase(acc, dx, pixels, m0, n0, ph, pw, g);
}

template <class T>
__device__ __forceinline__ void tc_conv_filter(const T* __restrict__ x, const T* __restrict__ dy,
                                               float* __restrict__ dw, int pixels_per_split, const TcConv& g) {
    __shared__ __align__(16) TcSmem smem;
    int taps = g.kh * g.kw * g.cin, pixels = g.batch * g.out_h * g.out_w;
    int m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN;
    int p_begin = blockIdx.z * pixels_per_split, p_end = min(p_begin + pixels_per_split, pixels);
    TcTapLoader<T> la(x, g, m0, p_begin, p_end);
    TcLoader<T, false> lb(dy, g.cout, g.cout, n0, p_begin, p_end);
    float acc[2][4][4] = {};
    int s = sizeof(T);
    bool fast = tc_aligned16(x) && tc_aligned16(dy) && (g.cin * s) % 16 == 0 && (g.cout * s) % 16 == 0;
    if (fast) tc_mainloop<T, true>(la, lb, p_begin, p_end, smem, acc);
    else tc_mainloop<T, false>(la, lb, p_begin, p_end, smem, acc);
    tc_store(acc, dw + (long long)blockIdx.z * taps * g.cout, taps, g.cout, m0, n0, nullptr);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_tf32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t>(x, dy, dw, pixels_per_split, g);
}

// Grid (ceil(largest phase pixels / 64), ceil(cin / 64), sh * sw).
extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_tf32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float>(dy, w, dx, g);
}

// Grid (ceil(largest phase pixels / 64), ceil(cin / 64), sh * sw).
extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_bf16(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t>(dy, w, dx, g);
}

// Grid (ceil(largest phase pixels / 64), ceil(cin / 64), sh * sw).
extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_f16(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t>(dy, w, dx, g);
}
