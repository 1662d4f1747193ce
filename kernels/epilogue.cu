// epilogue.cu - a float32 product finished in the layer's element type: what a 16-bit layer runs
// after a tensor-core product (tensorcore*.py return float32) instead of a cast and an activation.
//
// Kernels (T = float, bf16_t or fp16_t; one template, instantiated for all three):
//   bias_activation_store<T>(acc, bias, y, gate, n, channels, has_bias, has_gate, act, alpha)
//       forward:  y[i] = T(act(acc[i] + bias[i % channels]))            (has_gate = 0)
//       backward: y[i] = T(acc[i] * act'(z) read from gate[i])          (has_gate = 1; the gate is
//                 the folded activation's output, in T, as epilogue.cuh's activation_gradient reads it)
//       act, alpha: epilogue.cuh's codes (0 = none: a plain bias add and cast).
// Layout: acc, y and gate are (rows, channels) row-major, flat: a channels-last tensor with every
// axis but the last folded into rows (a Dense output (N, units), a Conv2D output (N, H, W, C)).
// acc and bias are float32; the sum, the activation and its gradient are computed in float32 and
// rounded once, where y is stored (a float instance writes the float32 value itself).
// Threads: a grid-stride loop, one element per thread per step. Writes (=); reads acc once.
#include "common.cuh"     // GRID_STRIDE_LOOP; dtype.cuh
#include "epilogue.cuh"   // store_epilogue: the same activation expressions as the float32 kernels

template <class T>
__global__ void bias_activation_store(const float* __restrict__ acc, const float* __restrict__ bias,
                                      T* __restrict__ y, const T* __restrict__ gate, int n, int channels,
                                      int has_bias, int has_gate, int act, float alpha) {
    GRID_STRIDE_LOOP(i, n) {
        float v = has_bias ? acc[i] + bias[i % channels] : acc[i];
        store_epilogue(y, i, v, has_gate ? gate : (const T*)nullptr, act, alpha);
    }
}
