"""Roofline floors of the kernels on the benchmark shapes, printed as the Markdown table of
docs/performance.md (regenerate it with ``python benchmarks/roofline.py``).

For each kernel launch of one training step of the two benchmark models (small CNN, batch 64;
encoder-decoder, batch 32): FLOPs (a multiply-add counts 2), the compulsory bytes (every input
read once, every output written once, float32, int32 argmax), arithmetic intensity, and the
floor ``max(FLOPs / peak, bytes / bandwidth)`` on an H100 SXM taken as 60 TFLOP/s float32
without tensor cores and 3 TB/s of HBM3. The ridge point is 60e12 / 3e12 = 20 FLOP/byte:
below it a kernel is limited by memory, above it by arithmetic.
"""
PEAK_FLOPS = 60e12
BANDWIDTH = 3e12
F = 4   # bytes per float32 / int32

TILING = {
    "conv2d_forward": "implicit GEMM, 64x64 output tile / 256 threads, 4x4 per thread, K step 16, double-buffered smem",
    "conv2d_backward_input": "implicit GEMM per stride phase (only taps that reach it), 64x64 tile, as forward",
    "conv2d_backward_filter": "GEMM (kh*kw*Cin) x Cout over pixel splits, 64x64 tile; + sum_splits",
    "bias_backward": "32 channels a block, rows split; + sum_splits",
    "dense_forward": "SGEMM 64x64 tile, 4x4 per thread, bias in the epilogue",
    "dense_backward_input": "SGEMM NT, 64x64 tile",
    "dense_backward_filter": "SGEMM TN, 64x64 tile",
    "dense_backward_bias": "32 columns a block, fixed-order tree",
    "relu_forward": "grid-stride, one element a thread, coalesced",
    "relu_backward": "grid-stride, one element a thread, coalesced",
    "sigmoid_forward": "grid-stride, one element a thread",
    "sigmoid_backward": "grid-stride, one element a thread",
    "max_pool2d_forward": "one thread an output, channel fastest (coalesced)",
    "max_pool2d_backward": "one thread an input cell, gathers the covering windows",
    "sparse_softmax_cross_entropy_*": "one warp a row, shuffle reductions",
    "mse (sum + backward)": "grid-stride partial sums, one finishing block",
    "sgd_update": "grid-stride, one element a thread, one launch a parameter",
}


