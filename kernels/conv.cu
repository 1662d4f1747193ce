// conv.cu - 2-D convolution as tiled implicit GEMM: forward, input gradient, filter gradient,
// bias gradient. The transposed convolution runs on the same kernels (see below).
//
// Kernels:
//   conv2d_forward(x, w, b, y, gate, has_bias, has_gate, act, alpha, <geometry>)
//       y (N, OH, OW, Cout) = act(x (*) w (+ b)).  GEMM: M = N*OH*OW pixels, N = Cout, K = kh*kw*Cin.
//   conv2d_backward_input(dy, w, b, dx, gate, has_bias, has_gate, act, alpha, <geometry>)
//       dx (N, H, W, Cin) = the input gradient of conv2d_forward (+ b and act, for the transposed
//       conv). GEMM per phase: M = dx pixels of the phase, N = Cin, K = (taps reaching it)*Cout.
//   Both end in epilogue.cuh's epilogue (shared with gemm.cu and pool.cu; new conv kernels fuse
//   the same way): act(v), or with has_gate the gradient v gated by act' read from gate, the
//   output of the layer before (whose activation the fold saves a launch), laid out like y.
//   conv2d_backward_filter(x, dy, dw, partial, counters, pixels_per_split, with_bias, <geometry>)
//       dw (kh*kw*Cin (+ 1), Cout) = im2col(x)^T @ dy, in splits of the N*OH*OW pixels;
//       with_bias appends a column of ones to im2col(x): the last row is the bias gradient.
//       GEMM: M = kh*kw*Cin (+ 1), N = Cout, K = the split's pixels.
//   Both split reductions write partial[split] (when split at all) and finish in the last
//   block of each output tile (last_split below): counters, one int per tile, are zero before
//   the launch and after it.
//   bias_backward(dy, db, partial, counters, rows, channels, rows_per_split)
//       db (C,) = the sum of dy (rows, C) over its rows, in splits of the rows.
//   sum_splits(partial, out, count, splits)
//       out[i] = partial[0][i] + partial[1][i] + ... (for a split reduction finished elsewhere).
//   <geometry> = batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw, pad_t, pad_l,
//   dil_h, dil_w of the forward conv: x (batch, in_h, in_w, cin), w (kh, kw, cin, cout), and
//   input row ih = oh*sh - pad_t + i*dil_h (a negative pad crops). Bottom/right pads only
//   show in out_h / out_w.
//
// Element types: conv2d_forward, conv2d_backward_input, conv2d_backward_filter and bias_backward are
// templates on T (float, bf16_t, fp16_t; kernel_source.py instantiates all three): x, w, dy, y,
// dx and the gate are T; b, dw, db and the split partials stay float32 (mixed precision keeps
// parameters and their gradients in float32). The loaders convert each element to float as they
// fetch it, the shared tiles and accumulators are float, and y / dx are rounded to T once, after
// the bias and activation (epilogue.cuh's epilogue). The float instances are the float32 kernels as before.
// Layout: NHWC, C-contiguous; w (kh, kw, Cin, Cout) is the (K, Cout) matrix of the
// forward GEMM as it lies in memory. The transposed conv is conv2d_backward_input of its x
// (forward, with its bias), conv2d_forward of its dy (input gradient), conv2d_backward_filter
// with x and dy swapped (filter gradient); its kernel (kh, kw, Cout, Cin) is then the
// (kh, kw, cin, cout) of these kernels' geometry.
//
// Threads: 256 a block, each owning a 64 x 64 tile of the GEMM's output and computing a
// 4 x 4 grid of it: rows ty + 16*i, columns tx + 16*j (tx = t % 16, ty = t / 16), so a warp
// writes runs of 16 consecutive channels. Operand tiles (16 deep) are gathered straight from
// NHWC tensors into shared memory (no im2col buffer in global memory), each loader mapping
// consecutive threads to consecutive channels so global reads coalesce; tiles are double
// buffered: one barrier a K step, the next tile's loads in flight during the multiply.
// Input gradient: dx pixel h is reached by taps i with (h + pad_t - i*dil_h) % sh == 0, which
// depends only on the phase (h + pad_t) % sh. blockIdx.z picks the phase (rows, columns); its
// taps form a progression i = tap0 + step*q, so the GEMM skips the taps that miss instead of
// multiplying zeros, and every dx element is written by exactly one thread (no atomics).
//
// Determinism: no atomic touches a value. The filter and bias gradients split their long
// reduction (N*OH*OW pixels) into chunks chosen from the shapes alone; each block owns one output
// tile of one chunk and reduces it in a fixed order, and the tile's last block adds the chunks
// in order (an atomic counter says which block is last, nothing more), so two runs give
// identical bits.
// Backward needs: x (filter gradient), w (input gradient), dy; nothing else saved.
// Gradients: every kernel writes (=) its output; none accumulates (+=).

