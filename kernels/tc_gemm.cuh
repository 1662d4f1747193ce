// tc_gemm.cuh - the tensor-core GEMM core shared by tc_gemm.cu (dense) and tc_conv.cu:
// C (BM x BN block tile) = sum over k of A (M x K) B (K x N), float32 accumulators, operands
// float32 (run as TF32: rounded with cvt.rna.tf32.f32, then mma m16n8k8) or bf16 / fp16
// (mma m16n8k16). Sm_80 and newer only (mma.sync, ldmatrix, cp.async).
//
// Tile configurations (TcTile; the host picks one per shape, primitives/tensorcore.tile_for):
//   TcSmall: 64 x 64 block, 128 threads = 4 warps in 2 x 2, each a 32 x 32 warp tile
//            (2 m16 x 4 n8 mma tiles, 32 float accumulators a thread), 3 stages (30 KB).
//   TcBig:   128 x 128 block, 128 threads = 4 warps in 2 x 2, each a 64 x 64 warp tile
//            (4 m16 x 8 n8, 128 accumulators a thread), 2 stages (40 KB: a third stage would
//            pass the 48 KB of static shared memory, and cudasim has no dynamic shared memory).
//            Per mma k-step a warp reads 4 + 4 ldmatrix.x4 for 32 mma: twice the FLOPs per
//            shared-memory byte of the 32 x 32 warp tile (16 TF32 / 32 BF16 FLOP/B), and the
//            loader's per-k-tile integer work is spread over 4x the HMMAs.
//   TcWide:  128 x 64 block, 4 warps in 2 x 2, 64 x 32 warp tiles (4 m16 x 4 n8, 64 accumulators),
//            3 stages (45 KB): for outputs 33-64 columns wide (10.7 TF32 / 21.3 BF16 FLOP/B).
//   TcNarrow: 128 x 32 block, 4 warps in 4 x 1, 32 x 32 warp tiles (TcSmall's), 3 stages (37.5 KB):
//            for outputs at most 32 columns wide, whose 64 x 64 blocks would leave the warps of
//            columns 32-63 multiplying zeros.
//   TcTall:  256 x 32 block, 4 warps in 4 x 1, 64 x 32 warp tiles (TcWide's), 2 stages (45 KB; a
//            third would pass 48 KB): the narrow outputs with TcWide's instructions a mma
//            (convolutions only, tc_conv_tall.cu).
// K advances TC_KBYTES = 64 bytes of each operand row a stage (16 floats or 32 halves: 2 mma
// k-steps), through STAGES shared-memory stages filled by cp.async: while the warps multiply
// stage s, the copies of the next STAGES - 1 stages are in flight (CUTLASS's multistage
// pipeline; one __syncthreads a k-tile).
//
// Shared layouts (per operand and stage, a padded byte array, no swizzle), for a tile of R rows
// (R = BM for A, BN for B):
//   K-major (k contiguous in memory, e.g. A = x (M, K)): R rows of 64 bytes, 80 bytes apart.
//     ldmatrix's 8 rows of one matrix then start at words 0, 20, 8, 28, 16, 4, 24, 12 (mod 32):
//     the 8 x 4 words fill the 32 banks once, no conflict. Fragments: ldmatrix.x4, which for
//     32-bit data hands lane l float t of row g (the tf32 layout, see mma.cuh).
//   MN-major (m or n contiguous, e.g. B = w (K, N)): rows of R elements (k fixed), padded by
//     16 bytes (16-bit) or 32 bytes (float): a row is shifted 4 (16-bit) or 8 (float) banks from
//     the one before for R = 64 and R = 128 alike. 16-bit: ldmatrix.x4.trans (8 rows at banks
//     0, 4, ..., 28: conflict-free). float: ldmatrix cannot transpose 32-bit data. A's fragments
//     come from 32-bit loads like B's below or, where the kernel asks (tc_mainloop's PAIR_A), from
//     64-bit shared loads of two neighbouring columns ("paired"): lane (g, t) reads
//     k row t, columns 2g and 2g + 1 (banks 8t + 2g, + 1: 32 distinct banks a half warp) and
//     feeds them to the mma as rows g and g + 8 of an m16 tile, so the mma sees the block's rows
//     permuted (m = 2g + h of each 16 as row g + 8h) and TcOut stores them back in place. B's
//     come from 32-bit loads, lane (g, t) reading row t, column g (bank 8t + g): pairing its
//     columns would put b0 of two n8 tiles in one register pair where the mma wants b0 and b1 of
//     one, and the moves cost what the loads saved.
// Tile edges: on the fast path a 16-byte chunk is wholly inside the operand or wholly outside
// (rows are whole chunks there), and one outside is a cp.async with its ignore-src predicate set:
// 16 zeros, nothing read. So edge tiles multiply zeros, never garbage. The slow path stores zeros
// past the edges element by element.
// Fast path: cp.async needs 16-byte aligned sources: both bases 16-byte aligned and both
// leading dimensions a multiple of 16 bytes. Otherwise the same loop runs with plain element
// loads and shared stores (synchronous, slower, correct for any shape and alignment); the
// choice is made per launch inside the kernel, from the actual pointers.
// No integer division in the loop: loader positions are pointers and counters advanced by
// constants; stage indices wrap by comparison. Address arithmetic is hoisted: a thread's chunks
// of a stage tile sit a constant number of bytes apart in shared memory, so each loader keeps one
// shared offset (32-bit shared addresses: smem_ptr), and the fragment loads keep one per-lane byte
// offset per operand, computed before the loop (the k-step and tile offsets are constants).
#pragma once
#include "mma.cuh"

