// tc_conv_tall.cu - tc_conv.cu's three convolution products on 256 x 32 block tiles (tc_gemm.cuh's
// TcTall: 4 warps in a column, each a 64 x 32 warp tile; 2 stages): for outputs at most 32 columns
// wide (32 filters, or 32 input channels for the input gradient), where TcNarrow's 32 x 32 warp
// tiles spend more instructions a mma (fragment loads and, for TF32, operand rounding) than the
// tensor cores take. Kernels tc_conv2d_<product>_<type>_256x32, arguments and products as
// tc_conv.cu's; grids (ceil(M / 256), ceil(N / 32), z), 128 threads (TC_TALL_THREADS).
#include "tc_conv_products.cuh"

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_forward_tf32_256x32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<float, TcTall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_input_tf32_256x32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<float, TcTall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_filter_tf32_256x32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<float, TcTall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_forward_bf16_256x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<bf16_t, TcTall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_input_bf16_256x32(const bf16_t* __restrict__ dy, const bf16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<bf16_t, TcTall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_filter_bf16_256x32(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<bf16_t, TcTall>(x, dy, dw, pixels_per_split, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_forward_f16_256x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ w, const float* __restrict__ b,
        float* __restrict__ y, int has_bias, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_forward<fp16_t, TcTall>(x, w, b, y, has_bias, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_input_f16_256x32(const fp16_t* __restrict__ dy, const fp16_t* __restrict__ w, float* __restrict__ dx,
        int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_input<fp16_t, TcTall>(dy, w, dx, g);
}

extern "C" __global__ void __launch_bounds__(TC_TALL_THREADS, 1)
tc_conv2d_backward_filter_f16_256x32(const fp16_t* __restrict__ x, const fp16_t* __restrict__ dy, float* __restrict__ dw,
        int pixels_per_split, int batch, int in_h, int in_w, int cin, int out_h, int out_w,
        int cout, int kh, int kw, int sh, int sw, int pad_t, int pad_l, int dil_h, int dil_w) {
    TcConv g = TC_GEOMETRY;
    tc_conv_filter<fp16_t, TcTall>(x, dy, dw, pixels_per_split, g);
}
