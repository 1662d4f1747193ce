// tc_gemm.cuh - the tensor-core GEMM core shared by tc_gemm.cu (dense) and tc_conv.cu:
// C (64 x 64 block tile) = sum over k of A (M x K) B (K x N), float32 accumulators, operands
// float32 (run as TF32: rounded with cvt.rna.tf32.f32, then mma m16n8k8) or bf16 / fp16
// (mma m16n8k16). Sm_80 and newer only (mma.sync, ldmatrix, cp.async).
//
// Block: 128 threads = 4 warps in 2 x 2, each owning a 32 x 32 warp tile = 2 (m16) x 4 (n8)
// mma tiles, 32 float accumulators a thread. K advances TC_KBYTES = 64 bytes of each operand
// row a stage (16 floats or 32 halves: 2 mma k-steps), through TC_STAGES = 3 shared-memory
// stages filled by cp.async: while the warps multiply stage s, the copies of the next two
// stages are in flight (CUTLASS's multistage pipeline; one __syncthreads a k-tile).
//
// Shared layouts (per operand and stage, a padded byte array, no swizzle):
//   K-major (k contiguous in memory, e.g. A = x (M, K)): 64 rows of 64 bytes, 80 bytes apart.
//     ldmatrix's 8 rows of one matrix then start at words 0, 20, 8, 28, 16, 4, 24, 12 (mod 32):
//     the 8 x 4 words fill the 32 banks once, no conflict. Fragments: ldmatrix.x4, which for
//     32-bit data hands lane l float t of row g (the tf32 layout, see mma.cuh).
//   MN-major (m or n contiguous, e.g. B = w (K, N)): rows of 64 elements (k fixed), padded by
//     16 bytes (16-bit) or 32 bytes (float): 144 or 288 bytes apart, i.e. 4 or 8 banks of
//     shift a row. 16-bit: ldmatrix.x4.trans (8 rows at banks 0, 4, ..., 28: conflict-free).
//     float: ldmatrix cannot transpose 32-bit data, so 32-bit shared loads, lane (g, t)
//     reading row t, column g: bank 8t + g, 32 distinct banks.
// Tile edges: a 16-byte cp.async whose bytes pass the matrix's end reads only the bytes inside
// (the zero-fill form: src-size < 16), so edge tiles multiply zeros, never garbage.
// Fast path: cp.async needs 16-byte aligned sources: both bases 16-byte aligned and both
// leading dimensions a multiple of 16 bytes. Otherwise the same loop runs with plain element
// loads and shared stores (synchronous, slower, correct for any shape and alignment); the
// choice is made per launch inside the kernel, from the actual pointers.
// No integer division in the loop: loader positions are pointers and counters advanced by
// constants; stage indices wrap by comparison.
#pragma once
#include "mma.cuh"

#define TC_THREADS 128
#define TC_BM 64
#define TC_BN 64
#define TC_STAGES 3
#define TC_KBYTES 64
#define TC_KMAJOR_STRIDE 80                 // bytes between rows of a K-major tile
#define TC_STAGE_BYTES 5120                 // 64 * 80 >= 16 * 288 = 32 * 144 = 4608

template <class T> struct TcType;
template <> struct TcType<float> {
    static constexpr int K_STEP = 8;        // mma m16n8k8
    static constexpr int MN_STRIDE = 288;   // 64 floats + 32 bytes
};
template <> struct TcType<bf16_t> {
    static constexpr int K_STEP = 16;
    static constexpr int MN_STRIDE = 144;   // 64 halves + 16 bytes
};
template <> struct TcType<fp16_t> : TcType<bf16_t> {};

__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, float) {
    mma_tf32_m16n8k8(d, a, b, d);
}
__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, bf16_t) {
    mma_bf16_m16n8k16(d, a, b, d);
}
__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, fp16_t) {
    mma_f16_m16n8k16(d, a, b, d);
}

