// tc_conv.cuh - the operand loaders of tc_conv.cu's implicit-GEMM convolutions (see its header):
// each gathers one operand's stage tile of ROWS rows straight from the NHWC tensors with
// cp.async (16-byte chunks of consecutive channels) or, on the slow path, element by element,
// for a block of THREADS threads (4 ROWS / THREADS chunks a thread, a constant number of rows
// apart, so the chunks share their shared-memory column and their k position).
#pragma once
#include "tc_gemm.cuh"
#include "conv_phase.cuh"   // Phase (the input-gradient filter loader walks a phase's taps)

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
template <class T, int ROWS, int THREADS>
struct TcPatchLoader {
    static constexpr bool KMAJOR = true;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T);
    static constexpr int CH = 4 * ROWS / THREADS, RSTEP = THREADS / 4;   // chunks a thread, rows apart
    const T* x;
    TcGather g;
    const T* image[CH];
    int ih0[CH], iw0[CH], smem, k, k_end;
    TcCounter tap;   // (c, j, i) of k

    __device__ TcPatchLoader(const T* x_, const TcGather& g_, int m0, int k_begin, int k_end_)
        : x(x_), g(g_), k_end(k_end_) {
        int pixels = g.batch * g.out_h * g.out_w;
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            int m = m0 + (threadIdx.x >> 2) + q * RSTEP;
            int ow = m % g.out_w, oh = (m / g.out_w) % g.out_h, n = m / (g.out_w * g.out_h);
            image[q] = x + (long long)n * g.src_h * g.src_w * g.src_c;
            ih0[q] = m < pixels ? oh * g.stride_h + g.off_h : -(1 << 30);   // a row past the end: never inside
            iw0[q] = ow * g.stride_w + g.off_w;
        }
        smem = (threadIdx.x >> 2) * TC_KMAJOR_STRIDE + (threadIdx.x & 3) * 16;
        k = k_begin + (threadIdx.x & 3) * EPC;
        tap.start(k, g.src_c, g.kw, BK);
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem + q * RSTEP * TC_KMAJOR_STRIDE);
            if (FAST) {   // src_c % EPC == 0: the chunk is EPC channels of one tap
                int ih = ih0[q] + tap.d2 * g.tap_h, iw = iw0[q] + tap.d1 * g.tap_w;
                bool ok = k < k_end && tc_inside(ih, g.src_h) && tc_inside(iw, g.src_w);
                const T* src = ok ? image[q] + ((long long)ih * g.src_w + iw) * g.src_c + tap.d0 : x;
                cp_async_cg16(dst, src, ok ? 16 : 0);
            } else {      // element by element, each with its own (c, j, i)
                TcCounter e = tap;
#pragma unroll 1   // the slow path: registers matter more than its speed (TcBig has 128 accumulators)
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
template <class T, int ROWS, int THREADS>
struct TcFilterLoader {
    static constexpr bool KMAJOR = true;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T);
    static constexpr int CH = 4 * ROWS / THREADS, RSTEP = THREADS / 4;   // chunks a thread, rows apart
    const T* w;
    int cin, cout, kw, tap0_h, step_h, tap0_w, step_w, k, k_end, ci, smem;   // ci, smem: of chunk 0
    TcCounter tap;   // (co, qw, qh) of k

    __device__ TcFilterLoader(const T* w_, int cin_, int cout_, int kw_, int n0, int k_end_, const Phase& ph,
                              const Phase& pw)
        : w(w_), cin(cin_), cout(cout_), kw(kw_), tap0_h(ph.tap0), step_h(ph.step), tap0_w(pw.tap0),
          step_w(pw.step), k_end(k_end_) {
        ci = n0 + (threadIdx.x >> 2);
        smem = (threadIdx.x >> 2) * TC_KMAJOR_STRIDE + (threadIdx.x & 3) * 16;
        k = (threadIdx.x & 3) * EPC;
        tap.start(k, cout, pw.taps, BK);
    }
    __device__ __forceinline__ int tap_of(const TcCounter& c) const {   // (i, j) of (qh, qw) as i * kw + j
        return (tap0_h + c.d2 * step_h) * kw + tap0_w + c.d1 * step_w;
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem + q * RSTEP * TC_KMAJOR_STRIDE);
            int c = ci + q * RSTEP;
            if (FAST) {   // cout % EPC == 0: EPC output channels of one tap
                bool ok = k < k_end && c < cin;
                const T* src = w + ((long long)tap_of(tap) * cin + c) * cout + tap.d0;
                cp_async_cg16(dst, ok ? src : w, ok ? 16 : 0);
            } else {
                TcCounter e = tap;
#pragma unroll 1   // the slow path: registers matter more than its speed (TcBig has 128 accumulators)
                for (int v = 0; v < EPC; ++v, e.next()) {
                    bool ok = k + v < k_end && c < cin;
                    dst[v] = ok ? w[((long long)tap_of(e) * cin + c) * cout + e.d0] : T{};
                }
            }
        }
        k += BK;
        tap.advance();
    }
};