def conv(name, n, h, w, cin, cout, k, stride=1, out_hw=None, bias=True):
    """The launches of a Conv2D (3x3 'same' unless given) layer: forward and its gradients."""
    oh, ow = out_hw or (h // stride, w // stride)
    pixels, depth = n * oh * ow, k * k * cin
    x, y, wt = n * h * w * cin * F, pixels * cout * F, depth * cout * F
    gemm = 2 * pixels * cout * depth
    rows = [("conv2d_forward", name, gemm, x + wt + (cout * F if bias else 0), y),
            ("conv2d_backward_filter", name, gemm, x + y, wt)]
    if bias:
        rows.append(("bias_backward", name, pixels * cout, y, cout * F))
    return rows


def conv_input_gradient(name, n, h, w, cin, cout, k, stride=1):
    oh, ow = h // stride, w // stride
    gemm = 2 * n * oh * ow * cout * k * k * cin
    return [("conv2d_backward_input", name, gemm, n * oh * ow * cout * F + k * k * cin * cout * F,
             n * h * w * cin * F)]


def conv_transpose(name, n, h, w, cin, cout, k=3, stride=2):
    """Conv2DTranspose: forward = conv2d_backward_input of x; dx = conv2d_forward of dy."""
    oh, ow = h * stride, w * stride
    gemm = 2 * n * h * w * cin * cout * k * k
    x, y, wt = n * h * w * cin * F, n * oh * ow * cout * F, k * k * cin * cout * F
    return [("conv2d_backward_input", name + " (forward)", gemm, x + wt + cout * F, y),
            ("conv2d_forward", name + " (input gradient)", gemm, y + wt, x),
            ("conv2d_backward_filter", name, gemm, x + y, wt),
            ("bias_backward", name, n * oh * ow * cout, y, cout * F)]


def elementwise(kernel, name, elements, reads, writes, flops_each=1):
    return [(kernel, name, elements * flops_each, reads * elements * F, writes * elements * F)]


def relu(name, elements):
    return (elementwise("relu_forward", name, elements, 1, 1)
            + elementwise("relu_backward", name, elements, 2, 1))


def pool(name, n, h, w, c):
    out = n * (h // 2) * (w // 2) * c
    return [("max_pool2d_forward", name, 3 * out, n * h * w * c * F, 2 * out * F),
            ("max_pool2d_backward", name, 0, 2 * out * F, n * h * w * c * F)]


def dense(name, n, fin, fout, input_gradient=True):
    gemm = 2 * n * fin * fout
    x, y, wt = n * fin * F, n * fout * F, fin * fout * F
    rows = [("dense_forward", name, gemm, x + wt + fout * F, y),
            ("dense_backward_filter", name, gemm, x + y, wt),
            ("dense_backward_bias", name, n * fout, y, fout * F)]
    if input_gradient:
        rows.append(("dense_backward_input", name, gemm, y + wt, x))
    return rows


def cnn(n=64):
    """Conv(32)-ReLU-Pool-Conv(64)-ReLU-Pool-Dense(128)-ReLU-Dense(10), one SGD step.
    The first conv's input gradient is skipped (the training step never needs it)."""
    rows = conv("conv 1", n, 28, 28, 1, 32, 3) + relu("conv 1", n * 784 * 32)
    rows += pool("pool 1", n, 28, 28, 32)
    rows += conv("conv 2", n, 14, 14, 32, 64, 3) + conv_input_gradient("conv 2", n, 14, 14, 32, 64, 3)
    rows += relu("conv 2", n * 196 * 64) + pool("pool 2", n, 14, 14, 64)
    rows += dense("dense 1", n, 3136, 128) + relu("dense 1", n * 128)
    rows += dense("dense 2", n, 128, 10) + [("sparse_softmax_cross_entropy_*", "loss", 10 * n * 10, 2 * n * 10 * F, 2 * n * 10 * F)]
    params = 9 * 32 + 32 + 288 * 64 + 64 + 3136 * 128 + 128 + 1280 + 10
    return rows + elementwise("sgd_update", "all weights", params, 2, 1, 2)


def autoencoder(n=32):
    """Conv32-ReLU-Pool-Conv64-ReLU-Pool-ConvT64 s2-ReLU-ConvT32 s2-ReLU-Conv1 1x1-sigmoid, MSE."""
    rows = conv("conv 1", n, 32, 32, 1, 32, 3) + relu("conv 1", n * 1024 * 32)
    rows += pool("pool 1", n, 32, 32, 32)
    rows += conv("conv 2", n, 16, 16, 32, 64, 3) + conv_input_gradient("conv 2", n, 16, 16, 32, 64, 3)
    rows += relu("conv 2", n * 256 * 64) + pool("pool 2", n, 16, 16, 64)
    rows += conv_transpose("conv-T 1", n, 8, 8, 64, 64) + relu("conv-T 1", n * 256 * 64)
    rows += conv_transpose("conv-T 2", n, 16, 16, 64, 32) + relu("conv-T 2", n * 1024 * 32)
    rows += conv("conv 1x1", n, 32, 32, 32, 1, 1, out_hw=(32, 32))
    rows += conv_input_gradient("conv 1x1", n, 32, 32, 32, 1, 1)
    rows += elementwise("sigmoid_forward", "output", n * 1024, 1, 1, 4) + elementwise("sigmoid_backward", "output", n * 1024, 2, 1, 3)
    rows += [("mse (sum + backward)", "loss", 5 * n * 1024, 4 * n * 1024 * F, n * 1024 * F)]
    params = 9 * 32 + 32 + 288 * 64 + 64 + 9 * 64 * 64 + 64 + 9 * 64 * 32 + 32 + 32 + 1
    return rows + elementwise("sgd_update", "all weights", params, 2, 1, 2)


def table(title, rows):
    lines = [f"**{title}**", "",
             "| kernel | layer | MFLOP | MB moved | FLOP/byte | floor (µs) | limit |",
             "|---|---|---:|---:|---:|---:|---|"]
    total = 0.0
    for kernel, layer, flops, read, written in rows:
        moved = read + written
        floor = max(flops / PEAK_FLOPS, moved / BANDWIDTH)
        total += floor
        limit = "compute" if flops / PEAK_FLOPS > moved / BANDWIDTH else "memory"
        lines.append(f"| `{kernel}` | {layer} | {flops / 1e6:.1f} | {moved / 1e6:.2f} | "
                     f"{flops / moved:.1f} | {floor * 1e6:.2f} | {limit} |")
    lines += ["", f"Sum of the floors: {total * 1e6:.0f} µs over {len(rows)} kernels (a row may "
              "be several launches: one per parameter for the optimizer, a second pass for split "
              "reductions); a launch costs a few µs by itself.", ""]
    return "\n".join(lines)


def tilings():
    lines = ["| kernel | how it is tiled |", "|---|---|"]
    return "\n".join(lines + [f"| `{kernel}` | {how} |" for kernel, how in TILING.items()]) + "\n"


if __name__ == "__main__":
    print(table("Small CNN, batch 64, one training step", cnn()))
    print(table("Encoder-decoder, batch 32, one training step", autoencoder()))
    print(tilings())