#include "common.cuh"     // dtype.cuh: bf16_t / fp16_t, to_float, from_float<T>
#include "conv_phase.cuh" // Phase, phase_of: the taps that reach one phase of a strided conv's input gradient
#include "epilogue.cuh"   // epilogue: bias + activation, or an activation's gradient folded in (a T gate read as float)


#define TILE_M 64          // GEMM rows a block owns
#define TILE_N 64          // GEMM columns a block owns
#define TILE_K 16          // depth of one shared-memory step
// Tile row padding: a k-major store (below) puts lane l at tile[k = l % 16][row = l / 16 + 16*r],
// bank (k * TILE_PAD + row) % 32: with 2 a warp's 32 lanes hit 32 distinct banks (4 gave 2-way
// conflicts). Row-major stores and the multiply's reads touch consecutive or identical addresses.
#define TILE_PAD 2
#define THREADS 256
#define SUBTILE 4          // each thread: 4 rows x 4 columns, and 4 operand loads per tile
#define BIAS_COLS 32       // bias_backward: channels a block owns (one warp wide)
#define BIAS_ROWS (THREADS / BIAS_COLS)

typedef float Tile[TILE_K][TILE_M + TILE_PAD];   // [k][row or column], TILE_M == TILE_N

struct Conv {
    int batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw, pad_t, pad_l, dil_h, dil_w;
};

// A Conv from the geometry parameters, which each kernel's signature spells out in full (the
// launcher checks arguments against the parsed signature; it does not expand macros).
#define GEOMETRY {batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw, pad_t, pad_l, dil_h, dil_w}

// Loaders fetch a thread's 4 elements of the next operand tile into registers (fetch) and
// put them into a shared tile (store). Two mappings of a thread to its 4 elements:
//   k-major:   k = t % 16, rows/columns t / 16 + 16*r   (when k runs along channels)
//   row-major: column t % 64, k = t / 64 + 4*r         (when the tile's columns are channels)
__device__ __forceinline__ int kmajor_k() { return threadIdx.x % TILE_K; }
__device__ __forceinline__ int kmajor_row(int r) { return threadIdx.x / TILE_K + (THREADS / TILE_K) * r; }
__device__ __forceinline__ int rowmajor_col() { return threadIdx.x % TILE_N; }
__device__ __forceinline__ int rowmajor_k(int r) { return threadIdx.x / TILE_N + (THREADS / TILE_N) * r; }

struct KMajorLoader {
    float v[SUBTILE];
    __device__ void store(Tile& tile) const {
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) tile[kmajor_k()][kmajor_row(r)] = v[r];
    }
};

struct RowMajorLoader {
    float v[SUBTILE];
    __device__ void store(Tile& tile) const {
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) tile[rowmajor_k(r)][rowmajor_col()] = v[r];
    }
};

__device__ __forceinline__ bool inside(int i, int size) { return i >= 0 && i < size; }

// Forward A: rows are output pixels m0.., k runs over (i, j, c) with c fastest.
template <class T>
struct PatchRows : KMajorLoader {
    const T* x;
    Conv g;
    int k_count, row_image[SUBTILE], row_ih[SUBTILE], row_iw[SUBTILE];