#define TC_THREADS 128                      // TcSmall's block
#define TC_BIG_THREADS 128                  // TcBig's block
#define TC_WIDE_THREADS 128                 // TcWide's block
#define TC_NARROW_THREADS 128               // TcNarrow's block
#define TC_TALL_THREADS 128                 // TcTall's block
#define TC_KBYTES 64
#define TC_KMAJOR_STRIDE 80                 // bytes between rows of a K-major tile

// A block tile of BM x BN outputs, WARPS_M x WARPS_N warps (each a (BM / WARPS_M) x (BN / WARPS_N)
// warp tile of MI m16 x NJ n8 mma tiles), STAGES shared-memory stages.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct TcTile {
    static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NJ = WN / 8;
};
using TcSmall = TcTile<64, 64, 2, 2, 3>;
using TcBig = TcTile<128, 128, 2, 2, 2>;
using TcWide = TcTile<128, 64, 2, 2, 3>;
using TcNarrow = TcTile<128, 32, 4, 1, 3>;
using TcTall = TcTile<256, 32, 4, 1, 2>;
static_assert(TcSmall::THREADS == TC_THREADS && TcBig::THREADS == TC_BIG_THREADS &&
              TcWide::THREADS == TC_WIDE_THREADS && TcNarrow::THREADS == TC_NARROW_THREADS &&
              TcTall::THREADS == TC_TALL_THREADS, "launch bounds");

template <class T> struct TcType;
template <> struct TcType<float> {
    static constexpr int K_STEP = 8;        // mma m16n8k8
    static constexpr int PAD = 32;          // bytes after an MN-major row
};
template <> struct TcType<bf16_t> {
    static constexpr int K_STEP = 16;
    static constexpr int PAD = 16;
};
template <> struct TcType<fp16_t> : TcType<bf16_t> {};

// Bytes between the k rows of an MN-major tile of `rows` elements (64: 288 / 144; 128: 544 / 272).
template <class T> __host__ __device__ constexpr int tc_mn_stride(int rows) { return rows * int(sizeof(T)) + TcType<T>::PAD; }
// Bytes of one operand's stage tile of `rows` rows in either layout: K-major rows * 80 >=
// MN-major (64 / sizeof(T)) k rows * tc_mn_stride = 64 rows + 512.
__host__ __device__ constexpr int tc_stage_bytes(int rows) { return rows * TC_KMAJOR_STRIDE > 64 * rows + 512 ? rows * TC_KMAJOR_STRIDE : 64 * rows + 512; }

__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, float) {
    mma_tf32_m16n8k8(d, a, b, d);
}
__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, bf16_t) {
    mma_bf16_m16n8k16(d, a, b, d);
}
__device__ __forceinline__ void tc_mma(float* d, const unsigned* a, const unsigned* b, fp16_t) {
    mma_f16_m16n8k16(d, a, b, d);
}

