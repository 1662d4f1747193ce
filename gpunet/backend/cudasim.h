// cudasim.h - the CUDA C that gpunet's kernels use, for the CPU.
//
// g++ force-includes this header (-include cudasim.h) before a kernels/*.cu file, so the
// very same source that NVRTC compiles for the GPU builds into a shared library here.
// The scheduling (which CUDA thread runs when, barriers, warp exchanges) lives in
// cudasim_runtime.h, built once into its own library; a kernel library only reaches it
// through the function table in `cudasim::Thread`. Exactly one CUDA thread runs at any
// moment in the whole process, so:
//   * __shared__ is `static`: blocks run one at a time, so a function-static array is the
//     block's shared memory. It is not cleared between blocks (like uninitialised shared
//     memory on a GPU). Only static sizes: dynamic `extern __shared__` is not supported.
//   * atomics are plain read-modify-write: nothing can interleave with them.
//   * threadIdx/blockIdx/blockDim/gridDim read the running thread's record, which the
//     runtime points `gpunet_cudasim_current` at before it hands control to a thread.
// Supplied here: dim3/uint3, the index variables, __global__/__device__/__host__/
// __forceinline__/__noinline__/__restrict__/__launch_bounds__/__shared__/__constant__,
// __syncthreads, __syncwarp, __shfl_sync/_up_/_down_/_xor_sync, __ballot_sync, __any_sync,
// __all_sync, atomicAdd/Sub/Max/Min/Exch/CAS (the overloads CUDA has: no float atomicMax),
// __ldg, __threadfence, the float intrinsics (__expf, __logf, __fdividef, rsqrtf, ...),
// bit casts (__float_as_uint, ...), __popc/__clz/__ffs, min/max overloads, warpSize,
// INFINITY, NAN, FLT_MAX (from <cmath>/<cfloat>; NVRTC gets them from nvrtc_prelude.h).
// A kernel that builds here but not with NVRTC (or the other way) fails tests/test_nvrtc.py.
#pragma once
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)
#define GPUNET_CUDASIM 1   // kernels/mma.cuh picks the emulated PTX wrappers by this
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cudasim {
// Kinds of warp-wide operation the runtime resolves once every lane of a warp has posted.
enum WarpKind : int { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, BALLOT, ANY, ALL, SYNCWARP, COLLECTIVE };

// A warp-collective instruction (mma.sync, ldmatrix; cudasim_tensor.h): every lane posts a
// pointer to its own Collective (on its stack, alive while it waits) as the value of a
// COLLECTIVE warp op, and once all 32 lanes have posted, the runtime calls the first lane's
// `resolve` with the 32 records (lane order; null for a lane not in the warp). `resolve`
// reads every lane's operands and writes every lane's results into the records; it returns
// null, or a message that fails the launch (a misaligned address, a partial warp).
struct Collective {
    const char* (*resolve)(Collective* const* lanes);
    const char* name;   // the PTX instruction, for deadlock reports
};

struct Ops {
    void (*syncthreads)(const char* file, int line);
    uint64_t (*warp)(int kind, unsigned mask, uint64_t value, int arg, int width);
};

// One CUDA thread as its kernel sees it. The layout is shared with cudasim_runtime.h.
struct Thread {
    uint3 threadIdx, blockIdx;
    dim3 blockDim, gridDim;
    const Ops* ops;
    unsigned long long block_serial;   // (launch << 40) | (block + 1): unique per block of every launch
};

constexpr int ABI_VERSION = 2;
}  // namespace cudasim

#ifndef CUDASIM_RUNTIME   // cudasim_runtime.h needs only the records above
// One kernel library is one translation unit (the generated wrapper includes the .cu), so
// defining the pointer here defines it once per library.
extern "C" {
__attribute__((visibility("default"))) cudasim::Thread* gpunet_cudasim_current = nullptr;
__attribute__((visibility("default"))) int gpunet_cudasim_abi = cudasim::ABI_VERSION;
}

#define threadIdx (gpunet_cudasim_current->threadIdx)
#define blockIdx (gpunet_cudasim_current->blockIdx)
#define blockDim (gpunet_cudasim_current->blockDim)
#define gridDim (gpunet_cudasim_current->gridDim)
constexpr int warpSize = 32;

// The call site identifies the barrier, so threads waiting at different __syncthreads
// (divergent control flow) are reported instead of being let through.
#define __syncthreads() (gpunet_cudasim_current->ops->syncthreads(__FILE__, __LINE__))

namespace cudasim {
template <class T>
inline T warp_op(WarpKind kind, unsigned mask, T value, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp values are at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = gpunet_cudasim_current->ops->warp(kind, mask, bits, arg, width);
    T result;
    std::memcpy(&result, &bits, sizeof(T));
    return result;
}
}  // namespace cudasim