    __device__ PatchRows(const T* x_, const Conv& g_, int m0) : x(x_), g(g_) {
        k_count = g.kh * g.kw * g.cin;
        int pixels = g.batch * g.out_h * g.out_w;
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int m = m0 + kmajor_row(r);
            int ow = m % g.out_w, oh = (m / g.out_w) % g.out_h;
            row_image[r] = m < pixels ? m / (g.out_w * g.out_h) : -1;
            row_ih[r] = oh * g.sh - g.pad_t;
            row_iw[r] = ow * g.sw - g.pad_l;
        }
    }
    __device__ void fetch(int k0) {
        int k = k0 + kmajor_k();
        int c = k % g.cin, tap = k / g.cin;
        int di = (tap / g.kw) * g.dil_h, dj = (tap % g.kw) * g.dil_w;
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int ih = row_ih[r] + di, iw = row_iw[r] + dj;
            bool ok = k < k_count && row_image[r] >= 0 && inside(ih, g.in_h) && inside(iw, g.in_w);
            v[r] = ok ? to_float(x[((row_image[r] * g.in_h + ih) * g.in_w + iw) * g.cin + c]) : 0.0f;
        }
    }
};

// A row-major (rows, cols) matrix: k indexes its rows (< k_end), the tile's columns are
// columns n0 to n0 + 63. Forward B (w as (K, Cout)) and filter-gradient B (dy as (pixels, Cout)).
template <class T>
struct MatrixRows : RowMajorLoader {
    const T* mat;
    int cols, k_end, col;

    __device__ MatrixRows(const T* mat_, int cols_, int k_end_, int n0)
        : mat(mat_), cols(cols_), k_end(k_end_), col(n0 + rowmajor_col()) {}
    __device__ void fetch(int k0) {
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int k = k0 + rowmajor_k(r);
            v[r] = (k < k_end && col < cols) ? to_float(mat[k * cols + col]) : 0.0f;
        }
    }
};

// Filter-gradient A: rows are filter taps (i, j, c) m0.., k runs over output pixels (< p_end).
template <class T>
struct PatchTaps : RowMajorLoader {
    const T* x;
    Conv g;
    int p_end, c, di, dj;
    bool tap_ok;

    bool ones;   // the row after the last tap, when the bias gradient rides along: all ones

    __device__ PatchTaps(const T* x_, const Conv& g_, int m0, int p_end_, int with_bias)
        : x(x_), g(g_), p_end(p_end_) {
        int tap_k = m0 + rowmajor_col();
        int tap = tap_k / g.cin;
        tap_ok = tap_k < g.kh * g.kw * g.cin;
        ones = with_bias && tap_k == g.kh * g.kw * g.cin;
        c = tap_k % g.cin;
        di = (tap / g.kw) * g.dil_h - g.pad_t;
        dj = (tap % g.kw) * g.dil_w - g.pad_l;
    }
    __device__ void fetch(int k0) {
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int p = k0 + rowmajor_k(r);
            int ow = p % g.out_w, oh = (p / g.out_w) % g.out_h, image = p / (g.out_w * g.out_h);
            int ih = oh * g.sh + di, iw = ow * g.sw + dj;
            bool ok = tap_ok && p < p_end && inside(ih, g.in_h) && inside(iw, g.in_w);
            v[r] = ok ? to_float(x[((image * g.in_h + ih) * g.in_w + iw) * g.cin + c]) : (ones && p < p_end ? 1.0f : 0.0f);
        }
    }
};


// Input-gradient A: rows are the phase's dx pixels m0.., k runs over (qh, qw, co), co fastest.
template <class T>
struct GradGather : KMajorLoader {
    const T* dy;
    Conv g;
    Phase ph, pw;
    int k_count, row_image[SUBTILE], row_oh[SUBTILE], row_ow[SUBTILE];

