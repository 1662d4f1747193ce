// image.cu - resampling for the image preprocessing and augmentation layers (NHWC).
//
// Kernels:
//   resize_bilinear(x, out, count, H, W, C, out_h, out_w, top, left, scale_y, scale_x, crop_h, crop_w)
//   resize_nearest(...same...)
//       out (N, out_h, out_w, C) samples the window [top, top + crop_h) x [left, left + crop_w) of x
//       (N, H, W, C) at half-pixel centres: src = (o + 0.5) * scale - 0.5 (bilinear, the two taps
//       clamped to the window) or floor((o + 0.5) * crop / out) (nearest, in integers). As Keras 3's
//       Resizing (no antialiasing).
//   affine_transform(x, out, count, H, W, C, transforms, stride, nearest, fill_mode, fill_value)
//       out[n, y, x, c] = x[n] sampled at (sx, sy) = (a0 x + a1 y + a2, b0 x + b1 y + b2), the first
//       six numbers of row n of transforms (Keras's layout, `stride` numbers a row; the projective
//       c0, c1 are not used: Keras's augmentation layers leave them 0); bilinear, or nearest
//       (nearest = 1, roundf: halves away from zero, as jax's map_coordinates); a tap outside the image: fill_mode 0
//       constant (fill_value), 1 reflect, 2 wrap, 3 nearest, 4 mirror. One kernel serves flips,
//       translations, rotations and zooms.
//   channel_means(x, means, N * C, H * W, C)          means[n, c] = mean of x[n, :, :, c]
//   intensity(x, out, count, H * W, C, factor, delta, means, clip, lo, hi)
//       out = (x - means[n, c]) * factor[n] + means[n, c] + delta[n], clipped to [lo, hi] when clip
//       (Rescaling, RandomContrast, RandomBrightness)
// Element types: the images x and out are T (float, bf16_t, fp16_t); transforms, factor, delta and
// means are float32 (channel_means writes float32 means of T images). Every kernel loads T as
// float, computes in float registers and rounds once where it stores (nearest resampling copies).
// Threads: one per output element, grid-stride; reads only (no atomics), so every run gives
// the same bits.

#include "common.cuh"   // GRID_STRIDE_LOOP

template <class T> __global__ void resize_bilinear(const T* __restrict__ x, T* __restrict__ out, int count,
                                           int H, int W, int C, int out_h, int out_w, int top, int left,
                                           float scale_y, float scale_x, int crop_h, int crop_w) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, ox = (i / C) % out_w, oy = (i / (C * out_w)) % out_h, n = i / (C * out_w * out_h);
        float sy = (oy + 0.5f) * scale_y - 0.5f, sx = (ox + 0.5f) * scale_x - 0.5f;
        float fy0 = floorf(sy), fx0 = floorf(sx);
        int y0 = min(max((int)fy0, 0), crop_h - 1) + top, y1 = min(max((int)fy0 + 1, 0), crop_h - 1) + top;
        int x0 = min(max((int)fx0, 0), crop_w - 1) + left, x1 = min(max((int)fx0 + 1, 0), crop_w - 1) + left;
        const T* img = x + (long long)n * H * W * C;
        float ty = sy - fy0, tx = sx - fx0;
        // Rows first, as the NumPy reference: (1 - ty) * upper + ty * lower per column, then columns.
        float left_col = to_float(img[((long long)y0 * W + x0) * C + c]) * (1.0f - ty) +
                         to_float(img[((long long)y1 * W + x0) * C + c]) * ty;
        float right_col = to_float(img[((long long)y0 * W + x1) * C + c]) * (1.0f - ty) +
                          to_float(img[((long long)y1 * W + x1) * C + c]) * ty;
        out[i] = from_float<T>(left_col * (1.0f - tx) + right_col * tx);
    }
}

template <class T> __global__ void resize_nearest(const T* __restrict__ x, T* __restrict__ out, int count,
                                          int H, int W, int C, int out_h, int out_w, int top, int left,
                                          float scale_y, float scale_x, int crop_h, int crop_w) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, ox = (i / C) % out_w, oy = (i / (C * out_w)) % out_h, n = i / (C * out_w * out_h);
        int sy = min((int)(((long long)(2 * oy + 1) * crop_h) / (2 * out_h)), crop_h - 1) + top;
        int sx = min((int)(((long long)(2 * ox + 1) * crop_w) / (2 * out_w)), crop_w - 1) + left;
        out[i] = x[(((long long)n * H + sy) * W + sx) * C + c];
    }
}

