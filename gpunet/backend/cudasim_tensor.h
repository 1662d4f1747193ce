// cudasim_tensor.h - the tensor-core PTX that kernels/mma.cuh wraps, emulated for cudasim
// (included by cudasim.h). kernels/mma.cuh holds the per-lane fragment layouts; this file
// applies them to a whole warp at once.
//
//   * mma.sync (m16n8k8 tf32, m16n8k16 bf16 / f16, f32 accumulators) and ldmatrix
//     (.x1/.x2/.x4, .trans) are warp collectives: each lane posts its registers or row
//     address, and when all 32 lanes have arrived the runtime calls resolve_mma /
//     resolve_ldmatrix with the 32 records, which move the data exactly as the PTX ISA's
//     fragment tables say (lane l: groupID g = l / 4, threadID_in_group t = l % 4).
//   * mma arithmetic: every product of two operands is exact in double (tf32 x tf32 has
//     22 significant bits, bf16/f16 fewer), the k products and c are summed in double in
//     ascending k and rounded once to float. The hardware's internal adder keeps at least
//     float32 precision but its exact rounding is unspecified, so the GPU may differ in the
//     last bits; tests compare with tolerances derived from that (docs/backends.md).
//     tf32 operands: the mma reads only the top 19 bits of each 32-bit register (low 13
//     bits dropped); gpunet's kernels round with cvt.rna.tf32.f32 first, so nothing is lost.
//   * cp.async is per thread: the source bytes are read when the copy is issued (src-size of
//     them; the rest of the cp-size bytes are zeros) and written to shared memory only when a
//     cp.async.wait_group lets its group complete, so a kernel that reads a stage before
//     waiting reads stale data on every run. A thread whose block ends with copies pending
//     fails the launch.
//   * Alignment is checked as the hardware requires it (ldmatrix rows: 16 bytes; cp.async:
//     cp-size for both addresses); a violation fails the launch, naming the instruction.
#pragma once
#include <stdexcept>
#include <string>

