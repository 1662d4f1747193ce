// cast.cu - dtype conversions between float32 and the 16-bit types (bfloat16, float16): what
// mixed precision runs at layer boundaries (a float32 kernel cast to a bf16 layer's compute
// dtype, a bf16 output cast up for a float32 loss), and the pattern of a templated kernel.
//
// Kernels (T = float, bf16_t or fp16_t; kernel_source.py instantiates each template for all three):
//   cast_from_float<T>(x, y, n)   y[i] = T(x[i]): float32 -> T, rounded to nearest, ties to even
//   cast_to_float<T>(x, y, n)     y[i] = float(x[i]): T -> float32, exact
//   cast_between<T>(x, y, n)      bf16 <-> fp16 through float32 (y is the other 16-bit type, as raw
//                                 bits: one template parameter only; the launch passes y viewed
//                                 as uint16 and `to_bf16` says which way)
// Layout: flat buffers; a grid-stride loop, so any grid covers any n.
// The float32 intermediate of cast_between is exact for both 16-bit types, so bf16 -> fp16 rounds
// once, as a direct conversion would (fp16 overflow gives inf, bf16 underflow of fp16 gives 0).
#include "common.cuh"

template <class T>
__global__ void cast_from_float(const float* __restrict__ x, T* __restrict__ y, int n) {
    GRID_STRIDE_LOOP(i, n) y[i] = from_float<T>(x[i]);
}

template <class T>
__global__ void cast_to_float(const T* __restrict__ x, float* __restrict__ y, int n) {
    GRID_STRIDE_LOOP(i, n) y[i] = to_float(x[i]);
}

template <class T>
__global__ void cast_between(const T* __restrict__ x, unsigned short* __restrict__ y, int n, int to_bf16) {
    GRID_STRIDE_LOOP(i, n) {
        float v = to_float(x[i]);
        y[i] = to_bf16 ? float_to_bf16(v).bits : float_to_fp16(v).bits;
    }
}
