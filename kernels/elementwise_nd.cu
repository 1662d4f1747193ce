// elementwise_nd.cu - the kernels of the public gn.ops math: broadcasting elementwise ops, strided
// copies (transpose, broadcast_to) and reductions over the last axis, each templated on a functor.
//
// Kernels:
//   broadcast_<op>(a, b, out, n, ndim, meta)     out[i] = op(a[ia], b[ib]); op in add, subtract,
//       multiply, divide, power, maximum, minimum, equal, not_equal, less, less_equal, greater,
//       greater_equal, logical_and, logical_or, logical_xor (comparisons and logical ops write
//       1.0f / 0.0f; a logical op reads any non-zero, NaN included, as true, as NumPy)
//   broadcast_where(cond, a, b, out, n, ndim, meta)   out[i] = cond[ic] != 0 ? a[ia] : b[ib]
//   strided_copy(x, out, n, ndim, meta, base)    out[i] = x[base + ix]  (transpose, broadcast_to, slicing)
//   strided_scatter(dy, dx, n, ndim, meta, base) dx[base + ix] = dy[i]  (slicing's gradient; dx zeroed first)
//   take_forward(x, indices, out, n, axis_len, inner, count)    out[o, j, r] = x[o, indices[j], r]
//   take_backward(dy, order, starts, dx, n, axis_len, inner, count)   dx[o, k, r] = sum of dy[o, j, r] over
//       the j with indices[j] == k, in ascending j (the host sorts them: order, starts per k)
//   fill(out, n, value)                          out[i] = value (gn.ops.full, zeros, ones, *_like)
//   one_hot(labels, out, n, classes, inner)      out[o, c, r] = labels[o, r] == c ? 1 : 0 (int32 labels;
//       one outside [0, classes) gives a row of zeros, as Keras)
//   unary_<op>(x, out, n)                        out[i] = op(x[i]); op in negative, square, sqrt,
//       exp, log, log1p, abs, sign, erf (CUDA's erff, max 2 ulp of float32; cudasim: the C library's),
//       rsqrt (CUDA's rsqrtf, max 2 ulp; cudasim: 1 / sqrtf), logical_not (1.0f where x == 0)
//   reduce_<op>_rows(x, out, rows, cols, scale)  out[r] = scale * op over x[r, :]; op in sum, max, min
//   arg<op>_rows(x, out, rows, cols)             out[r] = first column holding the max / min (int32)
//
// Element types: every kernel is a template on T (float, bf16_t, fp16_t): inputs and outputs in T (comparisons write T 1 / 0, where's cond stays float32,
// arg reductions write int32), loaded as float, computed and reduced in float32 and rounded once
// where stored; copies move T unchanged.
// Layout: any. The host (gpunet/primitives/elementwise_nd.py) views out as a C-contiguous array of
// ndim <= 8 axes and passes meta = [out shape (ndim), then per input its element strides (ndim)];
// a broadcast axis has stride 0, and axes that are contiguous in every input are merged first.
// Reductions see the input as (rows, cols), the reduced axes moved last and contiguous.
// Threads: elementwise kernels run a grid-stride loop, one output element per thread per step, the
// inputs' offsets from the output index by division. Row kernels give each warp whole rows (blocks
// of 256 threads = 8 warps): lane l reads columns l, l + 32, ...; the warp combines its lanes with
// __shfl_xor_sync in a fixed order, so results are the same from run to run.
// NaN, as NumPy: maximum / minimum / max / min propagate a NaN; argmax / argmin name the first NaN.
// Backward needs: nothing here; gpunet/ops composes each op's gradient from these kernels.
// Gradients: every kernel writes (=) its output; take_backward gathers every share of a repeated
// index in a fixed order (no atomics: deterministic).

#include "common.cuh"   // GRID_STRIDE_LOOP, ROW_PER_WARP_LOOP, FULL_MASK

#define MAX_DIMS 8

// Offsets into up to three inputs of flat output index i, from the meta block described above.
template <int INPUTS>
__device__ __forceinline__ void offsets_of(int i, int ndim, const int* __restrict__ meta, int* off) {
    for (int k = 0; k < INPUTS; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
        int size = meta[d];
        int coord = i % size;
        i /= size;
        for (int k = 0; k < INPUTS; ++k) off[k] += coord * meta[(k + 1) * ndim + d];
    }
}