namespace cudasim {

// ---- number formats: round-to-nearest conversions, as cvt.rna.tf32 / cvt.rn.bf16 / cvt.rn.f16
inline float tf32_round(float x) {   // cvt.rna.tf32.f32: nearest, ties away from zero, 10 mantissa bits
    uint32_t u = cudasim_bit_cast<uint32_t>(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;   // inf and NaN pass through
    return cudasim_bit_cast<float>((u + 0x1000u) & 0xffffe000u);
}
inline float tf32_truncate(uint32_t u) { return cudasim_bit_cast<float>(u & 0xffffe000u); }

inline uint16_t float_to_bf16_bits(float x) {   // nearest, ties to even (__float2bfloat16_rn)
    uint32_t u = cudasim_bit_cast<uint32_t>(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);   // quiet NaN
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_bits_to_float(uint16_t h) { return cudasim_bit_cast<float>(uint32_t(h) << 16); }

inline uint16_t float_to_fp16_bits(float x) {   // nearest, ties to even (__float2half_rn)
    uint32_t u = cudasim_bit_cast<uint32_t>(x);
    uint32_t sign = (u >> 16) & 0x8000u, mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return uint16_t(sign | 0x7e00u);              // NaN
    if (mag >= 0x477ff000u) return uint16_t(sign | 0x7c00u);             // rounds to >= 65520: inf
    if (mag < 0x38800000u) {                                             // below 2^-14: subnormal half
        if (mag < 0x33000000u) return uint16_t(sign);                    // under half of 2^-24: zero
        uint32_t exp = mag >> 23, mant = (mag & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp;                                      // 14..24: value = mant >> shift
        uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        half += rest > mid || (rest == mid && (half & 1u));
        return uint16_t(sign | half);
    }
    uint32_t r = mag - 0x38000000u;                                      // rebias exponent 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);
    return uint16_t(sign | (r >> 13));
}
inline float fp16_bits_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return cudasim_bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) return (sign ? -1.0f : 1.0f) * std::ldexp(float(mant), -24);
    return cudasim_bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

// ---- mma.sync --------------------------------------------------------------------------------
enum MmaKind : int { MMA_TF32_M16N8K8, MMA_BF16_M16N8K16, MMA_F16_M16N8K16 };

struct MmaRecord : Collective {
    int kind;
    uint32_t a[4], b[2];
    float c[4], d[4];
};

// Element (row, k) of A and (k, col) of B from the lanes' registers, per the PTX fragment tables.
inline double mma_a(const MmaRecord* const* lanes, int kind, int row, int k) {
    int g = row & 7, hi_row = row >> 3;
    if (kind == MMA_TF32_M16N8K8)   // a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4)
        return tf32_truncate(lanes[g * 4 + (k & 3)]->a[hi_row + 2 * (k >> 2)]);
    // a0 (g, 2t..2t+1) a1 (g+8, 2t..) a2 (g, 2t+8..) a3 (g+8, 2t+8..); lower k in the low half
    uint32_t reg = lanes[g * 4 + ((k & 7) >> 1)]->a[hi_row + 2 * (k >> 3)];
    uint16_t bits = uint16_t(k & 1 ? reg >> 16 : reg & 0xffffu);
    return kind == MMA_BF16_M16N8K16 ? bf16_bits_to_float(bits) : fp16_bits_to_float(bits);
}
inline double mma_b(const MmaRecord* const* lanes, int kind, int k, int col) {
    if (kind == MMA_TF32_M16N8K8)   // b0 (k = t, n = g) b1 (k = t+4, n = g)
        return tf32_truncate(lanes[col * 4 + (k & 3)]->b[k >> 2]);
    // b0 (k = 2t..2t+1, n = g) b1 (k = 2t+8.., n = g)
    uint32_t reg = lanes[col * 4 + ((k & 7) >> 1)]->b[k >> 3];
    uint16_t bits = uint16_t(k & 1 ? reg >> 16 : reg & 0xffffu);
    return kind == MMA_BF16_M16N8K16 ? bf16_bits_to_float(bits) : fp16_bits_to_float(bits);
}

inline const char* resolve_mma(Collective* const* records) {
    auto lanes = reinterpret_cast<const MmaRecord* const*>(records);
    int kind = lanes[0]->kind, depth = kind == MMA_TF32_M16N8K8 ? 8 : 16;
    double a[16][16], b[16][8];
    for (int row = 0; row < 16; ++row)
        for (int k = 0; k < depth; ++k) a[row][k] = mma_a(lanes, kind, row, k);
    for (int k = 0; k < depth; ++k)
        for (int col = 0; col < 8; ++col) b[k][col] = mma_b(lanes, kind, k, col);
    // c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1), d the same
    for (int lane = 0; lane < 32; ++lane) {
        auto* out = reinterpret_cast<MmaRecord*>(records[lane]);
        for (int r = 0; r < 4; ++r) {
            int row = lane / 4 + 8 * (r >> 1), col = 2 * (lane % 4) + (r & 1);
            double sum = out->c[r];
            for (int k = 0; k < depth; ++k) sum += a[row][k] * b[k][col];
            out->d[r] = float(sum);
        }
    }
    return nullptr;
}

inline void mma_sync(int kind, const uint32_t* a, const uint32_t* b, const float* c, float* d) {
    static const char* names[] = {"mma.sync.m16n8k8.f32.tf32.tf32.f32", "mma.sync.m16n8k16.f32.bf16.bf16.f32",
                                  "mma.sync.m16n8k16.f32.f16.f16.f32"};
    MmaRecord rec;
    rec.resolve = resolve_mma;
    rec.name = names[kind];
    rec.kind = kind;
    for (int i = 0; i < 4; ++i) rec.a[i] = a[i];
    for (int i = 0; i < 2; ++i) rec.b[i] = b[i];
    for (int i = 0; i < 4; ++i) rec.c[i] = c[i];
    warp_op(COLLECTIVE, 0xffffffffu, reinterpret_cast<uintptr_t>(static_cast<Collective*>(&rec)), 0, 32);
    for (int i = 0; i < 4; ++i) d[i] = rec.d[i];
}

// ---- ldmatrix --------------------------------------------------------------------------------
struct LdmatrixRecord : Collective {
    int count;   // matrices: 1, 2 or 4
    bool trans;
    const unsigned char* row;   // this lane's row address (lanes 8i..8i+7 give matrix i's rows)
    uint32_t r[4];
};

inline const char* resolve_ldmatrix(Collective* const* records) {
    auto lanes = reinterpret_cast<LdmatrixRecord* const*>(records);
    int count = lanes[0]->count;
    bool trans = lanes[0]->trans;
    for (int lane = 0; lane < 8 * count; ++lane)
        if (reinterpret_cast<uintptr_t>(lanes[lane]->row) % 16 != 0)
            return "a row address is not 16-byte aligned (lanes 0..8*count-1 each give one row of 8 b16 values)";
    for (int lane = 0; lane < 32; ++lane) {
        int g = lane / 4, t = lane % 4;
        for (int m = 0; m < count; ++m) {
            uint16_t lo, hi;
            if (!trans) {   // r[m] = row g, elements 2t and 2t+1 of matrix m
                std::memcpy(&lo, lanes[8 * m + g]->row + 4 * t, 2);
                std::memcpy(&hi, lanes[8 * m + g]->row + 4 * t + 2, 2);
            } else {        // .trans: r[m] = column g, rows 2t and 2t+1 (the transposed matrix's row g)
                std::memcpy(&lo, lanes[8 * m + 2 * t]->row + 2 * g, 2);
                std::memcpy(&hi, lanes[8 * m + 2 * t + 1]->row + 2 * g, 2);
            }
            lanes[lane]->r[m] = uint32_t(lo) | (uint32_t(hi) << 16);
        }
    }
    return nullptr;
}

inline void ldmatrix(int count, bool trans, const void* row, uint32_t* r) {
    static const char* names[2][3] = {{"ldmatrix.m8n8.x1.b16", "ldmatrix.m8n8.x2.b16", "ldmatrix.m8n8.x4.b16"},
                                      {"ldmatrix.m8n8.x1.trans.b16", "ldmatrix.m8n8.x2.trans.b16",
                                       "ldmatrix.m8n8.x4.trans.b16"}};
    LdmatrixRecord rec;
    rec.resolve = resolve_ldmatrix;
    rec.name = names[trans][count == 4 ? 2 : count - 1];
    rec.count = count;
    rec.trans = trans;
    rec.row = static_cast<const unsigned char*>(row);
    warp_op(COLLECTIVE, 0xffffffffu, reinterpret_cast<uintptr_t>(static_cast<Collective*>(&rec)), 0, 32);
    for (int i = 0; i < count; ++i) r[i] = rec.r[i];
}

// ---- cp.async --------------------------------------------------------------------------------
struct PendingCopy {
    unsigned char* dst;
    unsigned char bytes[16];
    int size;
    int group;   // -1 until a commit_group closes it
};

struct CopyQueue {
    unsigned long long block_serial = 0;
    int committed = 0;          // groups committed so far in this block
    PendingCopy pending[64];
    int count = 0;
};

// One queue per CUDA thread of the running block. `static`: each kernel library keeps its own
// (an inline function's static would be one GNU-unique object shared by every library loaded).
static CopyQueue& copy_queue() {
    static CopyQueue queues[1024];
    unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const Thread* me = gpunet_cudasim_current;
    CopyQueue& q = queues[tid];
    if (q.block_serial != me->block_serial) {
        bool same_launch = (q.block_serial >> 40) == (me->block_serial >> 40);
        if (q.count > 0 && same_launch)   // copies left by an earlier (maybe failed) launch are dropped
            throw std::runtime_error("cp.async: thread " + std::to_string(tid) + " of a previous block "
                                     "returned with copies not waited for (cp.async.wait_group)");
        q.block_serial = me->block_serial;
        q.committed = 0;
        q.count = 0;
    }
    return q;
}

inline void cp_async(void* dst, const void* src, int cp_size, int src_size, const char* name) {
    uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    if (d % cp_size || (src_size > 0 && s % cp_size))
        throw std::runtime_error(std::string(name) + ": shared address 0x" + std::to_string(d % 4096) +
                                 " or global address not aligned to the copy size " + std::to_string(cp_size));
    if (src_size < 0 || src_size > cp_size)
        throw std::runtime_error(std::string(name) + ": src-size must be 0.." + std::to_string(cp_size));
    CopyQueue& q = copy_queue();
    if (q.count == 64) throw std::runtime_error(std::string(name) + ": more than 64 copies pending in one thread");
    PendingCopy& c = q.pending[q.count++];
    c.dst = static_cast<unsigned char*>(dst);
    c.size = cp_size;
    c.group = -1;
    std::memset(c.bytes, 0, sizeof c.bytes);
    if (src_size > 0) std::memcpy(c.bytes, src, size_t(src_size));   // zero-fill beyond src-size
}

inline void cp_async_commit() {
    CopyQueue& q = copy_queue();
    for (int i = 0; i < q.count; ++i)
        if (q.pending[i].group < 0) q.pending[i].group = q.committed;
    ++q.committed;
}

// Complete every committed group but the `newer` most recent ones (uncommitted copies stay).
inline void cp_async_wait(int newer) {
    CopyQueue& q = copy_queue();
    int kept = 0;
    for (int i = 0; i < q.count; ++i) {
        PendingCopy& c = q.pending[i];
        if (c.group >= 0 && c.group < q.committed - newer) std::memcpy(c.dst, c.bytes, size_t(c.size));
        else q.pending[kept++] = c;
    }
    q.count = kept;
}

}  // namespace cudasim