    __device__ GradGather(const T* dy_, const Conv& g_, const Phase& ph_, const Phase& pw_, int m0)
        : dy(dy_), g(g_), ph(ph_), pw(pw_) {
        k_count = ph.taps * pw.taps * g.cout;
        int pixels = g.batch * ph.count * pw.count;
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int m = m0 + kmajor_row(r);
            row_image[r] = m < pixels ? m / (ph.count * pw.count) : -1;
            row_oh[r] = ph.base + (m / pw.count) % ph.count;
            row_ow[r] = pw.base + m % pw.count;
        }
    }
    __device__ void fetch(int k0) {
        int k = k0 + kmajor_k();
        int co = k % g.cout, q = k / g.cout;
        int dh = (q / pw.taps) * ph.shift, dw = (q % pw.taps) * pw.shift;
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int oh = row_oh[r] - dh, ow = row_ow[r] - dw;
            bool ok = k < k_count && row_image[r] >= 0 && inside(oh, g.out_h) && inside(ow, g.out_w);
            v[r] = ok ? to_float(dy[((row_image[r] * g.out_h + oh) * g.out_w + ow) * g.cout + co]) : 0.0f;
        }
    }
};

// Input-gradient B: element (k = (qh, qw, co), column c) is w[i, j, c, co] of the phase's taps.
template <class T>
struct FilterTaps : KMajorLoader {
    const T* w;
    Conv g;
    Phase ph, pw;
    int k_count, n0;

    __device__ FilterTaps(const T* w_, const Conv& g_, const Phase& ph_, const Phase& pw_, int n0_)
        : w(w_), g(g_), ph(ph_), pw(pw_), k_count(ph_.taps * pw_.taps * g_.cout), n0(n0_) {}
    __device__ void fetch(int k0) {
        int k = k0 + kmajor_k();
        int co = k % g.cout, q = k / g.cout;
        int i = ph.tap0 + (q / pw.taps) * ph.step, j = pw.tap0 + (q % pw.taps) * pw.step;
#pragma unroll
        for (int r = 0; r < SUBTILE; ++r) {
            int c = n0 + kmajor_row(r);
            v[r] = (k < k_count && c < g.cin) ? to_float(w[((i * g.kw + j) * g.cin + c) * g.cout + co]) : 0.0f;
        }
    }
};

// Split reductions end in their last block. Each block of a split reduction writes its split's
// partial result, then takes a ticket from its tile's counter; the block that arrives last
// (the counter reaching splits - 1) adds the splits of its tile in split order and resets the
// counter to 0 for the next launch. The atomic only counts arrivals: the sum's order is fixed,
// so the result is the same bits every run (and as a separate pass over the partials gave).
__device__ __forceinline__ bool last_split(int* __restrict__ counters, int tile, int splits) {
    __shared__ int last;
    __threadfence();                 // this block's partial is visible before its ticket
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(&counters[tile], 1) == splits - 1;
        if (last) counters[tile] = 0;
    }
    __syncthreads();
    if (last) __threadfence();       // ...and the other blocks' partials before it reads them
    return last;
}

// partial[0][i] + partial[1][i] + ..., read past the cache (other blocks wrote them).
__device__ __forceinline__ float sum_splits(const float* partial, int i, int count, int splits) {
    const volatile float* p = partial;
    float total = p[i];
    for (int s = 1; s < splits; ++s) total += p[s * count + i];
    return total;
}

// acc[i][j] += sum over k in [k_begin, k_end) of A[row ty + 16i][k] * B[k][column tx + 16j],
// k ascending. Every thread of the block must call it with the same range (it has barriers).
template <class LoaderA, class LoaderB>
__device__ __forceinline__ void gemm_tiles(LoaderA& a, LoaderB& b, int k_begin, int k_end,
                                           float (&acc)[SUBTILE][SUBTILE]) {
    __shared__ Tile a_tile[2], b_tile[2];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    if (k_begin >= k_end) return;
    a.fetch(k_begin);
    b.fetch(k_begin);
    a.store(a_tile[0]);
    b.store(b_tile[0]);
    __syncthreads();
    int buffer = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        bool more = k0 + TILE_K < k_end;
        if (more) {             // the next tile's global loads overlap this tile's multiply
            a.fetch(k0 + TILE_K);
            b.fetch(k0 + TILE_K);
        }
#pragma unroll
        for (int k = 0; k < TILE_K; ++k) {
            float av[SUBTILE], bv[SUBTILE];
#pragma unroll
            for (int i = 0; i < SUBTILE; ++i) av[i] = a_tile[buffer][k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < SUBTILE; ++j) bv[j] = b_tile[buffer][k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < SUBTILE; ++i)
#pragma unroll
                for (int j = 0; j < SUBTILE; ++j) acc[i][j] += av[i] * bv[j];
        }
        if (more) {             // the other buffer was last read before the previous barrier
            a.store(a_tile[buffer ^ 1]);
            b.store(b_tile[buffer ^ 1]);
            __syncthreads();
            buffer ^= 1;
        }
    }
}

