// tc_conv.cu - 2-D convolution on tensor cores as implicit GEMM (the core: tc_gemm.cuh):
// forward, input gradient (any stride, per phase) and filter gradient, TF32 (float32 operands),
// bf16 and fp16 operands, float32 results. sm_80 and newer; conv.cu's FFMA kernels stay the
// default for float32 (gn.config.set_float32_matmul_precision("high") picks these).
//
// Kernels (<type>: tf32 with float arrays, bf16 with bf16_t, f16 with fp16_t):
//   tc_conv2d_forward_<type>(x, w, b, y, has_bias, <geometry>)
//       y (N, OH, OW, Cout) = x (*) w (+ b). GEMM: M = N*OH*OW pixels, N = Cout,
//       K = kh*kw*Cin with k = (i, j, c), c fastest. Grid (ceil(M / 64), ceil(Cout / 64)).
//   tc_conv2d_backward_input_<type>(dy, w, dx, <geometry>)
//       dx (N, H, W, Cin) of the conv: dx[h] = sum over (i, j, co) with h + pad - i*dil = s*oh of
//       dy[oh] w[i, j, :, co]. One GEMM per phase (conv_phase.cuh; blockIdx.z): M = N * the
//       phase's dx pixels, N = Cin, K = the phase's taps * Cout, a stride-1 correlation of dy
//       with the taps that reach the phase (offsets +base, taps -shift); its rows are stored at
//       the phase's dx pixels. Grid (ceil(largest phase / 64), ceil(Cin / 64), sh * sw); a
//       stride-1 conv is its one phase (M = N*H*W, K = kh*kw*Cout, offsets +pads, taps -dil).
//       A transposed conv's forward is this kernel of its x.
//   tc_conv2d_backward_filter_<type>(x, dy, dw, pixels_per_split, <geometry>)
//       dw[split] (kh, kw, Cin, Cout) = im2col(x)^T @ dy over one split of the pixels.
//       GEMM: M = kh*kw*Cin taps, N = Cout, K = pixels. Grid (ceil(M / 64), ceil(Cout / 64),
//       splits); conv.cu's sum_splits adds the splits in order (deterministic split-K).
//   tc_conv2d_<product>_<type>_128x128(...): the same on 128 x 128 block tiles (tc_gemm.cuh's TcBig;
//       the grids above with 128 for 64), _128x64 (TcWide) and _128x32 (TcNarrow) likewise;
//       _256x32 (TcTall) are in tc_conv_tall.cu.
//   <geometry>: as conv.cu's (batch, in_h, in_w, cin, out_h, out_w, cout, kh, kw, sh, sw,
//   pad_t, pad_l, dil_h, dil_w); x (batch, in_h, in_w, cin) NHWC, w (kh, kw, cin, cout).
// 128 threads a block (TC_THREADS, TC_BIG_THREADS). Operand tiles are gathered straight from the NHWC tensors by cp.async
// (no im2col buffer): a 16-byte chunk is 4 (float) or 8 (16-bit) consecutive channels of one
// pixel at one tap, so the fast path needs Cin (and Cout) times the element size to be a
// multiple of 16 bytes and 16-byte aligned bases; otherwise the same loop gathers element by
// element (slower, any shape). Positions advance incrementally: the (channel, tap column,
// tap row) of the patch loader and the (column, row, image) of the filter-gradient loader are
// TcCounters stepped by one k-tile, so no division runs in the main loop.
// Writes (=) y and dw; nothing accumulates. Backward needs x and dy (and w for dx, in conv.cu).
#include "tc_conv_products.cuh"   // the three products on any TcTile (loaders: tc_conv.cuh)

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_tf32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_tf32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_bf16(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_forward_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcSmall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_input_f16(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcSmall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
tc_conv2d_backward_filter_f16(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcSmall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_tf32_128x128(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_tf32_128x128(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_tf32_128x128(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_bf16_128x128(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_bf16_128x128(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_bf16_128x128(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_forward_f16_128x128(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcBig>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_input_f16_128x128(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcBig>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_BIG_THREADS)
tc_conv2d_backward_filter_f16_128x128(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcBig>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_tf32_128x64(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_tf32_128x64(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_tf32_128x64(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_bf16_128x64(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_bf16_128x64(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_bf16_128x64(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_forward_f16_128x64(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcWide>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_input_f16_128x64(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcWide>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_WIDE_THREADS)
tc_conv2d_backward_filter_f16_128x64(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcWide>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_tf32_128x32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_tf32_128x32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_tf32_128x32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcNarrow>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_bf16_128x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_bf16_128x32(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_bf16_128x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcNarrow>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_forward_f16_128x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcNarrow>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_input_f16_128x32(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcNarrow>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_NARROW_THREADS)
tc_conv2d_backward_filter_f16_128x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcNarrow>(x, dy, dw, pixels_per_split, g);
}