// Copies one operand's (64 rows x TC_KBYTES) stage tile: thread t moves 16-byte chunks t and
// t + 128 of the 256. K-major: chunk c = (row c / 4, bytes 16 (c % 4)); MN-major: chunk c =
// (k row c / CPR, columns 16 (c % CPR) bytes on), CPR = chunks a row. Each chunk keeps its
// global pointer and the k position it has reached, advanced by one k-tile per stage.
template <class T, bool KMAJOR_>
struct TcLoader {
    static constexpr bool KMAJOR = KMAJOR_;
    static constexpr int EPC = 16 / sizeof(T);                 // elements a chunk
    static constexpr int BK = TC_KBYTES / sizeof(T);           // k elements a stage
    static constexpr int CPR = KMAJOR ? 4 : 64 / EPC;          // chunks a shared row
    const T* base;
    const T* src[2];
    int smem[2];          // byte offsets in the stage tile
    int k[2];             // the chunk's first k
    int fixed_bytes[2];   // K-major: 0 if the row is past the matrix; MN-major: bytes inside the row
    int k_end;
    long long step;       // elements the pointer moves per stage

    // Rows [r0, r0 + 64) of the operand (M or N extent `rows`), k from k_begin to k_end; ld is
    // the leading dimension: element (r, k) at p[r * ld + k] (K-major) or p[k * ld + r].
    __device__ TcLoader(const T* p, int rows, int ld, int r0, int k_begin, int k_end_) : base(p), k_end(k_end_) {
        step = KMAJOR ? BK : (long long)BK * ld;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            int c = threadIdx.x + TC_THREADS * i, row = c / CPR, col = c % CPR;   // constants: shifts
            if (KMAJOR) {
                int r = r0 + row;
                k[i] = k_begin + col * EPC;
                fixed_bytes[i] = r < rows ? 16 : 0;
                src[i] = p + (long long)min(r, rows - 1) * ld + k[i];
                smem[i] = row * TC_KMAJOR_STRIDE + col * 16;
            } else {
                int r = r0 + col * EPC;
                k[i] = k_begin + row;
                fixed_bytes[i] = max(0, min(rows - r, EPC)) * int(sizeof(T));
                src[i] = p + (long long)k[i] * ld + min(r, rows - 1);
                smem[i] = row * TcType<T>::MN_STRIDE + col * 16;
            }
        }
    }

    // Issue the copies of the current k-tile into `tile`, then move to the next k-tile.
    template <bool FAST>
    __device__ __forceinline__ void load(unsigned char* tile) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            int bytes = KMAJOR ? min(fixed_bytes[i], max(0, (k_end - k[i]) * int(sizeof(T))))
                               : (k[i] < k_end ? fixed_bytes[i] : 0);
            unsigned char* dst = tile + smem[i];
            if (FAST) {
                cp_async_cg16(dst, bytes > 0 ? (const void*)src[i] : (const void*)base, bytes);
            } else {   // any alignment: element loads, zeros past the edge
                T* out = reinterpret_cast<T*>(dst);
#pragma unroll
                for (int e = 0; e < EPC; ++e) out[e] = e * int(sizeof(T)) < bytes ? src[i][e] : T{};
            }
            src[i] += step;
            k[i] += BK;
        }
    }
};