// Filter-gradient A, MN-major: rows are taps (i, j, c) m0.., k = output pixels. Thread t's
// chunks are k rows t / CPR + RSTEP q, columns 16 (t % CPR) bytes: the same taps for every chunk,
// and a pixel counter (ow, oh, image) per chunk stepped by one k-tile.
template <class T, int ROWS, int THREADS>
struct TcTapLoader {
    static constexpr bool KMAJOR = false;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T), CPR = ROWS / EPC;
    static constexpr int CH = 4 * ROWS / THREADS, RSTEP = THREADS / CPR;   // chunks a thread, k rows apart
    static constexpr int STRIDE = tc_mn_stride<T>(ROWS);
    const T* x;
    TcConv g;
    int smem, p, p_end, di, dj, ch, tap_j, tap_i;   // smem, p: of chunk 0
    bool row_ok;
    TcCounter pixel[CH];   // (ow, oh, image) of chunk q's pixel p + q RSTEP

    __device__ TcTapLoader(const T* x_, const TcConv& g_, int m0, int p_begin, int p_end_)
        : x(x_), g(g_), p_end(p_end_) {
        int taps = g.kh * g.kw * g.cin, krow = threadIdx.x / CPR, col = threadIdx.x % CPR;
        int m = m0 + col * EPC, tap = m / g.cin;
        row_ok = m < taps;
        ch = m % g.cin;
        tap_i = tap / g.kw, tap_j = tap % g.kw;
        di = tap_i * g.dil_h - g.pad_t;
        dj = tap_j * g.dil_w - g.pad_l;
        p = p_begin + krow;
#pragma unroll
        for (int q = 0; q < CH; ++q) pixel[q].start(p + q * RSTEP, g.out_w, g.out_h, BK);
        smem = krow * STRIDE + col * 16;
    }

    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            T* dst = reinterpret_cast<T*>(tile + smem + q * RSTEP * STRIDE);
            const TcCounter& px = pixel[q];
            int ih0 = px.d1 * g.sh, iw0 = px.d0 * g.sw;
            bool p_ok = p + q * RSTEP < p_end;
            const T* at = x + ((long long)px.d2 * g.in_h * g.in_w) * g.cin;
            if (FAST) {   // Cin % EPC == 0: EPC channels of one tap
                int ih = ih0 + di, iw = iw0 + dj;
                bool ok = row_ok && p_ok && tc_inside(ih, g.in_h) && tc_inside(iw, g.in_w);
                cp_async_cg16(dst, ok ? at + ((long long)ih * g.in_w + iw) * g.cin + ch : x, ok ? 16 : 0);
            } else {      // element by element: taps (c, j, i) counted from the chunk's first
                int taps = g.kh * g.kw * g.cin, c = ch, j = tap_j, i = tap_i;
#pragma unroll 1
                for (int v = 0; v < EPC; ++v) {
                    int ih = ih0 + i * g.dil_h - g.pad_t, iw = iw0 + j * g.dil_w - g.pad_l;
                    bool ok = row_ok && (i * g.kw + j) * g.cin + c < taps && p_ok &&
                              tc_inside(ih, g.in_h) && tc_inside(iw, g.in_w);
                    dst[v] = ok ? at[((long long)ih * g.in_w + iw) * g.cin + c] : T{};
                    if (++c == g.cin) {
                        c = 0;
                        if (++j == g.kw) j = 0, ++i;
                    }
                }
            }
            pixel[q].advance();
        }
        p += BK;
    }
};