// -- binary functors --------------------------------------------------------------------------------

struct AddOp { __device__ static float apply(float a, float b) { return a + b; } };
struct SubtractOp { __device__ static float apply(float a, float b) { return a - b; } };
struct MultiplyOp { __device__ static float apply(float a, float b) { return a * b; } };
struct DivideOp { __device__ static float apply(float a, float b) { return a / b; } };
struct PowerOp { __device__ static float apply(float a, float b) { return powf(a, b); } };
struct MaximumOp { __device__ static float apply(float a, float b) { return (a != a || a >= b) ? a : b; } };
struct MinimumOp { __device__ static float apply(float a, float b) { return (a != a || a <= b) ? a : b; } };
struct EqualOp { __device__ static float apply(float a, float b) { return a == b ? 1.0f : 0.0f; } };
struct NotEqualOp { __device__ static float apply(float a, float b) { return a != b ? 1.0f : 0.0f; } };
struct LessOp { __device__ static float apply(float a, float b) { return a < b ? 1.0f : 0.0f; } };
struct LessEqualOp { __device__ static float apply(float a, float b) { return a <= b ? 1.0f : 0.0f; } };
struct GreaterOp { __device__ static float apply(float a, float b) { return a > b ? 1.0f : 0.0f; } };
struct GreaterEqualOp { __device__ static float apply(float a, float b) { return a >= b ? 1.0f : 0.0f; } };
struct LogicalAndOp { __device__ static float apply(float a, float b) { return (a != 0.0f && b != 0.0f) ? 1.0f : 0.0f; } };
struct LogicalOrOp { __device__ static float apply(float a, float b) { return (a != 0.0f || b != 0.0f) ? 1.0f : 0.0f; } };
struct LogicalXorOp { __device__ static float apply(float a, float b) { return ((a != 0.0f) != (b != 0.0f)) ? 1.0f : 0.0f; } };

template <class Op, class T>
__device__ __forceinline__ void broadcast_binary(const T* __restrict__ a, const T* __restrict__ b,
                                                 T* __restrict__ out, int n, int ndim,
                                                 const int* __restrict__ meta) {
    GRID_STRIDE_LOOP(i, n) {
        int off[2];
        offsets_of<2>(i, ndim, meta, off);
        out[i] = from_float<T>(Op::apply(to_float(a[off[0]]), to_float(b[off[1]])));
    }
}