// The A fragments (2 m16 tiles) of mma k-step `kk` from a stage tile; tf32 operands rounded.
template <class T, bool KMAJOR>
__device__ __forceinline__ void tc_fragments_a(const unsigned char* tile, int kk, int wm, unsigned (&a)[2][4]) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int m = wm + 16 * i;
        if (KMAJOR) {   // x4: rows m..m+15 at k bytes 0-15 (lanes 0-15) and 16-31 (lanes 16-31)
            ldmatrix_x4(a[i], tile + (m + (lane & 15)) * TC_KMAJOR_STRIDE + kk * 32 + (lane >> 4) * 16);
        } else if (sizeof(T) == 2) {   // x4.trans: k rows (lane & 7) + 8 (lane >> 4), m + 8 ((lane >> 3) & 1)
            int krow = kk * 16 + (lane & 7) + ((lane >> 4) << 3);
            ldmatrix_x4_trans(a[i], tile + krow * TcType<T>::MN_STRIDE + (m + (((lane >> 3) & 1) << 3)) * 2);
        } else {        // float, m contiguous: a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4)
            const unsigned char* at = tile + (kk * 8 + t) * TcType<T>::MN_STRIDE + (m + g) * 4;
            a[i][0] = *reinterpret_cast<const unsigned*>(at);
            a[i][1] = *reinterpret_cast<const unsigned*>(at + 32);
            a[i][2] = *reinterpret_cast<const unsigned*>(at + 4 * TcType<T>::MN_STRIDE);
            a[i][3] = *reinterpret_cast<const unsigned*>(at + 4 * TcType<T>::MN_STRIDE + 32);
        }
        if (sizeof(T) == 4) {
#pragma unroll
            for (int r = 0; r < 4; ++r) a[i][r] = __float_as_uint(tf32_round(__uint_as_float(a[i][r])));
        }
    }
}

// The B fragments (4 n8 tiles) of mma k-step `kk`; tf32 operands rounded.
template <class T, bool KMAJOR>
__device__ __forceinline__ void tc_fragments_b(const unsigned char* tile, int kk, int wn, unsigned (&b)[4][2]) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int jp = 0; jp < 2; ++jp) {
        int n = wn + 16 * jp;
        unsigned r[4];
        if (KMAJOR) {   // x4: n rows (lane & 7) + 8 (lane >> 4), k bytes 16 ((lane >> 3) & 1)
            ldmatrix_x4(r, tile + (n + (lane & 7) + ((lane >> 4) << 3)) * TC_KMAJOR_STRIDE + kk * 32 +
                               (((lane >> 3) & 1) << 4));
        } else if (sizeof(T) == 2) {   // x4.trans: k rows (lane & 7) + 8 ((lane >> 3) & 1), n + 8 (lane >> 4)
            int krow = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
            ldmatrix_x4_trans(r, tile + krow * TcType<T>::MN_STRIDE + (n + ((lane >> 4) << 3)) * 2);
        } else {        // float, n contiguous: b0 (k t, n g), b1 (k t+4, n g), for n and n + 8
            const unsigned char* at = tile + (kk * 8 + t) * TcType<T>::MN_STRIDE + (n + g) * 4;
            r[0] = *reinterpret_cast<const unsigned*>(at);
            r[1] = *reinterpret_cast<const unsigned*>(at + 4 * TcType<T>::MN_STRIDE);
            r[2] = *reinterpret_cast<const unsigned*>(at + 32);
            r[3] = *reinterpret_cast<const unsigned*>(at + 4 * TcType<T>::MN_STRIDE + 32);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            unsigned v = sizeof(T) == 4 ? __float_as_uint(tf32_round(__uint_as_float(r[q]))) : r[q];
            b[2 * jp + (q >> 1)][q & 1] = v;
        }
    }
}

// acc += the block tile's product over k in [k_begin, k_end): the multistage main loop.
// Every thread of the block must call it (barriers); FAST selects 16-byte cp.async loads.
// LA / LB: loaders with KMAJOR (their shared layout) and load<FAST>(stage tile) (TcLoader for
// matrices, the conv loaders of tc_conv.cu for implicit-GEMM operands).
// The stages live in TcSmem, declared once by the kernel (the FAST and the slow instantiation
// share it; a __shared__ array in this template would exist once per instantiation).
struct TcSmem {
    unsigned char a[TC_STAGES][TC_STAGE_BYTES];
    unsigned char b[TC_STAGES][TC_STAGE_BYTES];
};