// Copies one operand's (ROWS rows x TC_KBYTES) stage tile of a matrix: its 4 ROWS 16-byte chunks,
// CH = 4 ROWS / THREADS a thread. Which chunks a thread moves is chosen so that they share all
// the per-k-tile work and differ only by constants or by values fixed before the loop:
//   K-major (row r = m or n, its 64 k bytes in 4 chunks): thread t moves chunk t % 4 of rows
//     t / 4 + RSTEP i: one k (one k-tile bound check) for all, one row pointer each.
//   MN-major (k row of ROWS elements, CPR chunks): thread t moves chunks t % G + G i of k row t / G
//     (G = CPR / CH threads a k row): one k row (one bound check, one pointer) for all, the chunks
//     a constant G * 16 bytes apart in memory and in shared memory.
// The fast path (FAST: 16-byte aligned rows) issues per chunk one cp.async whose ignore-src
// predicate is the chunk's validity; the slow path copies element by element with zeros past the
// edges (any shape and alignment). Each path builds its own loader (FAST), so neither keeps the
// other's state alive in registers.
template <class T, bool FAST, bool KMAJOR_, int ROWS, int THREADS>
struct TcLoader {
    static constexpr bool KMAJOR = KMAJOR_;
    static constexpr int EPC = 16 / sizeof(T);                 // elements a chunk
    static constexpr int BK = TC_KBYTES / sizeof(T);           // k elements a stage
    static constexpr int CPR = KMAJOR ? 4 : ROWS / EPC;        // chunks a shared row
    static constexpr int CH = 4 * ROWS / THREADS;              // chunks a thread
    static constexpr int RSTEP = THREADS / 4;                  // K-major: rows between a thread's chunks
    static constexpr int G = CPR / CH;                         // MN-major: threads a k row
    static constexpr int ROW_BYTES = KMAJOR ? TC_KMAJOR_STRIDE : tc_mn_stride<T>(ROWS);
    static constexpr int CHUNK_BYTES = KMAJOR ? RSTEP * ROW_BYTES : G * 16;   // shared bytes between chunks
    static_assert(KMAJOR || (G >= 1 && G * CH == CPR && THREADS / G == BK), "one k row a thread");
    const T* src[KMAJOR ? CH : 1];   // K-major: each row's chunk at k; MN-major: chunk 0 of the k row
    int smem;             // chunk 0's byte offset in the stage tile
    int k, k_end;         // the chunks' k (K-major: first element; MN-major: the k row)
    int bytes[CH];        // bytes of the chunk inside the matrix's other extent (16 or 0 on the fast path)
    long long step;       // elements a pointer moves per k-tile

    // Rows [r0, r0 + ROWS) of the operand (M or N extent `rows`), k from k_begin to k_end; ld is
    // the leading dimension: element (r, k) at p[r * ld + k] (K-major) or p[k * ld + r].
    __device__ TcLoader(const T* p, int rows, int ld, int r0, int k_begin, int k_end_) : k_end(k_end_) {
        step = KMAJOR ? BK : (long long)BK * ld;
        if (KMAJOR) {
            int row = threadIdx.x >> 2, col = threadIdx.x & 3;
            smem = row * ROW_BYTES + col * 16;
            k = k_begin + col * EPC;
#pragma unroll
            for (int i = 0; i < CH; ++i) {
                int r = r0 + row + i * RSTEP;
                bytes[i] = r < rows ? 16 : 0;
                src[i] = p + (long long)min(r, rows - 1) * ld + k;
            }
        } else {
            int krow = threadIdx.x / G, col = threadIdx.x % G;   // constants: shifts
            smem = krow * ROW_BYTES + col * 16;
            k = k_begin + krow;
            src[0] = p + (long long)k * ld + r0 + col * EPC;
#pragma unroll
            for (int i = 0; i < CH; ++i) bytes[i] = max(0, min(rows - (r0 + (col + i * G) * EPC), EPC)) * int(sizeof(T));
        }
    }

