// activation.cu - elementwise activations and softmax over the last axis, forward and backward.
//
// Kernels:
//   relu_forward(x, y, n, max_value, has_max, negative_slope, threshold)
//       y = min(x, max_value) where x > threshold (and x >= 0), negative_slope * (x - threshold)
//       below the threshold, else 0 (Keras's general ReLU; the defaults give max(x, 0)).
//       Every activation here maps NaN to NaN, as the NumPy reference does.
//   relu_backward(dy, x, dx, n, max_value, has_max, negative_slope, threshold)   needs x
//   leaky_relu_forward(x, y, n, negative_slope)          y = x > 0 ? x : negative_slope * x
//   leaky_relu_backward(dy, x, dx, n, negative_slope)    needs x
//   elu_forward(x, y, n, alpha)                          y = x > 0 ? x : alpha * expm1(x)
//   elu_backward(dy, x, dx, n, alpha)                    needs x
//   sigmoid_forward(x, y, n)                             y = 1 / (1 + exp(-x)), no overflow
//   sigmoid_backward(dy, y, dx, n)                       needs y: dx = dy * y * (1 - y)
//   tanh_forward(x, y, n)
//   tanh_backward(dy, y, dx, n)                          needs y: dx = dy * (1 - y^2)
//   <op>_forward(x, y, n), <op>_backward(dy, x, dx, n)    needs x: dx = dy * op'(x), for op in
//       gelu (exact, erf), gelu_approximate (tanh form), silu (x * sigmoid(x)), softplus,
//       softsign, hard_sigmoid (clip(x / 6 + 0.5, 0, 1), Keras 3), hard_silu (x * hard_sigmoid(x)),
//       mish (x * tanh(softplus(x))), selu, exponential: one template pair (map_forward /
//       map_backward) over a functor per op that gives f(x) and f'(x) (Keras 3's definitions).
//   prelu_forward(x, alpha, y, n, alpha_size)    y = x > 0 ? x : alpha[i % alpha_size] * x
//   prelu_backward(dy, x, alpha, dx, alpha_terms, n, alpha_size)   needs x: dx = dy or alpha * dy;
//       alpha_terms = x > 0 ? 0 : dy * x, which the host sums per alpha with conv.cu's bias_backward
//       (the batch and shared axes moved in front, so element i uses alpha[i % alpha_size]).
//   fused_activation_backward(dy, y, dx, n, act, alpha) dx = dy * act'(x) read from y (epilogue.cuh)
//   softmax_forward(x, y, rows, cols)                    y = exp(x - max) / sum(exp(x - max)) per row
//   softmax_backward(dy, y, dx, rows, cols)              needs y: dx = y * (dy - sum(dy * y)) per row
//
// Element types: every kernel is a template on T (float, bf16_t, fp16_t): x, y, dy, dx in T,
// loaded as float, computed in float32 registers, rounded once where stored. PReLU's alpha and
// alpha_terms stay float32 (a weight and its gradient's terms); softmax sums in float32.
// Layout: any; the elementwise kernels read flat buffers of n elements. Softmax sees the
// tensor as (rows, cols), the softmax axis last and contiguous (NHWC channels for a 4-D input).
// Threads: elementwise kernels run a grid-stride loop, one element per thread per step.
// Softmax kernels take blocks of 256 threads = 8 warps and give each warp whole rows (grid-stride
// over rows): lane l reads columns l, l + 32, ...; the row max and sums are warp reductions with
// __shfl_xor_sync, so every lane holds the result and the order of the additions is fixed.
// Backward needs what the list above says: x for relu/leaky_relu/elu and the templated ops,
// y for sigmoid, tanh and softmax.
// Gradients: every kernel writes (=) its output; nothing accumulates.

#include "common.cuh"     // GRID_STRIDE_LOOP, ROW_PER_WARP_LOOP, warp_sum, warp_max
#include "epilogue.cuh"   // *_value, activation_gradient: the same expressions fused kernels use

// -- ReLU in Keras's general form -------------------------------------------------------------

