// dtype.cuh - the element types gpunet's kernels are instantiated for, and the two conversions
// every templated kernel uses: load a T as float, store a float as T.
//
//   float    float32, as it is
//   bf16_t   bfloat16 (ml_dtypes.bfloat16 on the host): 8 exponent bits, 7 stored mantissa bits
//   fp16_t   IEEE half (np.float16): 5 exponent bits, 10 mantissa bits, max 65504
//
// The 16-bit types are storage only (a struct around the bits, so nothing computes in them by
// accident): kernels compute in float registers and round once when they store, to nearest,
// ties to even, like __float2bfloat16_rn / __float2half_rn. The NumPy reference rounds at the
// same places (gpunet/primitives/precision.py). A templated kernel reads
//     template <class T> __global__ void k(const T* x, T* y, int n) { ... y[i] = from_float<T>(f(to_float(x[i]))); }
// and gpunet/backend/kernel_source.py instantiates it for float, bf16_t and fp16_t; the launch
// picks the instance from the dtype of the arrays passed for T.
#pragma once

struct bf16_t { unsigned short bits; };
struct fp16_t { unsigned short bits; };

#ifdef GPUNET_CUDASIM
__device__ __forceinline__ bf16_t float_to_bf16(float x) { return {cudasim::float_to_bf16_bits(x)}; }
__device__ __forceinline__ fp16_t float_to_fp16(float x) { return {cudasim::float_to_fp16_bits(x)}; }
__device__ __forceinline__ float fp16_to_float(fp16_t h) { return cudasim::fp16_bits_to_float(h.bits); }
#else
__device__ __forceinline__ bf16_t float_to_bf16(float x) {
    bf16_t h;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
#else   // sm_70 has no bf16 cvt: round the float's bits to nearest even (NaN stays a quiet NaN)
    unsigned u = __float_as_uint(x);
    h.bits = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((u >> 16) | 0x40u)
                                             : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
    return h;
}
__device__ __forceinline__ fp16_t float_to_fp16(float x) {
    fp16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
    return h;
}
__device__ __forceinline__ float fp16_to_float(fp16_t h) {
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h.bits));
    return x;
}
#endif
__device__ __forceinline__ float bf16_to_float(bf16_t h) { return __uint_as_float(unsigned(h.bits) << 16); }

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return bf16_to_float(x); }
__device__ __forceinline__ float to_float(fp16_t x) { return fp16_to_float(x); }

template <class T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) { return float_to_bf16(x); }
template <> __device__ __forceinline__ fp16_t from_float<fp16_t>(float x) { return float_to_fp16(x); }
