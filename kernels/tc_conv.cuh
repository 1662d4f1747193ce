// tc_conv.cuh - the operand loaders of tc_conv.cu's implicit-GEMM convolutions (see its header):
// each gathers one operand's stage tile of ROWS rows straight from the NHWC tensors with
// cp.async (16-byte chunks of consecutive channels) or, on the slow path, element by element,
// for a block of THREADS threads (4 ROWS / THREADS chunks a thread).
//
// What a k-tile costs a thread is what the loaders are shaped around: the chunks of one thread
// are chosen to share every value that changes from k-tile to k-tile (the tap and channel of a
// K-major row chunk; the output pixel of an MN-major k row), so the loop updates that once and
// each chunk adds to it only what was computed before the loop (a pointer, a tap-validity mask,
// a tap offset). The fast paths then cost a few instructions a chunk: a predicate, an address,
// the cp.async (whose ignore-src predicate zero-fills padding and edges without reading).
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
// off_h, over kh x kw taps. Forward: x with the conv's strides, -pads and dilations. Input
// gradient, one phase: dy, offsets +base and taps -shift (dx[first + s*a] = sum over q of
// dy[base + a - q*shift] w[tap q]).
struct TcGather {
    int batch, src_h, src_w, src_c, out_h, out_w, stride_h, stride_w, off_h, off_w, tap_h, tap_w, kh, kw;
};
#define TC_MASK_TAPS 32   // the patch loader's fast path keeps one bit a tap: kh * kw <= 32
__device__ __forceinline__ bool tc_patch_fast(const TcGather& g) { return g.kh * g.kw <= TC_MASK_TAPS; }