    // Issue the copies of the current k-tile into `tile` (its generic and shared addresses), then
    // move to the next k-tile.
    __device__ __forceinline__ void load(unsigned char* tile, smem_ptr stile) {
        int k_bytes = max(0, (k_end - k) * int(sizeof(T)));   // K-major: bytes of the row left
        bool k_ok = k < k_end;
#pragma unroll
        for (int i = 0; i < CH; ++i) {
            const T* from = KMAJOR ? src[i] : src[0] + i * G * EPC;
            if (FAST) {
                cp_async16(stile + smem + i * CHUNK_BYTES, from, k_ok && bytes[i] > 0);
            } else {   // any alignment: element loads, zeros past the edges
                int n = KMAJOR ? min(bytes[i], k_bytes) : (k_ok ? bytes[i] : 0);
                T* out = reinterpret_cast<T*>(tile + smem + i * CHUNK_BYTES);
#pragma unroll
                for (int e = 0; e < EPC; ++e) out[e] = e * int(sizeof(T)) < n ? from[e] : T{};
            }
            if (KMAJOR) src[i] += step;
        }
        if (!KMAJOR) src[0] += step;
        k += BK;
    }
};

// A lane's byte offset in a stage tile for the A fragments of warp row wm (mma tile 0, k-step 0);
// tc_fragments_a adds only constants to it.
template <class T, bool KMAJOR, int ROWS, bool PAIR>
__device__ __forceinline__ int tc_offset_a(int wm) {
    int lane = threadIdx.x & 31;
    if (KMAJOR)   // x4: rows m..m+15 at k bytes 0-15 (lanes 0-15) and 16-31 (lanes 16-31)
        return (wm + (lane & 15)) * TC_KMAJOR_STRIDE + (lane >> 4) * 16;
    if (sizeof(T) == 2)   // x4.trans: k rows (lane & 7) + 8 (lane >> 4), m + 8 ((lane >> 3) & 1)
        return ((lane & 7) + ((lane >> 4) << 3)) * tc_mn_stride<T>(ROWS) + (wm + (((lane >> 3) & 1) << 3)) * 2;
    return (lane & 3) * tc_mn_stride<T>(ROWS) + (wm + (lane >> 2) * (PAIR ? 2 : 1)) * 4;   // float: row t, column g
}                                                                               // (paired: columns 2g, 2g + 1)

// Whether A's fragments can be paired (float, MN-major: see the header). The kernel chooses:
// tc_mainloop's PAIR_A and tc_store's PA must agree (the conv filter gradient pairs; the dense
// tn product does not: its 128 x 128 loop would spill on sm_80).
template <class T, bool KMAJOR>
__host__ __device__ constexpr bool tc_pairable() { return sizeof(T) == 4 && !KMAJOR; }

__device__ __forceinline__ unsigned tc_tf32(unsigned bits) { return __float_as_uint(tf32_round(__uint_as_float(bits))); }

// The A fragments (MI m16 tiles) of mma k-step `kk` at `at` = stage tile + tc_offset_a; tf32 rounded.
template <class T, bool KMAJOR, int ROWS, int MI, bool PAIR>
__device__ __forceinline__ void tc_fragments_a(smem_ptr at, int kk, unsigned (&a)[MI][4]) {
    constexpr int S = tc_mn_stride<T>(ROWS);
#pragma unroll
    for (int i = 0; i < MI; ++i) {
        if (KMAJOR) {
            ldsm_x4(a[i], at + 16 * i * TC_KMAJOR_STRIDE + kk * 32);
        } else if (sizeof(T) == 2) {
            ldsm_x4_trans(a[i], at + kk * 16 * S + 32 * i);
        } else if (PAIR) {   // float, m contiguous, paired: a0, a1 (rows g, g+8; k t), a2, a3 (k t+4)
            smem_ptr p = at + kk * 8 * S + 64 * i;
            lds64(a[i][0], a[i][1], p);
            lds64(a[i][2], a[i][3], p + 4 * S);
        } else {        // float, m contiguous: a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4)
            smem_ptr p = at + kk * 8 * S + 64 * i;
            a[i][0] = lds32(p);
            a[i][1] = lds32(p + 32);
            a[i][2] = lds32(p + 4 * S);
            a[i][3] = lds32(p + 4 * S + 32);
        }
        if (sizeof(T) == 4) {
#pragma unroll
            for (int r = 0; r < 4; ++r) a[i][r] = tc_tf32(a[i][r]);
        }
    }
}

