// mma.cuh - one small wrapper per tensor-core PTX instruction gpunet's kernels use (the bf16 /
// fp16 storage types and conversions are dtype.cuh's). Included by the tc_*.cu kernels (sm_80 and
// newer).
//
// Each wrapper is inline PTX on the GPU (NVRTC needs no CUDA headers) and, under cudasim
// (GPUNET_CUDASIM, defined by gpunet/backend/cudasim.h), a call into the emulation in
// gpunet/backend/cudasim_tensor.h, which moves data per lane and per register exactly as
// the layouts written out here. The #if lives only in this file: kernels call the wrappers.
//
// Notation for fragments (PTX ISA, "warp-level matrix fragments"): lane l of the warp has
// groupID g = l / 4 and threadID_in_group t = l % 4. A 32-bit register holding two 16-bit
// values keeps the lower-indexed one in its low half.
//
// Operand rounding: float32 operands of the TF32 mma are rounded by the kernel with
// tf32_round (cvt.rna.tf32.f32: nearest, ties away from zero, to 10 mantissa bits) before
// the mma; the mma itself would ignore the low 13 bits (truncation), so rounding first keeps
// the error at half a tf32 ulp (2^-11 relative). cudasim rounds identically (and the NumPy
// reference under set_float32_matmul_precision("high") does too). bf16 / fp16 conversions
// round to nearest, ties to even, like __float2bfloat16_rn / __float2half_rn.
#pragma once
#include "dtype.cuh"

#ifdef GPUNET_CUDASIM
__device__ __forceinline__ float tf32_round(float x) { return cudasim::tf32_round(x); }
#else
__device__ __forceinline__ float tf32_round(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
}
// The 32-bit shared-window address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_u32(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}
#endif

// A shared-memory address as the tensor-core loops carry it: on the GPU the 32-bit shared-window
// address (ldmatrix, ld.shared and cp.async take it directly, so a loop adds 32-bit constants
// instead of converting a 64-bit generic pointer at every use), under cudasim the host pointer.
#ifdef GPUNET_CUDASIM
typedef unsigned char* smem_ptr;
__device__ __forceinline__ smem_ptr smem_ptr_of(const void* p) { return const_cast<unsigned char*>(static_cast<const unsigned char*>(p)); }
#else
typedef unsigned smem_ptr;
__device__ __forceinline__ smem_ptr smem_ptr_of(const void* p) { return smem_u32(p); }
#endif

// ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: D (16x8) = A (16x8) B (8x8) + C ----
//   a[0] = A[g][t]    a[1] = A[g+8][t]    a[2] = A[g][t+4]    a[3] = A[g+8][t+4]   (tf32 bits)
//   b[0] = B[t][g]    b[1] = B[t+4][g]                                             (B is k x n)
//   c[0], d[0] = [g][2t]   c[1], d[1] = [g][2t+1]   c[2], d[2] = [g+8][2t]   c[3], d[3] = [g+8][2t+1]
__device__ __forceinline__ void mma_tf32_m16n8k8(float* d, const unsigned* a, const unsigned* b, const float* c) {
#ifdef GPUNET_CUDASIM
    cudasim::mma_sync(cudasim::MMA_TF32_M16N8K8, a, b, c, d);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// ---- mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D (16x8) = A (16x16) B (16x8) + C ----
//   a[0] = A[g][2t, 2t+1]      a[1] = A[g+8][2t, 2t+1]
//   a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
//   b[0] = B[2t, 2t+1][g]      b[1] = B[2t+8, 2t+9][g]                             (B is k x n)
//   c, d: as in the tf32 mma above.
__device__ __forceinline__ void mma_bf16_m16n8k16(float* d, const unsigned* a, const unsigned* b, const float* c) {
#ifdef GPUNET_CUDASIM
    cudasim::mma_sync(cudasim::MMA_BF16_M16N8K16, a, b, c, d);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

__device__ __forceinline__ void mma_f16_m16n8k16(float* d, const unsigned* a, const unsigned* b, const float* c) {
#ifdef GPUNET_CUDASIM
    cudasim::mma_sync(cudasim::MMA_F16_M16N8K16, a, b, c, d);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.{x1,x2,x4}[.trans].shared.b16 ----------------------------------
// Loads 1, 2 or 4 8x8 matrices of 16-bit values from shared memory. Lanes 8i..8i+7 each give
// the address of one 16-byte row of matrix i (row r = lane - 8i; 16-byte aligned); for .x1 only
// lanes 0-7 and for .x2 lanes 0-15 matter. Every lane receives one register per matrix:
//   r[i] = M_i[g][2t, 2t+1]                  (no .trans)
//   r[i] = M_i[2t][g], M_i[2t+1][g]          (.trans: the transposed matrix's row g)
// For 32-bit data (tf32) a row of 4 floats is 8 b16 values, so without .trans lane l gets
// float t of row g: the tf32 A / B fragment layout above.
// .x4 on an smem_ptr (the loops' addresses: no conversion at each use); the generic-pointer
// ldmatrix_x4 forms below call these.
__device__ __forceinline__ void ldsm_x4(unsigned* r, smem_ptr row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(4, false, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
#endif
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned* r, smem_ptr row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(4, true, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
#endif
}
__device__ __forceinline__ void ldmatrix_x1(unsigned* r, const void* row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(1, false, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(smem_u32(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x2(unsigned* r, const void* row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(2, false, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const void* row) { ldsm_x4(r, smem_ptr_of(row)); }
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned* r, const void* row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(1, true, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(smem_u32(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned* r, const void* row) {
#ifdef GPUNET_CUDASIM
    cudasim::ldmatrix(2, true, row, r);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const void* row) { ldsm_x4_trans(r, smem_ptr_of(row)); }

// A 64-bit and a 32-bit shared load on an smem_ptr.
__device__ __forceinline__ void lds64(unsigned& lo, unsigned& hi, smem_ptr p) {   // 8-byte aligned
#ifdef GPUNET_CUDASIM
    if (reinterpret_cast<uintptr_t>(p) % 8) throw std::runtime_error("ld.shared.v2.b32: address not 8-byte aligned");
    lo = reinterpret_cast<const unsigned*>(p)[0];
    hi = reinterpret_cast<const unsigned*>(p)[1];
#else
    asm volatile("ld.shared.v2.b32 {%0,%1}, [%2];" : "=r"(lo), "=r"(hi) : "r"(p));
#endif
}
__device__ __forceinline__ unsigned lds32(smem_ptr p) {
#ifdef GPUNET_CUDASIM
    return *reinterpret_cast<const unsigned*>(p);
#else
    unsigned v;
    asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(p));
    return v;
#endif
}

// ---- cp.async.{ca,cg}.shared.global [dst], [src], BYTES, src_bytes ------------------------------
// One thread copies BYTES (4, 8 or 16; .cg: 16 only, bypassing L1) from global to shared memory
// without passing through registers; both addresses aligned to BYTES. Only the first
// src_bytes (0..BYTES) are read, the rest of the destination is zero-filled: src_bytes = 0
// reads nothing, which is how tile edges load zeros (src must still be a valid address).
// A copy lands when a wait_group lets its group complete; until then the destination is stale.
template <int BYTES>
__device__ __forceinline__ void cp_async_ca(void* dst, const void* src, int src_bytes) {
#ifdef GPUNET_CUDASIM
    cudasim::cp_async(dst, src, BYTES, src_bytes, "cp.async.ca.shared.global");
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(smem_u32(dst)), "l"(src), "n"(BYTES),
                 "r"(src_bytes));
#endif
}

__device__ __forceinline__ void cp_async_cg16(void* dst, const void* src, int src_bytes) {
#ifdef GPUNET_CUDASIM
    cudasim::cp_async(dst, src, 16, src_bytes, "cp.async.cg.shared.global");
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes));
#endif
}

// cp.async.cg.shared.global [dst], [src], 16, ignore-src: 16 bytes when `ok`, else 16 zeros and
// src is not read at all (the ignore-src predicate), so a loader may pass the address of an element
// outside the tensor (a padding tap, a row past the end) without clamping it first.
__device__ __forceinline__ void cp_async16(smem_ptr dst, const void* src, bool ok) {
#ifdef GPUNET_CUDASIM
    cudasim::cp_async(dst, src, 16, ok ? 16 : 0, "cp.async.cg.shared.global");
#else
    asm volatile("{ .reg .pred p; setp.eq.u32 p, %2, 0; cp.async.cg.shared.global [%0], [%1], 16, p; }"
                 ::"r"(dst), "l"(src), "r"(unsigned(ok)));
#endif
}

// cp.async.commit_group: the thread's copies issued since the last commit form one group.
__device__ __forceinline__ void cp_async_commit() {
#ifdef GPUNET_CUDASIM
    cudasim::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// cp.async.wait_group N: wait until at most the N most recent groups are still in flight. It
// orders only this thread's copies: a __syncthreads must follow before other threads read them.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef GPUNET_CUDASIM
    cudasim::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}