template <class T> __global__ void relu_forward(const T* __restrict__ x, T* __restrict__ y, int n,
                                        float max_value, int has_max, float negative_slope, float threshold) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]);
        float out = v > threshold ? v : 0.0f;
        out = fmaxf(out, 0.0f);
        if (has_max) out = fminf(out, max_value);
        if (negative_slope != 0.0f) out = out - negative_slope * fmaxf(threshold - v, 0.0f);
        y[i] = from_float<T>(v != v ? v : out);   // NaN stays NaN (fmaxf / fminf and the comparisons drop it)
    }
}

template <class T> __global__ void relu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                         T* __restrict__ dx, int n, float max_value, int has_max,
                                         float negative_slope, float threshold) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]), g = to_float(dy[i]);
        bool passes = v > threshold && v > 0.0f && (!has_max || v < max_value);
        // A multiply by 0 or 1, as the reference does, so an inf or NaN in dy behaves alike.
        float out = g * (passes ? 1.0f : 0.0f);
        if (negative_slope != 0.0f) out = out + g * (negative_slope * (v < threshold ? 1.0f : 0.0f));
        dx[i] = from_float<T>(out);
    }
}

// -- leaky ReLU, ELU ---------------------------------------------------------------------------

template <class T> __global__ void leaky_relu_forward(const T* __restrict__ x, T* __restrict__ y, int n,
                                              float negative_slope) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(leaky_relu_value(to_float(x[i]), negative_slope));
}

template <class T> __global__ void leaky_relu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                               T* __restrict__ dx, int n, float negative_slope) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>(to_float(dy[i]) * (to_float(x[i]) > 0.0f ? 1.0f : negative_slope));
}

template <class T> __global__ void elu_forward(const T* __restrict__ x, T* __restrict__ y, int n, float alpha) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(elu_value(to_float(x[i]), alpha));   // NaN stays NaN
}

template <class T> __global__ void elu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                        T* __restrict__ dx, int n, float alpha) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]);
        dx[i] = from_float<T>(to_float(dy[i]) * (v > 0.0f ? 1.0f : alpha * expf(fminf(v, 0.0f))));
    }
}

// -- sigmoid, tanh -----------------------------------------------------------------------------

template <class T> __global__ void sigmoid_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(sigmoid_value(to_float(x[i])));   // no overflow for large |x|
}

template <class T> __global__ void sigmoid_backward(const T* __restrict__ dy, const T* __restrict__ y,
                                            T* __restrict__ dx, int n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(y[i]);
        dx[i] = from_float<T>(to_float(dy[i]) * v * (1.0f - v));
    }
}

template <class T> __global__ void tanh_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(tanhf(to_float(x[i])));
}

// dx = dy * act'(x) from the output y of a layer whose kernel applied the activation (act, alpha:
// epilogue.cuh's codes), when no neighbouring kernel could fold it.
template <class T> __global__ void fused_activation_backward(const T* __restrict__ dy, const T* __restrict__ y,
                                                     T* __restrict__ dx, int n, int act, float alpha) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>(activation_gradient(to_float(dy[i]), to_float(y[i]), act, alpha));
}

template <class T> __global__ void tanh_backward(const T* __restrict__ dy, const T* __restrict__ y,
                                         T* __restrict__ dx, int n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(y[i]);
        dx[i] = from_float<T>(to_float(dy[i]) * (1.0f - v * v));
    }
}

// -- the templated family: one functor per op, f(x) and its derivative f'(x) -----------------

template <class Op, class T> __device__ __forceinline__ void map_forward(const T* __restrict__ x,
                                                                         T* __restrict__ y, int n) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(Op::f(to_float(x[i])));
}

template <class Op, class T> __device__ __forceinline__ void map_backward(const T* __restrict__ dy,
                                                                          const T* __restrict__ x,
                                                                          T* __restrict__ dx, int n) {
    GRID_STRIDE_LOOP(i, n) dx[i] = from_float<T>(to_float(dy[i]) * Op::df(to_float(x[i])));
}

__device__ __forceinline__ float stable_sigmoid(float v) {
    float e = expf(-fabsf(v));
    return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// log(1 + exp(v)) without overflow: max(v, 0) + log1p(exp(-|v|)).
__device__ __forceinline__ float stable_softplus(float v) { return fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v))); }