// A lane's byte offset for the B fragments of warp column wn (n tiles 0-1, k-step 0).
template <class T, bool KMAJOR, int ROWS>
__device__ __forceinline__ int tc_offset_b(int wn) {
    int lane = threadIdx.x & 31;
    if (KMAJOR)   // x4: n rows (lane & 7) + 8 (lane >> 4), k bytes 16 ((lane >> 3) & 1)
        return (wn + (lane & 7) + ((lane >> 4) << 3)) * TC_KMAJOR_STRIDE + (((lane >> 3) & 1) << 4);
    if (sizeof(T) == 2)   // x4.trans: k rows (lane & 7) + 8 ((lane >> 3) & 1), n + 8 (lane >> 4)
        return ((lane & 7) + (((lane >> 3) & 1) << 3)) * tc_mn_stride<T>(ROWS) + (wn + ((lane >> 4) << 3)) * 2;
    return (lane & 3) * tc_mn_stride<T>(ROWS) + (wn + (lane >> 2)) * 4;   // float: row t, column g
}

// The B fragments (NJ n8 tiles, in pairs) of mma k-step `kk` at stage tile + tc_offset_b; tf32 rounded.
template <class T, bool KMAJOR, int ROWS, int NJ>
__device__ __forceinline__ void tc_fragments_b(smem_ptr at, int kk, unsigned (&b)[NJ][2]) {
    constexpr int S = tc_mn_stride<T>(ROWS);
#pragma unroll
    for (int jp = 0; jp < NJ / 2; ++jp) {
        unsigned r[4];
        if (KMAJOR) {
            ldsm_x4(r, at + 16 * jp * TC_KMAJOR_STRIDE + kk * 32);
        } else if (sizeof(T) == 2) {
            ldsm_x4_trans(r, at + kk * 16 * S + 32 * jp);
        } else {        // float, n contiguous: b0 (k t, n g), b1 (k t+4, n g), for n and n + 8 (not
            smem_ptr p = at + kk * 8 * S + 64 * jp;   // paired: the mma wants b0, b1 of one n8 tile in a register pair)
            r[0] = lds32(p);
            r[1] = lds32(p + 4 * S);
            r[2] = lds32(p + 32);
            r[3] = lds32(p + 4 * S + 32);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) b[2 * jp + (q >> 1)][q & 1] = sizeof(T) == 4 ? tc_tf32(r[q]) : r[q];
    }
}

// The stages, declared once by the kernel (the FAST and the slow instantiation share it; a
// __shared__ array in the main-loop template would exist once per instantiation).
template <class Cfg>
struct TcSmem {
    unsigned char a[Cfg::STAGES][tc_stage_bytes(Cfg::BM)];
    unsigned char b[Cfg::STAGES][tc_stage_bytes(Cfg::BN)];
};

template <class Cfg>
using TcAcc = float[Cfg::MI][Cfg::NJ][4];

