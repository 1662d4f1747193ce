// conv_phase.cuh - the phases of a strided convolution's input gradient (conv.cu's per-phase FFMA
// kernel and tc_conv.cu's tensor-core input gradient share it; it defines no kernels).
//
// dx pixel h (one axis) is reached by the taps i with (h + pad - i*dil) % stride == 0, which
// depends only on the phase (h + pad) % stride. Within a phase the dx rows are h = first +
// stride*a and their taps a progression i = tap0 + step*q, tap q of row a reading dy row
// base + a - q*shift: a stride-1 correlation of dy with the phase's sub-kernel, whose GEMM
// skips the taps that miss instead of multiplying zeros. A phase no tap reaches (taps == 0;
// a stride above the dilated kernel) is all zeros.
#pragma once

// One axis (rows or columns) of an input-gradient phase: the dx rows h = first + stride*a (a < count), all with
// (h + pad) % stride == phase, are reached by the taps i = tap0 + step*q (q < taps), tap q of
// row a reading dy row base + a - q*shift.
struct Phase {
    int first, count, tap0, step, taps, base, shift;
};

__device__ Phase phase_of(int phase, int size, int pad, int stride, int dil, int k) {
    Phase p;
    p.first = ((phase - pad) % stride + stride) % stride;
    p.count = p.first < size ? (size - p.first + stride - 1) / stride : 0;
    int g = stride, b = dil;              // gcd(stride, dil)
    while (b != 0) { int t = g % b; g = b; b = t; }
    p.step = stride / g;
    p.shift = dil / g;
    p.tap0 = -1;
    for (int i = 0; i < p.step && p.tap0 < 0; ++i)
        if ((i * dil) % stride == phase) p.tap0 = i;
    p.taps = (p.tap0 >= 0 && p.tap0 < k) ? (k - 1 - p.tap0) / p.step + 1 : 0;
    p.base = p.taps > 0 ? (p.first + pad - p.tap0 * dil) / stride : 0;   // an exact division
    return p;
}
