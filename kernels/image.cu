// image.cu - resampling for the image preprocessing and augmentation layers (NHWC, float32).
//
// Kernels:
//   resize_bilinear(x, out, count, H, W, C, out_h, out_w, top, left, scale_y, scale_x, crop_h, crop_w)
//   resize_nearest(...same...)
//       out (N, out_h, out_w, C) samples the window [top, top + crop_h) x [left, left + crop_w) of x
//       (N, H, W, C) at half-pixel centres: src = (o + 0.5) * scale - 0.5 (bilinear, the two taps
//       clamped to the window) or floor((o + 0.5) * crop / out) (nearest, in integers). As Keras 3's
//       Resizing (no antialiasing).
//   affine_transform(x, out, count, H, W, C, transforms, nearest, fill_mode, fill_value)
//       out[n, y, x, c] = x[n] sampled at (sx, sy) = the image's 8-number projective transform
//       (a0 a1 a2 b0 b1 b2 c0 c1, Keras's layout: sx = (a0 x + a1 y + a2) / k,
//       sy = (b0 x + b1 y + b2) / k, k = c0 x + c1 y + 1), output and input pixel centres at
//       integers; bilinear (nearest = 0) or nearest; outside the image: fill_mode 0 constant
//       (fill_value), 1 reflect (d c b a | a b c d | d c b a), 2 wrap, 3 nearest (edge).
//       One transform per image serves flips, translations, rotations and zooms.
// Threads: one per output element, grid-stride; reads only (no atomics), so every run gives
// the same bits.

#include "common.cuh"   // GRID_STRIDE_LOOP

extern "C" __global__ void resize_bilinear(const float* __restrict__ x, float* __restrict__ out, int count,
                                           int H, int W, int C, int out_h, int out_w, int top, int left,
                                           float scale_y, float scale_x, int crop_h, int crop_w) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, ox = (i / C) % out_w, oy = (i / (C * out_w)) % out_h, n = i / (C * out_w * out_h);
        float sy = (oy + 0.5f) * scale_y - 0.5f, sx = (ox + 0.5f) * scale_x - 0.5f;
        float fy0 = floorf(sy), fx0 = floorf(sx);
        int y0 = min(max((int)fy0, 0), crop_h - 1) + top, y1 = min(max((int)fy0 + 1, 0), crop_h - 1) + top;
        int x0 = min(max((int)fx0, 0), crop_w - 1) + left, x1 = min(max((int)fx0 + 1, 0), crop_w - 1) + left;
        const float* img = x + (long long)n * H * W * C;
        float ty = sy - fy0, tx = sx - fx0;
        // Rows first, as the NumPy reference: (1 - ty) * upper + ty * lower per column, then columns.
        float left_col = img[((long long)y0 * W + x0) * C + c] * (1.0f - ty) + img[((long long)y1 * W + x0) * C + c] * ty;
        float right_col = img[((long long)y0 * W + x1) * C + c] * (1.0f - ty) + img[((long long)y1 * W + x1) * C + c] * ty;
        out[i] = left_col * (1.0f - tx) + right_col * tx;
    }
}

extern "C" __global__ void resize_nearest(const float* __restrict__ x, float* __restrict__ out, int count,
                                          int H, int W, int C, int out_h, int out_w, int top, int left,
                                          float scale_y, float scale_x, int crop_h, int crop_w) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, ox = (i / C) % out_w, oy = (i / (C * out_w)) % out_h, n = i / (C * out_w * out_h);
        int sy = min((int)(((long long)(2 * oy + 1) * crop_h) / (2 * out_h)), crop_h - 1) + top;
        int sx = min((int)(((long long)(2 * ox + 1) * crop_w) / (2 * out_w)), crop_w - 1) + left;
        out[i] = x[(((long long)n * H + sy) * W + sx) * C + c];
    }
}