struct Gelu {   // 0.5 x (1 + erf(x / sqrt 2)); f' = Phi(x) + x phi(x)
    static __device__ __forceinline__ float f(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678f)); }
    static __device__ __forceinline__ float df(float v) {
        return 0.5f * (1.0f + erff(v * 0.70710678f)) + v * 0.39894228f * expf(-0.5f * v * v);
    }
};

struct GeluApproximate {   // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    static __device__ __forceinline__ float f(float v) {
        return 0.5f * v * (1.0f + tanhf(0.79788456f * (v + 0.044715f * v * v * v)));
    }
    static __device__ __forceinline__ float df(float v) {
        if (fabsf(v) > 10.0f) return v > 0.0f ? 1.0f : 0.0f;   // saturated; avoids 0 * inf at huge |x|
        float t = tanhf(0.79788456f * (v + 0.044715f * v * v * v));
        return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * 0.79788456f * (1.0f + 0.134145f * v * v);
    }
};

struct Silu {   // x sigmoid(x); f' = s (1 + x (1 - s))
    static __device__ __forceinline__ float f(float v) { return v * stable_sigmoid(v); }
    static __device__ __forceinline__ float df(float v) {
        float s = stable_sigmoid(v);
        return s * (1.0f + v * (1.0f - s));
    }
};

struct Softplus {
    static __device__ __forceinline__ float f(float v) { return v != v ? v : stable_softplus(v); }
    static __device__ __forceinline__ float df(float v) { return stable_sigmoid(v); }
};

struct Softsign {
    static __device__ __forceinline__ float f(float v) { return v / (1.0f + fabsf(v)); }
    static __device__ __forceinline__ float df(float v) {
        float d = 1.0f + fabsf(v);
        return 1.0f / (d * d);
    }
};

struct HardSigmoid {   // Keras 3: relu6(x + 3) / 6 = 0 below -3, 1 above 3, x / 6 + 0.5 between
    static __device__ __forceinline__ float f(float v) {
        return v != v ? v : fminf(fmaxf(v * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
    }
    static __device__ __forceinline__ float df(float v) { return v > -3.0f && v < 3.0f ? 1.0f / 6.0f : 0.0f; }
};

struct HardSilu {   // x hard_sigmoid(x); f' = hard_sigmoid(x) + x / 6 inside (-3, 3)
    static __device__ __forceinline__ float f(float v) { return v * HardSigmoid::f(v); }
    static __device__ __forceinline__ float df(float v) {
        return v >= 3.0f ? 1.0f : v <= -3.0f ? 0.0f : v * (1.0f / 3.0f) + 0.5f;
    }
};

struct Mish {   // x tanh(softplus(x)); f' = t + x sigmoid(x) (1 - t^2)
    static __device__ __forceinline__ float f(float v) { return v * tanhf(stable_softplus(v)); }
    static __device__ __forceinline__ float df(float v) {
        float t = tanhf(stable_softplus(v));
        return t + v * stable_sigmoid(v) * (1.0f - t * t);
    }
};

struct Selu {   // scale * elu(x, alpha) with Keras's constants
    static __device__ __forceinline__ float f(float v) {
        return 1.05070098f * (v > 0.0f ? v : 1.67326324f * expm1f(v));
    }
    static __device__ __forceinline__ float df(float v) {
        return 1.05070098f * (v > 0.0f ? 1.0f : 1.67326324f * expf(fminf(v, 0.0f)));
    }
};

struct Exponential {
    static __device__ __forceinline__ float f(float v) { return expf(v); }
    static __device__ __forceinline__ float df(float v) { return expf(v); }
};

// The kernel parser reads each kernel's signature from the text, so they are written out.
template <class T> __global__ void gelu_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Gelu>(x, y, n);
}
template <class T> __global__ void gelu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                         T* __restrict__ dx, int n) {
    map_backward<Gelu>(dy, x, dx, n);
}
template <class T> __global__ void gelu_approximate_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<GeluApproximate>(x, y, n);
}
template <class T> __global__ void gelu_approximate_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                                     T* __restrict__ dx, int n) {
    map_backward<GeluApproximate>(dy, x, dx, n);
}
template <class T> __global__ void silu_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Silu>(x, y, n);
}
template <class T> __global__ void silu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                         T* __restrict__ dx, int n) {
    map_backward<Silu>(dy, x, dx, n);
}
template <class T> __global__ void softplus_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Softplus>(x, y, n);
}
template <class T> __global__ void softplus_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                             T* __restrict__ dx, int n) {
    map_backward<Softplus>(dy, x, dx, n);
}
template <class T> __global__ void softsign_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Softsign>(x, y, n);
}
template <class T> __global__ void softsign_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                             T* __restrict__ dx, int n) {
    map_backward<Softsign>(dy, x, dx, n);
}
template <class T> __global__ void hard_sigmoid_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<HardSigmoid>(x, y, n);
}
template <class T> __global__ void hard_sigmoid_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                                 T* __restrict__ dx, int n) {
    map_backward<HardSigmoid>(dy, x, dx, n);
}
template <class T> __global__ void hard_silu_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<HardSilu>(x, y, n);
}
template <class T> __global__ void hard_silu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                              T* __restrict__ dx, int n) {
    map_backward<HardSilu>(dy, x, dx, n);
}
template <class T> __global__ void mish_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Mish>(x, y, n);
}
template <class T> __global__ void mish_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                         T* __restrict__ dx, int n) {
    map_backward<Mish>(dy, x, dx, n);
}
template <class T> __global__ void selu_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Selu>(x, y, n);
}
template <class T> __global__ void selu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                         T* __restrict__ dx, int n) {
    map_backward<Selu>(dy, x, dx, n);
}
template <class T> __global__ void exponential_forward(const T* __restrict__ x, T* __restrict__ y, int n) {
    map_forward<Exponential>(x, y, n);
}
template <class T> __global__ void exponential_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                                T* __restrict__ dx, int n) {
    map_backward<Exponential>(dy, x, dx, n);
}