// A, K-major: rows are output pixels m0.., k = (i, j, c), c fastest. Thread t's chunks are rows
// t / 4 + RSTEP q at the same k (bytes 16 (t % 4)): one tap (i, j, c) for all of them, so a k-tile
// advances one (c, j, i) counter, and a chunk's address is its row's pointer plus the tap's
// offset, its validity its row's bit of that tap (masks built before the loop).
template <class T, bool FAST, int ROWS, int THREADS>
struct TcPatchLoader {
    static constexpr bool KMAJOR = true;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T);
    static constexpr int CH = 4 * ROWS / THREADS, RSTEP = THREADS / 4;   // chunks a thread, rows apart
    const T* x;
    TcGather g;
    const T* image[CH];   // slow path: the row's image
    int at[CH];           // fast path: x's index of the row's tap (0, 0), channel 0 (maybe outside x: never read)
    unsigned mask[CH];    // fast path: bit i * kw + j set when tap (i, j) of the row is inside the source
    int ih0[CH], iw0[CH], smem, k, k_end, tap_row, tap_col;   // tap_row / col: elements between taps
    TcCounter tap;   // (c, j, i) of k

    __device__ TcPatchLoader(const T* x_, const TcGather& g_, int m0, int k_begin, int k_end_)
        : x(x_), g(g_), k_end(k_end_) {
        int pixels = g.batch * g.out_h * g.out_w;
        tap_row = g.tap_h * g.src_w * g.src_c;   // (fast path)
        tap_col = g.tap_w * g.src_c;
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            int m = m0 + (threadIdx.x >> 2) + q * RSTEP;
            int ow = m % g.out_w, oh = (m / g.out_w) % g.out_h, n = m / (g.out_w * g.out_h);
            const T* img = x + (long long)n * g.src_h * g.src_w * g.src_c;
            int h0 = m < pixels ? oh * g.stride_h + g.off_h : -(1 << 30);   // a row past the end: never inside
            int w0 = ow * g.stride_w + g.off_w;
            if (FAST) {   // tc_patch_fast: kh * kw <= 32; x has < 2^31 elements (launch.inputs)
                at[q] = m < pixels ? ((n * g.src_h + h0) * g.src_w + w0) * g.src_c : 0;
                unsigned rows = 0, cols = 0, bits = 0;
                for (int i = 0; i < g.kh; ++i) rows |= unsigned(tc_inside(h0 + i * g.tap_h, g.src_h)) << i;
                for (int j = 0; j < g.kw; ++j) cols |= unsigned(tc_inside(w0 + j * g.tap_w, g.src_w)) << j;
                for (int i = 0; i < g.kh; ++i)
                    if (rows >> i & 1) bits |= cols << (i * g.kw);
                mask[q] = bits;
            } else {
                image[q] = img, ih0[q] = h0, iw0[q] = w0;
            }
        }
        smem = (threadIdx.x >> 2) * TC_KMAJOR_STRIDE + (threadIdx.x & 3) * 16;
        k = k_begin + (threadIdx.x & 3) * EPC;
        tap.start(k, g.src_c, g.kw, BK);
    }

    __device__ __forceinline__ void load(unsigned char* tile, smem_ptr stile) {
        if (FAST) {   // src_c % EPC == 0: the chunk is EPC channels of one tap
            int offset = tap.d2 * tap_row + tap.d1 * tap_col + tap.d0;
            unsigned bit = k < k_end ? 1u << (tap.d2 * g.kw + tap.d1) : 0u;
#pragma unroll
            for (int q = 0; q < CH; ++q)
                cp_async16(stile + smem + q * RSTEP * TC_KMAJOR_STRIDE, x + (at[q] + offset), (mask[q] & bit) != 0);
        } else {
#pragma unroll
            for (int q = 0; q < CH; ++q) {   // element by element, each with its own (c, j, i)
                T* dst = reinterpret_cast<T*>(tile + smem + q * RSTEP * TC_KMAJOR_STRIDE);
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
// t / 4 + RSTEP q, k bytes 16 (t % 4), one (co, qw, qh) counter and one tap offset for all.
template <class T, bool FAST, int ROWS, int THREADS>
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

    __device__ __forceinline__ void load(unsigned char* tile, smem_ptr stile) {
        long long offset = (long long)tap_of(tap) * cin * cout + tap.d0;   // of row ci = 0
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            int c = ci + q * RSTEP;
            if (FAST) {   // cout % EPC == 0: EPC output channels of one tap
                cp_async16(stile + smem + q * RSTEP * TC_KMAJOR_STRIDE, w + offset + (long long)c * cout,
                           k < k_end && c < cin);
            } else {
                T* dst = reinterpret_cast<T*>(tile + smem + q * RSTEP * TC_KMAJOR_STRIDE);
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

// Filter-gradient A, MN-major: rows are taps (i, j, c) m0.., k = output pixels. Thread t moves
// chunks t % G + G q of k row t / G (G = threads a k row; TcLoader's MN-major mapping): one pixel,
// so one (ow, oh, image) counter stepped by a k-tile and one pixel offset for all its chunks, each
// chunk adding its tap's offset and checking its tap's row and column against the image.
template <class T, bool FAST, int ROWS, int THREADS>
struct TcTapLoader {
    static constexpr bool KMAJOR = false;
    static constexpr int EPC = 16 / sizeof(T), BK = TC_KBYTES / sizeof(T), CPR = ROWS / EPC;
    static constexpr int CH = 4 * ROWS / THREADS, G = CPR / CH;   // chunks a thread, threads a k row
    static constexpr int STRIDE = tc_mn_stride<T>(ROWS);
    static_assert(G * CH == CPR && THREADS / G == BK, "one k row a thread");
    const T* x;
    TcConv g;
    int smem, p, p_end;
    int di[CH], dj[CH], ch[CH], tap_i[CH], tap_j[CH], offset[CH];   // chunk q's tap (offset: of di, dj, ch in x)
    bool row_ok[CH];
    TcCounter pixel;   // (ow, oh, image) of the k row's pixel p

    __device__ TcTapLoader(const T* x_, const TcConv& g_, int m0, int p_begin, int p_end_)
        : x(x_), g(g_), p_end(p_end_) {
        int taps = g.kh * g.kw * g.cin, krow = threadIdx.x / G, col = threadIdx.x % G;
#pragma unroll
        for (int q = 0; q < CH; ++q) {
            int m = m0 + (col + q * G) * EPC, tap = m / g.cin;
            row_ok[q] = m < taps;
            ch[q] = m % g.cin;
            tap_i[q] = tap / g.kw, tap_j[q] = tap % g.kw;
            di[q] = tap_i[q] * g.dil_h - g.pad_t;
            dj[q] = tap_j[q] * g.dil_w - g.pad_l;
            offset[q] = (di[q] * g.in_w + dj[q]) * g.cin + ch[q];
            if (FAST && !row_ok[q]) di[q] = -(1 << 30);   // a row past the taps: never inside
        }
        p = p_begin + krow;
        pixel.start(p, g.out_w, g.out_h, BK);
        smem = krow * STRIDE + col * 16;
    }

    __device__ __forceinline__ void load(unsigned char* tile, smem_ptr stile) {
        int ih0 = pixel.d1 * g.sh, iw0 = pixel.d0 * g.sw;
        bool p_ok = p < p_end;
        if (FAST) {   // Cin % EPC == 0: EPC channels of one tap; x has < 2^31 elements (launch.inputs)
            const T* at = x + ((pixel.d2 * g.in_h + ih0) * g.in_w + iw0) * g.cin;   // the pixel's tap (0, 0)
            int rows = p_ok ? ih0 : -(1 << 30);   // a pixel past the split: no tap row inside
#pragma unroll
            for (int q = 0; q < CH; ++q)   // di of a row past the taps is -2^30 too (constructor)
                cp_async16(stile + smem + q * G * 16, at + offset[q],
                           tc_inside(rows + di[q], g.in_h) && tc_inside(iw0 + dj[q], g.in_w));
        } else {      // element by element: taps (c, j, i) counted from the chunk's first
            const T* at = x + ((long long)pixel.d2 * g.in_h * g.in_w) * g.cin;
            int taps = g.kh * g.kw * g.cin;
#pragma unroll
            for (int q = 0; q < CH; ++q) {
                T* dst = reinterpret_cast<T*>(tile + smem + q * G * 16);
                int c = ch[q], j = tap_j[q], i = tap_i[q];
#pragma unroll 1
                for (int v = 0; v < EPC; ++v) {
                    int ih = ih0 + i * g.dil_h - g.pad_t, iw = iw0 + j * g.dil_w - g.pad_l;
                    bool ok = row_ok[q] && (i * g.kw + j) * g.cin + c < taps && p_ok &&
                              tc_inside(ih, g.in_h) && tc_inside(iw, g.in_w);
                    dst[v] = ok ? at[((long long)ih * g.in_w + iw) * g.cin + c] : T{};
                    if (++c == g.cin) {
                        c = 0;
                        if (++j == g.kw) j = 0, ++i;
                    }
                }
            }
        }
        pixel.advance();
        p += BK;
    }
};
