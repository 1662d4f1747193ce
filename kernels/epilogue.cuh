// epilogue.cuh - the elementwise activations a producing kernel applies to its own outputs
// (included by activation.cu, epilogue.cu, gemm.cu, tc_gemm.cu, conv.cu, pool.cu, norm.cu; it
// defines no kernels of its own). Kernels written later reuse these functions for the same fusion.
//
// act codes (gpunet/primitives/epilogue.py holds the same table):
//   ACT_NONE 0, ACT_RELU 1 (max(z, 0)), ACT_LEAKY_RELU 2 (slope alpha), ACT_ELU 3 (alpha),
//   ACT_SIGMOID 4, ACT_TANH 5.
//
// epilogue(v, gate, index, act, alpha): what a kernel writes: activate, or activation_gradient
//     with gate[index] when a gate is given. The gate is float or a 16-bit type G (a layer's
//     output in its compute dtype), read as float; v and the result are float32 registers.
// store_epilogue(out, index, v, gate, act, alpha): out[index] = T(epilogue(...)): a float32
//     accumulator finished and rounded once to the output's element type T (float, bf16_t,
//     fp16_t; for float exactly the plain `out[index] = epilogue(...)`).
// activate(z, act, alpha): the forward epilogue, y = act(z), the very expressions of
//     activation.cu's kernels (which call it), so a fused layer gives the unfused bits.
// activation_gradient(g, y, act, alpha): the backward fold, dz = g * act'(z) computed from the
//     activation's OUTPUT y, which is what a fused forward keeps (z is never written):
//     ReLU: y > 0 exactly where z > 0; leaky ReLU (alpha >= 0): likewise; sigmoid: y (1 - y);
//     tanh: 1 - y^2 - each the unfused kernel's expression, bit-identical. ELU (alpha > 0):
//     alpha * exp(z) = y + alpha where z <= 0, equal to the unfused expf form within 2 ulp.
//     A kernel that writes d(loss)/d(y) of a layer whose activation it folds returns this
//     instead, and the layer skips its activation's backward launch.

#pragma once
#include "dtype.cuh"   // to_float, from_float<T>: a 16-bit gate read, a T output stored

#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_ELU 3
#define ACT_SIGMOID 4
#define ACT_TANH 5

// One activation each: activation.cu's forward kernels call these directly.
__device__ __forceinline__ float relu_value(float z) { return z > 0.0f ? z : (z != z ? z : 0.0f); }   // NaN stays
__device__ __forceinline__ float leaky_relu_value(float z, float slope) { return z > 0.0f ? z : z * slope; }
__device__ __forceinline__ float elu_value(float z, float alpha) {
    return z > 0.0f ? z : alpha * expm1f(z);   // NaN takes this branch and stays NaN
}
__device__ __forceinline__ float sigmoid_value(float z) {
    float e = expf(-fabsf(z));   // <= 1, so neither branch overflows
    return z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

__device__ __forceinline__ float activate(float z, int act, float alpha) {
    switch (act) {
        case ACT_RELU: return relu_value(z);
        case ACT_LEAKY_RELU: return leaky_relu_value(z, alpha);
        case ACT_ELU: return elu_value(z, alpha);
        case ACT_SIGMOID: return sigmoid_value(z);
        case ACT_TANH: return tanhf(z);
        default: return z;
    }
}

__device__ __forceinline__ float activation_gradient(float g, float y, int act, float alpha);

// What a producing kernel writes for its output value v at flat index `index`: act(v), or,
// with a gate (the folded layer's output, same layout, of element type G), the gradient gated by act'.
template <class G>
__device__ __forceinline__ float epilogue(float v, const G* __restrict__ gate, int index, int act, float alpha) {
    return gate ? activation_gradient(v, to_float(gate[index]), act, alpha) : activate(v, act, alpha);
}

// The same, stored: the one rounding of a float32 accumulator to the output's type T.
template <class T, class G>
__device__ __forceinline__ void store_epilogue(T* __restrict__ out, int index, float v, const G* __restrict__ gate,
                                               int act, float alpha) {
    out[index] = from_float<T>(epilogue(v, gate, index, act, alpha));
}

__device__ __forceinline__ float activation_gradient(float g, float y, int act, float alpha) {
    switch (act) {
        case ACT_RELU: return g * (y > 0.0f ? 1.0f : 0.0f);   // a multiply, so inf / NaN in g behave alike
        case ACT_LEAKY_RELU: return g * (y > 0.0f ? 1.0f : alpha);
        case ACT_ELU: return g * (y > 0.0f ? 1.0f : y + alpha);
        case ACT_SIGMOID: return g * y * (1.0f - y);
        case ACT_TANH: return g * (1.0f - y * y);
        default: return g;
    }
}