template <class T> inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
    return cudasim::warp_op(cudasim::SHFL_IDX, mask, var, src_lane, width);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return cudasim::warp_op(cudasim::SHFL_UP, mask, var, int(delta), width);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return cudasim::warp_op(cudasim::SHFL_DOWN, mask, var, int(delta), width);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
    return cudasim::warp_op(cudasim::SHFL_XOR, mask, var, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return cudasim::warp_op(cudasim::BALLOT, mask, unsigned(predicate != 0), 0, warpSize);
}
inline int __any_sync(unsigned mask, int predicate) {
    return cudasim::warp_op(cudasim::ANY, mask, int(predicate != 0), 0, warpSize);
}
inline int __all_sync(unsigned mask, int predicate) {
    return cudasim::warp_op(cudasim::ALL, mask, int(predicate != 0), 0, warpSize);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    cudasim::warp_op(cudasim::SYNCWARP, mask, 0, 0, warpSize);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// Atomics: the overloads CUDA declares, so a kernel that builds here also builds with NVRTC.
#define CUDASIM_ATOMIC(name, T, expr)                              \
    inline T name(T* address, T val) { T old = *address; *address = (expr); return old; }
#define CUDASIM_ATOMIC_INTS(name, expr)                            \
    CUDASIM_ATOMIC(name, int, expr)                                \
    CUDASIM_ATOMIC(name, unsigned, expr)                           \
    CUDASIM_ATOMIC(name, unsigned long long, expr)
CUDASIM_ATOMIC_INTS(atomicAdd, old + val)
CUDASIM_ATOMIC(atomicAdd, float, old + val)
CUDASIM_ATOMIC(atomicAdd, double, old + val)
CUDASIM_ATOMIC(atomicSub, int, old - val)
CUDASIM_ATOMIC(atomicSub, unsigned, old - val)
CUDASIM_ATOMIC_INTS(atomicMax, old > val ? old : val)
CUDASIM_ATOMIC(atomicMax, long long, old > val ? old : val)
CUDASIM_ATOMIC_INTS(atomicMin, old < val ? old : val)
CUDASIM_ATOMIC(atomicMin, long long, old < val ? old : val)
CUDASIM_ATOMIC_INTS(atomicExch, val)
CUDASIM_ATOMIC(atomicExch, float, val)
#undef CUDASIM_ATOMIC_INTS
#undef CUDASIM_ATOMIC
template <class T> inline T atomicCAS(T* address, T compare, T val) {
    static_assert(std::is_integral_v<T>, "atomicCAS takes int, unsigned or unsigned long long");
    T old = *address;
    if (old == compare) *address = val;
    return old;
}

template <class T> inline T __ldg(const T* p) { return *p; }

// Float intrinsics: the fast GPU versions are approximations; here they are the libm calls.
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }

template <class To, class From> inline To cudasim_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From));
    To r;
    std::memcpy(&r, &v, sizeof(To));
    return r;
}
inline unsigned __float_as_uint(float x) { return cudasim_bit_cast<unsigned>(x); }
inline int __float_as_int(float x) { return cudasim_bit_cast<int>(x); }
inline float __uint_as_float(unsigned x) { return cudasim_bit_cast<float>(x); }
inline float __int_as_float(int x) { return cudasim_bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return cudasim_bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return cudasim_bit_cast<double>(x); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// CUDA's min/max overloads, mixed signed/unsigned included so calls resolve as in NVRTC.
#define CUDASIM_MINMAX(R, A, B)                                    \
    inline R min(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
    inline R max(A a, B b) { return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); }
CUDASIM_MINMAX(int, int, int)
CUDASIM_MINMAX(unsigned, unsigned, unsigned)
CUDASIM_MINMAX(unsigned, int, unsigned)
CUDASIM_MINMAX(unsigned, unsigned, int)
CUDASIM_MINMAX(long long, long long, long long)
CUDASIM_MINMAX(unsigned long long, unsigned long long, unsigned long long)
#undef CUDASIM_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// The generated wrapper ends with CUDASIM_ENTRY(name) per kernel: an entry point that
// unpacks `void** args` as cuLaunchKernel does (args[i] points at the i-th argument's value).
namespace cudasim {
template <class... P, std::size_t... I>
inline void invoke(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}
template <class... P> inline void invoke(void (*kernel)(P...), void** args) {
    invoke(kernel, args, std::index_sequence_for<P...>{});
}
}  // namespace cudasim
#define CUDASIM_ENTRY(name)                                                              \
    extern "C" __attribute__((visibility("default"))) void gpunet_cudasim_entry_##name(void** args) { \
        cudasim::invoke(name, args);                                                     \
    }
#define CUDASIM_ENTRY_AS(symbol, ...)   /* one instance of a templated kernel: name<T> */     \
    extern "C" __attribute__((visibility("default"))) void gpunet_cudasim_entry_##symbol(void** args) { \
        cudasim::invoke(__VA_ARGS__, args);                                              \
    }
#include "cudasim_tensor.h"
#endif  // CUDASIM_RUNTIME
