"""A model (not a measurement) of one U-Net training step on an A100 and an H100: gpunet's FFMA
kernels ("highest"), gpunet's tensor-core kernels ("high" = TF32, and bf16 operands), and
PyTorch + cuDNN on TF32, printed as the Markdown of docs/performance.md.

    python benchmarks/tc_model.py

The U-Net: batch 16, 128x128x3 input, levels 32-64-128-256: two 3x3 'same' convs a level,
max-pool down, 3x3 stride-2 transposed convs up (padding 1, output_padding 1), skip
concatenations, a 1x1 conv to one channel. Each conv costs three GEMMs (forward, input
gradient, filter gradient; the first conv's input gradient is not needed) of 2 P Cout K FLOPs
(P output pixels, K = k*k*Cin); everything else (bias, ReLU, pooling, concatenation, loss,
SGD) is memory traffic, the same for every column.

Time of a GEMM = max(FLOPs / (peak x efficiency), compulsory bytes / HBM bandwidth), with these
assumptions (the efficiencies are the model; the peaks are NVIDIA's dense figures):
* FFMA kernels: 44 % of the FP32 peak: the FFMA share of conv2d_forward's main loop in its SASS
  (one instruction issues a clock per scheduler, so the FP32 pipe is at most that busy).
* tensor-core kernels: min(issue, shared memory) from tc_gemm.cuh's SASS (benchmarks/sass.py):
  a k-tile of a warp is 16 HMMA and ~150 instructions in all; an HMMA keeps the sub-partition's
  tensor core busy 8 clocks (A100, TF32 m16n8k8 and BF16 m16n8k16) or 4 clocks (H100), so
  issue caps it at 128/150 (A100) and 64/150 (H100); shared memory (128 B/clk/SM) caps it at
  loop FLOP/B / needed FLOP/B = 8/8 (A100 TF32), 16/16 (A100 BF16), 8/16 and 16/32 (H100).
  Then x 0.85 for pipeline fill, epilogue and the last partial wave of tiles.
* PyTorch + cuDNN (TF32, its default for convolutions): 65 % of the TF32 peak, same bytes.
Kernel launch overheads are left out (docs/performance.md counts them separately).
"""
HW = {   # dense peaks (FLOP/s), HBM bytes/s; efficiencies of the tensor-core loop (see above)
    "A100": dict(fp32=19.5e12, tf32=156e12, bf16=312e12, bw=2.04e12, tc_tf32=min(128 / 150, 8 / 8),
                 tc_bf16=min(128 / 150, 16 / 16)),
    "H100": dict(fp32=67e12, tf32=494.7e12, bf16=989e12, bw=3.35e12, tc_tf32=min(64 / 150, 8 / 16),
                 tc_bf16=min(64 / 150, 16 / 32)),
}
FFMA_EFFICIENCY, TC_OVERHEAD, CUDNN_EFFICIENCY = 0.44, 0.85, 0.65
BATCH, SIZE, LEVELS = 16, 128, (32, 64, 128, 256)


def unet_convs():
    """(name, output pixels, Cin, Cout, k, needs input gradient) of every conv and conv-T."""
    convs, size, cin, skips = [], SIZE, 3, []
    for level, c in enumerate(LEVELS):
        p = BATCH * size * size
        convs += [(f"enc{level} a", p, cin, c, 3, level > 0), (f"enc{level} b", p, c, c, 3, True)]
        cin = c
        if level < len(LEVELS) - 1:
            skips.append((size, c))
            size //= 2
    for level, (skip_size, c) in reversed(list(enumerate(skips))):
        convs.append((f"up{level} (conv-T)", BATCH * (skip_size // 2) ** 2, cin, c, 3, True))   # its input pixels
        p = BATCH * skip_size * skip_size
        convs += [(f"dec{level} a", p, 2 * c, c, 3, True), (f"dec{level} b", p, c, c, 3, True)]
        cin = c
    convs.append(("out 1x1", BATCH * SIZE * SIZE, cin, 1, 1, True))
    return convs


def gemm_time(flops, nbytes, peak, efficiency, bw):
    return max(flops / (peak * efficiency), nbytes / bw)


def step(hw, mode, bytes_per=4, dx_ffma=False):
    """Seconds of one step's GEMMs in ``mode`` (ffma, tf32, bf16, cudnn) and of its memory-bound rest;
    ``dx_ffma``: the input gradients on the FFMA kernels (conv.cu's), as before they ran on tensor cores."""
    h = HW[hw]
    peaks = {"ffma": (h["fp32"], FFMA_EFFICIENCY), "tf32": (h["tf32"], h["tc_tf32"] * TC_OVERHEAD),
             "bf16": (h["bf16"], h["tc_bf16"] * TC_OVERHEAD), "cudnn": (h["tf32"], CUDNN_EFFICIENCY)}
    peak, eff = peaks[mode]
    dx_peak, dx_eff = peaks["ffma"] if dx_ffma else (peak, eff)
    size = 2 if mode == "bf16" else bytes_per
    gemms = rest = 0.0
    for _, p, cin, cout, k, dx in unet_convs():
        flops = 2 * p * cout * k * k * cin
        x, y, w = p * cin * size, p * cout * size, k * k * cin * cout * size   # x ~ input (stride 1)
        gemms += gemm_time(flops, x + w + 4 * p * cout, peak, eff, h["bw"])
        gemms += gemm_time(flops, x + y + 4 * k * k * cin * cout, peak, eff, h["bw"])
        if dx:
            gemms += gemm_time(flops, y + w + 4 * p * cin, dx_peak, dx_eff, h["bw"])
        rest += 6 * p * cout * 4 / h["bw"]   # bias grad, ReLU forward + backward, pooling / concat share
    return gemms, rest


def table():
    lines = ["| GPU | mode | GEMMs (ms) | memory-bound rest (ms) | step (ms) | vs PyTorch + cuDNN TF32 |",
             "|---|---|---:|---:|---:|---:|"]
    for hw in HW:
        torch_total = sum(step(hw, "cudnn"))
        for mode, dx_ffma, label in (
                ("ffma", False, "gpunet \"highest\" (FFMA)"),
                ("tf32", True, "gpunet \"high\", input gradients on FFMA (the first tensor-core release)"),
                ("tf32", False, "gpunet \"high\": all three products on TF32 mma (strided dx per phase)"),
                ("bf16", False, "gpunet, bf16 operands (mixed_bfloat16): all three on mma"),
                ("cudnn", False, "PyTorch + cuDNN, TF32")):
            g, r = step(hw, mode, dx_ffma=dx_ffma)
            lines.append(f"| {hw} | {label} | {g * 1e3:.2f} | {r * 1e3:.2f} | {(g + r) * 1e3:.2f} | "
                         f"{(g + r) / torch_total:.2f}x |")
    flops = sum(2 * p * cout * k * k * cin * (3 if dx else 2) for _, p, cin, cout, k, dx in unet_convs())
    return "\n".join(lines) + f"\n\nGEMM work of one step: {flops / 1e9:.1f} GFLOP over {len(unet_convs())} convs.\n"


if __name__ == "__main__":
    print(table())