template <class T> __global__ void __launch_bounds__(THREADS)
conv2d_forward(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ b,
               T* __restrict__ y, const T* __restrict__ gate, int has_bias, int has_gate, int act,
               float alpha, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
               int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    Conv g = GEOMETRY;
    int m0 = blockIdx.x * TILE_M, n0 = blockIdx.y * TILE_N;
    PatchRows<T> a(x, g, m0);
    MatrixRows<T> bm(w, g.cout, a.k_count, n0);
    float acc[SUBTILE][SUBTILE] = {};
    gemm_tiles(a, bm, 0, a.k_count, acc);
    int pixels = g.batch * g.out_h * g.out_w, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int i = 0; i < SUBTILE; ++i) {
        int m = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < SUBTILE; ++j) {
            int co = n0 + tx + 16 * j;
            if (m < pixels && co < g.cout)
                y[m * g.cout + co] = from_float<T>(epilogue(acc[i][j] + (has_bias ? b[co] : 0.0f),
                                                               has_gate ? gate : nullptr, m * g.cout + co, act, alpha));
        }
    }
}

// Grid: (ceil(max phase pixels / 64), ceil(cin / 64), sh * sw); b is read only if has_bias.
// Three blocks an SM: left alone ptxas takes ~104 registers here (two blocks an SM) on sm_70/80.
template <class T> __global__ void __launch_bounds__(THREADS, 3)
conv2d_backward_input(const T* __restrict__ dy, const T* __restrict__ w, const float* __restrict__ b,
                      T* __restrict__ dx, const T* __restrict__ gate, int has_bias, int has_gate,
                      int act, float alpha, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
                      int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    Conv g = GEOMETRY;
    Phase ph = phase_of(blockIdx.z / g.sw, g.in_h, g.pad_t, g.sh, g.dil_h, g.kh);
    Phase pw = phase_of(blockIdx.z % g.sw, g.in_w, g.pad_l, g.sw, g.dil_w, g.kw);
    int m0 = blockIdx.x * TILE_M, n0 = blockIdx.y * TILE_N;
    int pixels = g.batch * ph.count * pw.count;
    if (m0 >= pixels) return;   // the whole block: this phase has fewer pixels than the grid covers
    GradGather<T> a(dy, g, ph, pw, m0);
    FilterTaps<T> bm(w, g, ph, pw, n0);
    float acc[SUBTILE][SUBTILE] = {};
    gemm_tiles(a, bm, 0, a.k_count, acc);
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int i = 0; i < SUBTILE; ++i) {
        int m = m0 + ty + 16 * i;
        int image = m / (ph.count * pw.count);
        int h = ph.first + g.sh * ((m / pw.count) % ph.count), wc = pw.first + g.sw * (m % pw.count);
#pragma unroll
        for (int j = 0; j < SUBTILE; ++j) {
            int c = n0 + tx + 16 * j;
            int at = ((image * g.in_h + h) * g.in_w + wc) * g.cin + c;
            if (m < pixels && c < g.cin)
                dx[at] = from_float<T>(epilogue(acc[i][j] + (has_bias ? b[c] : 0.0f), has_gate ? gate : nullptr,
                                                   at, act, alpha));
        }
    }
}