// -- PReLU: a learned slope per element of alpha ------------------------------------------------

template <class T> __global__ void prelu_forward(const T* __restrict__ x, const float* __restrict__ alpha,
                                         T* __restrict__ y, int n, int alpha_size) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]);
        y[i] = from_float<T>(v > 0.0f ? v : alpha[i % alpha_size] * v);
    }
}

template <class T> __global__ void prelu_backward(const T* __restrict__ dy, const T* __restrict__ x,
                                          const float* __restrict__ alpha, T* __restrict__ dx,
                                          float* __restrict__ alpha_terms, int n, int alpha_size) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]), g = to_float(dy[i]);
        bool positive = v > 0.0f;
        dx[i] = from_float<T>(positive ? g : alpha[i % alpha_size] * g);
        alpha_terms[i] = positive ? 0.0f : g * v;
    }
}

// -- softmax over the last axis: one warp per row ----------------------------------------------

template <class T> __global__ void __launch_bounds__(256)
softmax_forward(const T* __restrict__ x, T* __restrict__ y, int rows, int cols) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        const T* xr = x + (long long)row * cols;
        T* yr = y + (long long)row * cols;
        float row_max = -INFINITY;
        for (int j = lane; j < cols; j += 32) row_max = fmaxf(row_max, to_float(xr[j]));
        row_max = warp_max(row_max);   // subtracted so that large logits cannot overflow exp
        float total = 0.0f;
        for (int j = lane; j < cols; j += 32) total += expf(to_float(xr[j]) - row_max);
        total = warp_sum(total);
        for (int j = lane; j < cols; j += 32) yr[j] = from_float<T>(expf(to_float(xr[j]) - row_max) / total);
    }
}

template <class T> __global__ void __launch_bounds__(256)
softmax_backward(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                 int rows, int cols) {
    int lane = threadIdx.x % 32;
    ROW_PER_WARP_LOOP(row, rows) {
        long long base = (long long)row * cols;
        float dot = 0.0f;
        for (int j = lane; j < cols; j += 32) dot += to_float(dy[base + j]) * to_float(y[base + j]);
        dot = warp_sum(dot);
        for (int j = lane; j < cols; j += 32)
            dx[base + j] = from_float<T>(to_float(y[base + j]) * (to_float(dy[base + j]) - dot));
    }
}