// acc += the block tile's product over k in [k_begin, k_end): the multistage main loop.
// Every thread of the block must call it (barriers).
// LA / LB: loaders with KMAJOR (their shared layout) and load(stage tile, its smem_ptr)
// (TcLoader for matrices, the conv loaders of tc_conv.cuh for implicit-GEMM operands), of
// Cfg::BM / BN rows. Stage s of an operand starts s * its stage bytes after stage 0.
template <class T, class Cfg, bool PAIR_A = false, class LA, class LB>
__device__ __forceinline__ void tc_mainloop(LA& la, LB& lb, int k_begin, int k_end, TcSmem<Cfg>& smem,
                                            TcAcc<Cfg>& acc) {
    constexpr int BK = TC_KBYTES / sizeof(T), STAGES = Cfg::STAGES;
    constexpr int SA = tc_stage_bytes(Cfg::BM), SB = tc_stage_bytes(Cfg::BN);
    int tiles = (k_end - k_begin + BK - 1) / BK;   // once, before the loop
    int warp = threadIdx.x >> 5;
    smem_ptr a0 = smem_ptr_of(smem.a[0]), b0 = smem_ptr_of(smem.b[0]);
    static_assert(!PAIR_A || tc_pairable<T, LA::KMAJOR>(), "only float MN-major A fragments pair");
    smem_ptr frag_a = a0 + tc_offset_a<T, LA::KMAJOR, Cfg::BM, PAIR_A>((warp / Cfg::WARPS_N) * Cfg::WM);
    smem_ptr frag_b = b0 + tc_offset_b<T, LB::KMAJOR, Cfg::BN>((warp % Cfg::WARPS_N) * Cfg::WN);
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < tiles) {
            la.load(smem.a[s], a0 + s * SA);
            lb.load(smem.b[s], b0 + s * SB);
        }
        cp_async_commit();
    }
    int read = 0, write = STAGES - 1;
    for (int kt = 0; kt < tiles; ++kt) {
        cp_async_wait<STAGES - 2>();      // this thread's copies of k-tile kt have landed...
        __syncthreads();                  // ...and everyone's; stage `write` is no longer read
        if (kt + STAGES - 1 < tiles) {
            la.load(smem.a[write], a0 + write * SA);
            lb.load(smem.b[write], b0 + write * SB);
        }
        cp_async_commit();                // an empty group at the end keeps the count uniform
#pragma unroll
        for (int kk = 0; kk < TC_KBYTES / 32; ++kk) {
            unsigned a[Cfg::MI][4], b[Cfg::NJ][2];
            tc_fragments_a<T, LA::KMAJOR, Cfg::BM, Cfg::MI, PAIR_A>(frag_a + read * SA, kk, a);
            tc_fragments_b<T, LB::KMAJOR, Cfg::BN, Cfg::NJ>(frag_b + read * SB, kk, b);
#pragma unroll
            for (int i = 0; i < Cfg::MI; ++i)
#pragma unroll
                for (int j = 0; j < Cfg::NJ; ++j) tc_mma(acc[i][j], a[i], b[j], T{});
        }
        read = read + 1 == STAGES ? 0 : read + 1;
        write = write + 1 == STAGES ? 0 : write + 1;
    }
    cp_async_wait<0>();
    __syncthreads();   // the stages may be reused by the caller's next call
}

__device__ __forceinline__ bool tc_aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15) == 0; }

// tc_dispatch(fast, body): body(TcPath<true>{}) or body(TcPath<false>{}); the body builds its
// loaders for that path (`constexpr bool FAST = decltype(path)::value;`) and runs tc_mainloop.
template <bool B>
struct TcPath {
    static constexpr bool value = B;
};
template <class Body>
__device__ __forceinline__ void tc_dispatch(bool fast, Body&& body) {
    if (fast) body(TcPath<true>{});
    else body(TcPath<false>{});
}

// The block's accumulators: row m0 + wm + 16 i + g (+ 8 for r >= 2), column n0 + wn + 8 j + 2 t
// (+ 1 for odd r), i.e. the C fragment layout of mma.cuh per mma tile; for a paired A (PA) row
// m0 + wm + 16 i + 2 g (+ 1 for r >= 2) (the main loop's PAIR_A: the mma saw those rows permuted).
template <class Cfg, bool PA = false>
struct TcOut {
    int row, col;   // of register 0 of mma tile (0, 0)
    __device__ TcOut(int m0, int n0) {
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        row = m0 + (warp / Cfg::WARPS_N) * Cfg::WM + (lane >> 2) * (PA ? 2 : 1);
        col = n0 + (warp % Cfg::WARPS_N) * Cfg::WN + 2 * (lane & 3);
    }
    __device__ int row_of(int i, int r) const { return row + 16 * i + (PA ? 1 : 8) * (r >> 1); }
    __device__ int col_of(int j, int r) const { return col + 8 * j + (r & 1); }
};

// out (rows x cols, row-major) = the block tile's accumulators (+ bias[col] when bias is not null);
// PA: whether the A fragments were paired (tc_mainloop's PAIR_A).
template <class Cfg, bool PA = false>
__device__ __forceinline__ void tc_store(const TcAcc<Cfg>& acc, float* __restrict__ out, int rows, int cols,
                                         int m0, int n0, const float* __restrict__ bias) {
    TcOut<Cfg, PA> at(m0, n0);
#pragma unroll
    for (int i = 0; i < Cfg::MI; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::NJ; ++j)
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