template <class T> __global__ void broadcast_add(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<AddOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_subtract(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<SubtractOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_multiply(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<MultiplyOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_divide(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<DivideOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_power(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<PowerOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_maximum(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<MaximumOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_minimum(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<MinimumOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_equal(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<EqualOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_not_equal(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<NotEqualOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_less(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<LessOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_less_equal(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<LessEqualOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_greater(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<GreaterOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_greater_equal(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<GreaterEqualOp>(a, b, out, n, ndim, meta);
}

template <class T> __global__ void broadcast_logical_and(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<LogicalAndOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_logical_or(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<LogicalOrOp>(a, b, out, n, ndim, meta);
}
template <class T> __global__ void broadcast_logical_xor(const T* __restrict__ a, const T* __restrict__ b,
        T* __restrict__ out, int n, int ndim, const int* __restrict__ meta) {
    broadcast_binary<LogicalXorOp>(a, b, out, n, ndim, meta);
}

template <class T> __global__ void broadcast_where(const float* __restrict__ cond, const T* __restrict__ a,
                                                   const T* __restrict__ b, T* __restrict__ out, int n, int ndim,
                                                   const int* __restrict__ meta) {
    GRID_STRIDE_LOOP(i, n) {
        int off[3];
        offsets_of<3>(i, ndim, meta, off);
        out[i] = cond[off[0]] != 0.0f ? a[off[1]] : b[off[2]];
    }
}

template <class T> __global__ void strided_copy(const T* __restrict__ x, T* __restrict__ out, int n, int ndim,
                                                const int* __restrict__ meta, int base) {
    GRID_STRIDE_LOOP(i, n) {
        int off[1];
        offsets_of<1>(i, ndim, meta, off);
        out[i] = x[base + off[0]];   // base: the first selected element; strides may be negative
    }
}

// -- making tensors: full and one_hot -------------------------------------------------------------------

template <class T> __global__ void fill(T* __restrict__ out, int n, float value) {
    GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(value);
}

// labels seen as (outer, inner) and out as (outer, classes, inner): the classes axis sits where
// gn.ops.one_hot's `axis` puts it, so no transpose follows.
template <class T> __global__ void one_hot(const int* __restrict__ labels, T* __restrict__ out, int n, int classes,
                                           int inner) {
    GRID_STRIDE_LOOP(i, n) {
        int r = i % inner, c = (i / inner) % classes, o = i / (inner * classes);
        out[i] = from_float<T>(labels[o * inner + r] == c ? 1.0f : 0.0f);
    }
}

// -- unary functors ---------------------------------------------------------------------------------

struct NegativeOp { __device__ static float apply(float x) { return -x; } };
struct SquareOp { __device__ static float apply(float x) { return x * x; } };
struct SqrtOp { __device__ static float apply(float x) { return sqrtf(x); } };
struct ExpOp { __device__ static float apply(float x) { return expf(x); } };
struct LogOp { __device__ static float apply(float x) { return logf(x); } };
struct Log1pOp { __device__ static float apply(float x) { return log1pf(x); } };
struct AbsOp { __device__ static float apply(float x) { return fabsf(x); } };
struct ErfOp { __device__ static float apply(float x) { return erff(x); } };
struct RsqrtOp { __device__ static float apply(float x) { return rsqrtf(x); } };
struct LogicalNotOp { __device__ static float apply(float x) { return x == 0.0f ? 1.0f : 0.0f; } };
struct SignOp {
    __device__ static float apply(float x) { return x != x ? x : (float)((x > 0.0f) - (x < 0.0f)); }
};

template <class Op, class T>
__device__ __forceinline__ void unary(const T* __restrict__ x, T* __restrict__ out, int n) {
    GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(Op::apply(to_float(x[i])));
}


template <class T> __global__ void unary_negative(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<NegativeOp>(x, out, n);
}
template <class T> __global__ void unary_square(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<SquareOp>(x, out, n);
}
template <class T> __global__ void unary_sqrt(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<SqrtOp>(x, out, n);
}
template <class T> __global__ void unary_exp(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<ExpOp>(x, out, n);
}
template <class T> __global__ void unary_log(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<LogOp>(x, out, n);
}
template <class T> __global__ void unary_log1p(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<Log1pOp>(x, out, n);
}
template <class T> __global__ void unary_abs(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<AbsOp>(x, out, n);
}
template <class T> __global__ void unary_erf(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<ErfOp>(x, out, n);
}
template <class T> __global__ void unary_rsqrt(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<RsqrtOp>(x, out, n);
}
template <class T> __global__ void unary_logical_not(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<LogicalNotOp>(x, out, n);
}
template <class T> __global__ void unary_sign(const T* __restrict__ x, T* __restrict__ out, int n) {
    unary<SignOp>(x, out, n);
}

// -- reductions over rows, one warp per row -----------------------------------------------------------

struct SumOp {
    __device__ static float identity() { return 0.0f; }
    __device__ static float combine(float a, float b) { return a + b; }
};
struct MaxOp {
    __device__ static float identity() { return -INFINITY; }
    __device__ static float combine(float a, float b) { return (a != a || a >= b) ? a : b; }
};
struct MinOp {
    __device__ static float identity() { return INFINITY; }
    __device__ static float combine(float a, float b) { return (a != a || a <= b) ? a : b; }
};

template <class Op, class T>
__device__ __forceinline__ void reduce_rows(const T* __restrict__ x, T* __restrict__ out, int rows,
                                            int cols, float scale) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        const T* xr = x + (long long)row * cols;
        float acc = Op::identity();
        for (int j = lane; j < cols; j += 32) acc = Op::combine(acc, to_float(xr[j]));
        for (int offset = 16; offset > 0; offset >>= 1) acc = Op::combine(acc, __shfl_xor_sync(FULL_MASK, acc, offset));
        if (lane == 0) out[row] = from_float<T>(acc * scale);
    }
}


template <class T> __global__ void __launch_bounds__(256) reduce_sum_rows(const T* __restrict__ x, T* __restrict__ out,
        int rows, int cols, float scale) {
    reduce_rows<SumOp>(x, out, rows, cols, scale);
}
template <class T> __global__ void __launch_bounds__(256) reduce_max_rows(const T* __restrict__ x, T* __restrict__ out,
        int rows, int cols, float scale) {
    reduce_rows<MaxOp>(x, out, rows, cols, scale);
}
template <class T> __global__ void __launch_bounds__(256) reduce_min_rows(const T* __restrict__ x, T* __restrict__ out,
        int rows, int cols, float scale) {
    reduce_rows<MinOp>(x, out, rows, cols, scale);
}

// (value, column) pairs: the better value wins, a NaN beats any number, ties go to the lower column.
template <bool LARGEST>
__device__ __forceinline__ bool better(float a, int ai, float b, int bi) {
    if (a != a || b != b) return a != a && (b == b || ai < bi);
    if (a == b) return ai < bi;
    return LARGEST ? a > b : a < b;
}

template <bool LARGEST, class T>
__device__ __forceinline__ void arg_rows(const T* __restrict__ x, int* __restrict__ out, int rows, int cols) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        const T* xr = x + (long long)row * cols;
        float best = LARGEST ? -INFINITY : INFINITY;
        int where = cols;   // past the end: loses every tie against a real column
        for (int j = lane; j < cols; j += 32) {
            float v = to_float(xr[j]);
            if (better<LARGEST>(v, j, best, where)) best = v, where = j;
        }
        for (int offset = 16; offset > 0; offset >>= 1) {
            float other = __shfl_xor_sync(FULL_MASK, best, offset);
            int other_at = __shfl_xor_sync(FULL_MASK, where, offset);
            if (better<LARGEST>(other, other_at, best, where)) best = other, where = other_at;
        }
        if (lane == 0) out[row] = where < cols ? where : 0;
    }
}

template <class T> __global__ void __launch_bounds__(256)
argmax_rows(const T* __restrict__ x, int* __restrict__ out, int rows, int cols) {
    arg_rows<true, T>(x, out, rows, cols);
}
template <class T> __global__ void __launch_bounds__(256)
argmin_rows(const T* __restrict__ x, int* __restrict__ out, int rows, int cols) {
    arg_rows<false, T>(x, out, rows, cols);
}

// -- gathers and scatters: slicing and take -----------------------------------------------------------

template <class T> __global__ void strided_scatter(const T* __restrict__ dy, T* __restrict__ dx, int n, int ndim,
                                                   const int* __restrict__ meta, int base) {
    GRID_STRIDE_LOOP(i, n) {
        int off[1];
        offsets_of<1>(i, ndim, meta, off);
        dx[base + off[0]] = dy[i];   // basic indexing reaches each element of dx at most once: no atomics
    }
}

template <class T> __global__ void take_forward(const T* __restrict__ x, const int* __restrict__ indices,
                                                T* __restrict__ out, int n, int axis_len, int inner, int count) {
    GRID_STRIDE_LOOP(i, n) {
        int r = i % inner, j = (i / inner) % count, o = i / (inner * count);
        int k = indices[j];
        k = k < 0 ? k + axis_len : k;
        out[i] = x[((long long)o * axis_len + k) * inner + r];
    }
}

// One thread per element of dx: it adds the dy of every position j that took its index k, in
// ascending j (order[starts[k] .. starts[k + 1]) lists them, sorted by the host), so there are no
// atomics and the sum is the same, bit for bit, on every run (and NumPy's add.at order).
template <class T> __global__ void take_backward(const T* __restrict__ dy, const int* __restrict__ order,
                                                 const int* __restrict__ starts, T* __restrict__ dx, int n,
                                                 int axis_len, int inner, int count) {
    GRID_STRIDE_LOOP(i, n) {
        int r = i % inner, k = (i / inner) % axis_len, o = i / (inner * axis_len);
        float sum = 0.0f;
        for (int s = starts[k]; s < starts[k + 1]; ++s)
            sum += to_float(dy[((long long)o * count + order[s]) * inner + r]);
        dx[i] = from_float<T>(sum);
    }
}