template <class T, bool FAST, class LA, class LB>
__device__ __forceinline__ void tc_mainloop(LA& la, LB& lb, int k_begin, int k_end, TcSmem& smem,
                                            float (&acc)[2][4][4]) {
    auto& smem_a = smem.a;
    auto& smem_b = smem.b;
    constexpr int BK = TC_KBYTES / sizeof(T);
    int tiles = (k_end - k_begin + BK - 1) / BK;   // once, before the loop
    int warp = threadIdx.x >> 5, wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < tiles) {
            la.template load<FAST>(smem_a[s]);
            lb.template load<FAST>(smem_b[s]);
        }
        cp_async_commit();
    }
    int read = 0, write = TC_STAGES - 1;
    for (int kt = 0; kt < tiles; ++kt) {
        cp_async_wait<TC_STAGES - 2>();   // this thread's copies of k-tile kt have landed...
        __syncthreads();                  // ...and everyone's; stage `write` is no longer read
        if (kt + TC_STAGES - 1 < tiles) {
            la.template load<FAST>(smem_a[write]);
            lb.template load<FAST>(smem_b[write]);
        }
        cp_async_commit();                // an empty group at the end keeps the count uniform
#pragma unroll
        for (int kk = 0; kk < TC_KBYTES / 32; ++kk) {
            unsigned a[2][4], b[4][2];
            tc_fragments_a<T, LA::KMAJOR>(smem_a[read], kk, wm, a);
            tc_fragments_b<T, LB::KMAJOR>(smem_b[read], kk, wn, b);
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) tc_mma(acc[i][j], a[i], b[j], T{});
        }
        read = read + 1 == TC_STAGES ? 0 : read + 1;
        write = write + 1 == TC_STAGES ? 0 : write + 1;
    }
    cp_async_wait<0>();
    __syncthreads();   // the stages may be reused by the caller's next call
}

__device__ __forceinline__ bool tc_aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15) == 0; }

// The block's accumulators: row m0 + wm + 16 i + g (+ 8 for r >= 2), column n0 + wn + 8 j + 2 t
// (+ 1 for odd r), i.e. the C fragment layout of mma.cuh per mma tile.
struct TcOut {
    int row, col;   // of register 0 of mma tile (0, 0)
    __device__ TcOut(int m0, int n0) {
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        row = m0 + (warp >> 1) * 32 + (lane >> 2);
        col = n0 + (warp & 1) * 32 + 2 * (lane & 3);
    }
    __device__ int row_of(int i, int r) const { return row + 16 * i + 8 * (r >> 1); }
    __device__ int col_of(int j, int r) const { return col + 8 * j + (r & 1); }
};

// out (rows x cols, row-major) = the block tile's accumulators (+ bias[col] when bias is not null).
__device__ __forceinline__ void tc_store(const float (&acc)[2][4][4], float* __restrict__ out, int rows, int cols,
                                         int m0, int n0, const float* __restrict__ bias) {
    TcOut at(m0, n0);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                int row = at.row_of(i, r), col = at.col_of(j, r);
                if (row < rows && col < cols) out[(long long)row * cols + col] = acc[i][j][r] + (bias ? bias[col] : 0.0f);
            }
}

// A mixed-radix counter (d0 fastest, radices r0 and r1, d2 unbounded) advanced by a fixed step
// without division: the step's digits are found once, then each advance is adds and at most
// one carry per digit. Used for (channel, tap column, tap row) and (out col, out row, image).
struct TcCounter {
    int d0, d1, d2, r0, r1, s0, s1, s2;
    __device__ void start(int value, int radix0, int radix1, int step) {   // divisions: once, outside loops
        r0 = radix0, r1 = radix1;
        d0 = value % r0, d1 = (value / r0) % r1, d2 = value / (r0 * r1);
        s0 = step % r0, s1 = (step / r0) % r1, s2 = step / (r0 * r1);
    }
    __device__ __forceinline__ void advance() {
        d0 += s0;
        int carry = d0 >= r0;
        d0 -= carry ? r0 : 0;
        d1 += s1 + carry;
        carry = d1 >= r1;
        d1 -= carry ? r1 : 0;
        d2 += s2 + carry;
    }
    __device__ __forceinline__ void next() {   // + 1
        if (++d0 == r0) {
            d0 = 0;
            if (++d1 == r1) d1 = 0, ++d2;
        }
    }
};