// Grid: (ceil(rows / 64), ceil(cout / 64), splits), rows = kh*kw*cin (+ 1 with_bias: the bias
// gradient as a row of ones in im2col(x)); split z covers pixels [z * pixels_per_split,
// (z + 1) * pixels_per_split) and writes dw + z * rows*cout.
template <class T> __global__ void __launch_bounds__(THREADS)
conv2d_backward_filter(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ dw,
                       float* __restrict__ partial, int* __restrict__ counters, int pixels_per_split, int with_bias,
                       int batch, int in_h, int in_w, int cin, int out_h, int out_w,
                       int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    Conv g = GEOMETRY;
    int taps = g.kh * g.kw * g.cin + with_bias, pixels = g.batch * g.out_h * g.out_w;
    int m0 = blockIdx.x * TILE_M, n0 = blockIdx.y * TILE_N;
    int p_begin = blockIdx.z * pixels_per_split, p_end = min(p_begin + pixels_per_split, pixels);
    PatchTaps<T> a(x, g, m0, p_end, with_bias);
    MatrixRows<T> bm(dy, g.cout, p_end, n0);
    float acc[SUBTILE][SUBTILE] = {};
    gemm_tiles(a, bm, p_begin, p_end, acc);
    int splits = gridDim.z, count = taps * g.cout;
    float* out = splits > 1 ? partial + blockIdx.z * count : dw;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int i = 0; i < SUBTILE; ++i) {
        int tap = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < SUBTILE; ++j) {
            int co = n0 + tx + 16 * j;
            if (tap < taps && co < g.cout) out[tap * g.cout + co] = acc[i][j];
        }
    }
    if (splits == 1 || !last_split(counters, blockIdx.y * gridDim.x + blockIdx.x, splits)) return;
    for (int i = 0; i < SUBTILE; ++i) {
        int tap = m0 + ty + 16 * i;
        for (int j = 0; j < SUBTILE; ++j) {
            int co = n0 + tx + 16 * j;
            if (tap < taps && co < g.cout) dw[tap * g.cout + co] = sum_splits(partial, tap * g.cout + co, count, splits);
        }
    }
}

// Grid: (ceil(channels / 32), splits); split s sums rows [s * rows_per_split, (s + 1) *
// rows_per_split) of dy (rows, channels) into partial + s * channels (db itself when unsplit).
// Thread (column t % 32, group t / 32) sums every 8th row, then the 8 group sums are added in
// group order; the last split of a column block adds the splits in order.
template <class T> __global__ void __launch_bounds__(THREADS)
bias_backward(const T* __restrict__ dy, float* __restrict__ db, float* __restrict__ partial,
              int* __restrict__ counters, int rows, int channels, int rows_per_split) {
    __shared__ float sums[BIAS_ROWS][BIAS_COLS];
    int lane = threadIdx.x % BIAS_COLS, group = threadIdx.x / BIAS_COLS, splits = gridDim.y;
    int c = blockIdx.x * BIAS_COLS + lane;
    int begin = blockIdx.y * rows_per_split, end = min(begin + rows_per_split, rows);
    float sum = 0.0f;
    if (c < channels)
        for (int row = begin + group; row < end; row += BIAS_ROWS) sum += to_float(dy[row * channels + c]);
    sums[group][lane] = sum;
    __syncthreads();
    if (group == 0 && c < channels) {
        float total = sums[0][lane];
        for (int k = 1; k < BIAS_ROWS; ++k) total += sums[k][lane];
        (splits > 1 ? partial + blockIdx.y * channels : db)[c] = total;
    }
    if (splits == 1 || !last_split(counters, blockIdx.x, splits)) return;
    if (group == 0 && c < channels) db[c] = sum_splits(partial, c, channels, splits);
}

// out[i] = partial[0][i] + partial[1][i] + ...: the second pass of a split reduction whose kernel
// does not finish it itself (depthwise.cu's filter gradient).
extern "C" __global__ void __launch_bounds__(THREADS)
sum_splits(const float* __restrict__ partial, float* __restrict__ out, int count, int splits) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
        float total = partial[i];
        for (int s = 1; s < splits; ++s) total += partial[s * count + i];
        out[i] = total;
    }
}
