// tensorcore.cu - test-only kernels driving each wrapper of kernels/mma.cuh once, so that the
// cudasim emulation of mma.sync / ldmatrix / cp.async is checked against a NumPy model of the
// PTX fragment layouts (tests/test_tensorcore_ptx.py) and NVRTC compiles the real PTX.
// One warp (32 threads) a launch; lane l reads its registers from regs[l * count + i].
#include "../../kernels/mma.cuh"

// d[l*4 + i] = register i of lane l's D for the mma selected by kind (0 tf32, 1 bf16, 2 f16).
extern "C" __global__ void __launch_bounds__(32)
mma_lanes(const unsigned* __restrict__ a, const unsigned* __restrict__ b, const float* __restrict__ c,
          float* __restrict__ d, int kind) {
    int l = threadIdx.x;
    unsigned ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 4; ++i) ra[i] = a[l * 4 + i], rc[i] = c[l * 4 + i];
    for (int i = 0; i < 2; ++i) rb[i] = b[l * 2 + i];
    if (kind == 0) mma_tf32_m16n8k8(rd, ra, rb, rc);
    else if (kind == 1) mma_bf16_m16n8k16(rd, ra, rb, rc);
    else mma_f16_m16n8k16(rd, ra, rb, rc);
    for (int i = 0; i < 4; ++i) d[l * 4 + i] = rd[i];
}

// Four 8x8 b16 matrices src[m][r][c] are put in shared memory with rows 24 b16 (48 B) apart
// (m-th matrix after the other), lane l points at row l % 8 of matrix l / 8, and
// out[l*4 + i] = register i of ldmatrix .x{count} (.trans when trans).
extern "C" __global__ void __launch_bounds__(32)
ldmatrix_lanes(const unsigned short* __restrict__ src, unsigned* __restrict__ out, int count, int trans) {
    __shared__ __align__(16) unsigned short tile[32][24];
    int l = threadIdx.x;
    for (int c = 0; c < 8; ++c) tile[l][c] = src[l * 8 + c];
    __syncthreads();
    unsigned r[4] = {0u, 0u, 0u, 0u};
    const void* row = &tile[l][0];
    if (count == 1) trans ? ldmatrix_x1_trans(r, row) : ldmatrix_x1(r, row);
    else if (count == 2) trans ? ldmatrix_x2_trans(r, row) : ldmatrix_x2(r, row);
    else trans ? ldmatrix_x4_trans(r, row) : ldmatrix_x4(r, row);
    for (int i = 0; i < 4; ++i) out[l * 4 + i] = r[i];
}

// Thread l copies 16 bytes (4 floats) of src[4l..] into shared memory in two groups:
// group 0 with cp.async.cg (src_bytes of them read, the rest zero), group 1 with four 4-byte
// cp.async.ca of src[128 + 4l..]. Before any wait, after wait_group 1 and after wait_group 0
// each thread reads back its own destination: seen[stage][l*8 + j].
extern "C" __global__ void __launch_bounds__(32)
cp_async_lanes(const float* __restrict__ src, float* __restrict__ seen, int src_bytes) {
    __shared__ __align__(16) float dst[32][8];
    int l = threadIdx.x;
    for (int j = 0; j < 8; ++j) dst[l][j] = -1.0f;
    cp_async_cg16(&dst[l][0], src + 4 * l, src_bytes);
    cp_async_commit();
    for (int j = 0; j < 4; ++j) cp_async_ca<4>(&dst[l][4 + j], src + 128 + 4 * l + j, 4);
    cp_async_commit();
    for (int j = 0; j < 8; ++j) seen[l * 8 + j] = dst[l][j];
    cp_async_wait<1>();
    for (int j = 0; j < 8; ++j) seen[256 + l * 8 + j] = dst[l][j];
    cp_async_wait<0>();
    for (int j = 0; j < 8; ++j) seen[512 + l * 8 + j] = dst[l][j];
}

// A 16-byte cp.async from src + offset floats (misaligned unless offset % 4 == 0).
extern "C" __global__ void __launch_bounds__(32)
cp_async_offset(const float* __restrict__ src, float* __restrict__ out, int offset) {
    __shared__ __align__(16) float dst[32][4];
    int l = threadIdx.x;
    cp_async_cg16(&dst[l][0], src + offset + 4 * l, 16);
    cp_async_commit();
    cp_async_wait<0>();
    for (int j = 0; j < 4; ++j) out[l * 4 + j] = dst[l][j];
}

// A cp.async never waited for: the next block of the same launch must fail the launch.
extern "C" __global__ void __launch_bounds__(32)
cp_async_unwaited(const float* __restrict__ src, float* __restrict__ out) {
    __shared__ __align__(16) float dst[32][4];
    int l = threadIdx.x;
    cp_async_cg16(&dst[l][0], src + 4 * l, 16);
    cp_async_commit();
    out[blockIdx.x * 32 + l] = 0.0f;
}

// tf32[i], bf16[i], f16[i] = x[i] rounded by tf32_round, float_to_bf16, float_to_fp16;
// back[2i], back[2i + 1] = the bf16 and the fp16 value converted back to float.
extern "C" __global__ void conversions(const float* __restrict__ x, float* __restrict__ tf32,
                                       bf16_t* __restrict__ bf16, fp16_t* __restrict__ f16,
                                       float* __restrict__ back, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    tf32[i] = tf32_round(x[i]);
    bf16[i] = float_to_bf16(x[i]);
    f16[i] = float_to_fp16(x[i]);
    back[2 * i] = bf16_to_float(bf16[i]);
    back[2 * i + 1] = fp16_to_float(f16[i]);
}