// A tap index outside [0, n) under a fill mode: 0 constant (returns -1: use the fill value),
// 1 reflect (d c b a | a b c d | d c b a), 2 wrap, 3 nearest (the edge), 4 mirror (d c b | a b c d | c b a).
__device__ __forceinline__ int fill_index(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == 0) return -1;
    if (mode == 3) return i < 0 ? 0 : n - 1;
    if (mode == 2) { int r = i % n; return r < 0 ? r + n : r; }
    if (mode == 4) {
        if (n == 1) return 0;
        int p = 2 * n - 2, r = i % p;
        r = r < 0 ? r + p : r;
        return r >= n ? p - r : r;
    }
    int p = 2 * n, r = i % p;   // reflect
    r = r < 0 ? r + p : r;
    return r >= n ? p - 1 - r : r;
}

template <class T>
__device__ __forceinline__ float tap(const T* __restrict__ img, int y, int x, int H, int W, int C, int c,
                                     int mode, float fill) {
    int iy = fill_index(y, H, mode), ix = fill_index(x, W, mode);
    return iy < 0 || ix < 0 ? fill : to_float(img[((long long)iy * W + ix) * C + c]);
}

template <class T> __global__ void affine_transform(const T* __restrict__ x, T* __restrict__ out, int count, int H,
                                            int W, int C, const float* __restrict__ transforms, int stride,
                                            int nearest, int mode, float fill) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, ox = (i / C) % W, oy = (i / (C * W)) % H, n = i / (C * W * H);
        const float* t = transforms + (long long)n * stride;
        float sx = t[0] * ox + t[1] * oy + t[2], sy = t[3] * ox + t[4] * oy + t[5];
        const T* img = x + (long long)n * H * W * C;
        if (nearest) {
            out[i] = from_float<T>(tap(img, (int)roundf(sy), (int)roundf(sx), H, W, C, c, mode, fill));
            continue;
        }
        float fy = floorf(sy), fx = floorf(sx), ty = sy - fy, tx = sx - fx;
        int y0 = (int)fy, x0 = (int)fx;
        // The four taps added in the NumPy reference's order.
        float v = (1.0f - ty) * (1.0f - tx) * tap(img, y0, x0, H, W, C, c, mode, fill);
        v += (1.0f - ty) * tx * tap(img, y0, x0 + 1, H, W, C, c, mode, fill);
        v += ty * (1.0f - tx) * tap(img, y0 + 1, x0, H, W, C, c, mode, fill);
        v += ty * tx * tap(img, y0 + 1, x0 + 1, H, W, C, c, mode, fill);
        out[i] = from_float<T>(v);
    }
}

// means[n * C + c] = mean of x[n, :, :, c]; one thread per (image, channel), pixels in order.
template <class T> __global__ void channel_means(const T* __restrict__ x, float* __restrict__ means, int count, int HW,
                                         int C) {
    GRID_STRIDE_LOOP(i, count) {
        int n = i / C, c = i % C;
        const T* img = x + (long long)n * HW * C;
        float total = 0.0f;
        for (int p = 0; p < HW; ++p) total += to_float(img[(long long)p * C + c]);
        means[i] = total / (float)HW;
    }
}

// out = (x - mean[n, c]) * factor[n] + mean[n, c] + delta[n], clipped to [lo, hi] when clip.
template <class T> __global__ void intensity(const T* __restrict__ x, T* __restrict__ out, int count, int HW, int C,
                                     const float* __restrict__ factor, const float* __restrict__ delta,
                                     const float* __restrict__ means, int clip, float lo, float hi) {
    GRID_STRIDE_LOOP(i, count) {
        int c = i % C, n = i / (HW * C);
        float m = means[n * C + c];
        float v = (to_float(x[i]) - m) * factor[n] + m + delta[n];
        out[i] = from_float<T>(clip ? (v < lo ? lo : (v > hi ? hi : v)) : v);   // NaN stays NaN, as np.clip
    }
}
