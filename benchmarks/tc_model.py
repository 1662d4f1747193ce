"""A model (not a measurement) of one U-Net training step on an A100 and an H100: gpunet's FFMA
kernels ("highest"), gpunet's tensor-core kernels ("high" = TF32, and bf16 operands) on the
block tile the host code picks for each product, and PyTorch + cuDNN on TF32, printed as the
Markdown of docs/performance.md.

    python benchmarks/tc_model.py            # the step table
    python benchmarks/tc_model.py --layers   # which tile each U-Net product takes, per GPU
    python benchmarks/tc_model.py --speeds   # the Tile.speed values tensorcore.py should hold

The U-Net: batch 16, 128x128x3 input, levels 32-64-128-256: two 3x3 'same' convs a level,
max-pool down, 3x3 stride-2 transposed convs up (padding 1, output_padding 1), skip
concatenations, a 1x1 conv to one channel. Each conv costs three GEMMs (forward, input
gradient, filter gradient; the first conv's input gradient is not needed) of 2 P Cout K FLOPs
(P output pixels, K = k*k*Cin); a transposed conv is the stride-2 conv from its output to its
input run backwards (its forward is that conv's per-phase input gradient). Everything else
(bias, ReLU, pooling, concatenation, loss, SGD) is memory traffic, the same for every column.

Time of a GEMM = max(compute, compulsory bytes / HBM bandwidth). Assumptions (the peaks are
NVIDIA's dense figures; the rest is the model):
* FFMA kernels: 44 % of the FP32 peak (the FFMA share of conv2d_forward's main loop in its SASS),
  no tiles modelled.
* Tensor-core kernels: the tile is ``tensorcore_conv.plan``'s (the chooser the kernels launch
  with, run here for the GPU's SM count). A block's work is its tile's bm x bn x k (edge tiles
  multiply zeros; a stride-2 input gradient's phases each their own taps); the grid runs in
  ceil(blocks / SMs) waves of one block per SM, each SM at the loop efficiency
  min(issue, shared memory) of that kernel, x 0.85 for pipeline fill and epilogue:
  - issue: an SM sub-partition issues one instruction a clock, and an HMMA keeps its tensor core
    busy 8 clocks (A100: TF32 m16n8k8 and BF16 m16n8k16) or 4 (H100), so the loop runs at most at
    HMMA x clocks / instructions of the loop (the cp.async loop of each kernel, sm_80 for the
    A100, sm_90 for the H100, from benchmarks/tc_loops.json: generated from the SASS by
    ``python benchmarks/sass.py --write-loops benchmarks/tc_loops.json``, which records the
    NVRTC version; rerun it whenever a tensor-core kernel changes);
  - shared memory (128 B/clk/SM): the loop's FLOP per shared-memory byte over what the tensor
    cores need (A100 8 TF32 / 16 BF16, H100 16 / 32).
* PyTorch + cuDNN (TF32, its default for convolutions): 65 % of the TF32 peak, same bytes.
Kernel launch overheads are left out (docs/performance.md counts them separately).
"""
import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gpunet.primitives import tensorcore, tensorcore_conv   # noqa: E402

HW = {   # dense peaks (FLOP/s), HBM bytes/s, SMs, clocks an HMMA holds the tensor core, SASS arch
    "A100": dict(fp32=19.5e12, tf32=156e12, bf16=312e12, bw=2.04e12, sms=108, hmma_clocks=8, arch="sm_80",
                 smem_need={"tf32": 8, "bf16": 16}),
    "H100": dict(fp32=67e12, tf32=494.7e12, bf16=989e12, bw=3.35e12, sms=132, hmma_clocks=4, arch="sm_90",
                 smem_need={"tf32": 16, "bf16": 32}),
}
# The cp.async main loop of each tensor-core kernel, one k-tile of one warp, as benchmarks/sass.py
# counted it: generated, never edited by hand (python benchmarks/sass.py --write-loops benchmarks/tc_loops.json).
LOOPS_JSON = pathlib.Path(__file__).with_name("tc_loops.json")
LOOPS = json.loads(LOOPS_JSON.read_text())
_KERNEL = {"forward": "tc_conv2d_forward", "input": "tc_conv2d_backward_input", "filter": "tc_conv2d_backward_filter"}
FFMA_EFFICIENCY, TC_OVERHEAD, CUDNN_EFFICIENCY = 0.44, 0.85, 0.65
BATCH, SIZE, LEVELS = 16, 128, (32, 64, 128, 256)


def loop(arch, suffix, kind, product, loops=None):
    """(HMMA, all instructions, tensor-core FLOP per shared-memory byte) of the cp.async loop of the
    conv kernel for ``product`` (forward, input, filter), operand ``kind`` (tf32, bf16, f16) and
    tile ``suffix`` on ``arch``, from ``loops`` (default: benchmarks/tc_loops.json's)."""
    key = f"{arch} {_KERNEL[product]}_{kind}{suffix}"
    try:
        entry = (loops or LOOPS)["loops"][key]
    except KeyError:
        raise KeyError(f"{key} is not in {LOOPS_JSON.name}: regenerate it with {LOOPS['command']}") from None
    return entry["hmma"], entry["all"], entry["flop_per_smem_byte"]


def nvrtc_used(loops=None):
    """``NVRTC 13.5 (sm_80), 13.5 (sm_90)``: the compilers the loop table was counted from."""
    return "NVRTC " + ", ".join(f"{v} ({arch})" for arch, v in sorted((loops or LOOPS)["nvrtc"].items()))


def unet_convs():
    """(name, x shape, w shape, stride, transposed, needs input gradient) of every conv; a transposed
    conv is given as the stride-2 conv from its output (x) to its input, whose products it runs."""
    convs, size, cin, skips = [], SIZE, 3, []
    for level, c in enumerate(LEVELS):
        convs += [(f"enc{level} a", (BATCH, size, size, cin), (3, 3, cin, c), 1, False, level > 0),
                  (f"enc{level} b", (BATCH, size, size, c), (3, 3, c, c), 1, False, True)]
        cin = c
        if level < len(LEVELS) - 1:
            skips.append((size, c))
            size //= 2
    for level, (skip_size, c) in reversed(list(enumerate(skips))):
        convs.append((f"up{level} (conv-T)", (BATCH, skip_size, skip_size, c), (3, 3, c, cin), 2, True, True))
        convs += [(f"dec{level} a", (BATCH, skip_size, skip_size, 2 * c), (3, 3, 2 * c, c), 1, False, True),
                  (f"dec{level} b", (BATCH, skip_size, skip_size, c), (3, 3, c, c), 1, False, True)]
        cin = c
    convs.append(("out 1x1", (BATCH, SIZE, SIZE, cin), (1, 1, cin, 1), 1, False, True))
    return convs


def products(x_shape, w_shape, stride, transposed, dx):
    """(product, the conv's plan name, FLOPs, bytes at 4 B an element / float32 outputs) of one conv's GEMMs."""
    n, h, w, cin = x_shape
    kh, kw, _, cout = w_shape
    oh, ow = math.ceil(h / stride), math.ceil(w / stride)
    p_x, p_y = n * h * w, n * oh * ow
    flops = 2 * p_y * cout * kh * kw * cin
    x, y, wt = p_x * cin, p_y * cout, kh * kw * cin * cout
    fwd, inp, fil = ("forward", flops, (x, wt), 4 * y), ("input", flops, (y, wt), 4 * x), ("filter", flops, (x, y), 4 * wt)
    if transposed:   # its forward is the conv's input gradient, its input gradient the conv's forward
        return [inp, fwd, fil] if dx else [inp, fil]
    return [fwd, inp, fil] if dx else [fwd, fil]


def tc_time(hw, kind, product, flops, x_shape, w_shape, stride, tiles=tensorcore.CONV_TILES):
    """Seconds of one tensor-core conv product's compute on the tile tensorcore_conv.plan picks (of ``tiles``)."""
    h = HW[hw]
    n, hi, wi, cin = x_shape
    out_hw = (math.ceil(hi / stride), math.ceil(wi / stride))
    tile, grid, splits, per_split = tensorcore_conv.plan(product, x_shape, w_shape, out_hw, (stride, stride),
                                                         4 if kind == "tf32" else 2, sms=h["sms"], tiles=tiles)
    blocks = math.prod(grid)
    kh, kw, _, cout = w_shape
    depth = {"forward": kh * kw * cin, "input": kh * kw * cout / stride ** 2, "filter": per_split}[product]
    block_flops = 2 * tile.bm * tile.bn * depth
    hmma, instructions, flop_per_byte = loop(h["arch"], tile.suffix, kind, product)
    efficiency = min(1.0, hmma * h["hmma_clocks"] / instructions, flop_per_byte / h["smem_need"][kind])
    sm_rate = h[kind] / h["sms"] * efficiency * TC_OVERHEAD
    return math.ceil(blocks / h["sms"]) * block_flops / sm_rate, tile, efficiency


def step(hw, mode, tiles=tensorcore.CONV_TILES):
    """Seconds of one step's GEMMs in ``mode`` (ffma, tf32, bf16, cudnn) and of its memory-bound rest;
    ``tiles``: the tensor-core tiles the chooser may pick from."""
    h = HW[hw]
    size = 2 if mode == "bf16" else 4
    gemms = rest = 0.0
    for _, x_shape, w_shape, stride, transposed, dx in unet_convs():
        for product, flops, operands, out_bytes in products(x_shape, w_shape, stride, transposed, dx):
            memory = (sum(operands) * size + out_bytes) / h["bw"]
            if mode == "ffma":
                compute = flops / (h["fp32"] * FFMA_EFFICIENCY)
            elif mode == "cudnn":
                compute = flops / (h["tf32"] * CUDNN_EFFICIENCY)
            else:
                compute = tc_time(hw, mode, product, flops, x_shape, w_shape, stride, tiles)[0]
            gemms += max(compute, memory)
        y_elements = math.prod(x_shape[:3]) // stride ** 2 * w_shape[3]
        rest += 6 * y_elements * 4 / h["bw"]   # bias grad, ReLU forward + backward, pooling / concat share
    return gemms, rest


def table():
    lines = ["| GPU | mode | GEMMs (ms) | memory-bound rest (ms) | step (ms) | vs PyTorch + cuDNN TF32 |",
             "|---|---|---:|---:|---:|---:|"]
    for hw in HW:
        torch_total = sum(step(hw, "cudnn"))
        small = (tensorcore.SMALL,)
        for mode, tiles, label in (("ffma", None, "gpunet \"highest\" (FFMA)"),
                                   ("tf32", small, "gpunet \"high\": TF32 mma, 64x64 tiles only (before)"),
                                   ("tf32", (tensorcore.SMALL, tensorcore.BIG), "gpunet \"high\": TF32, 64x64 or 128x128"),
                                   ("tf32", tensorcore.TILES, "gpunet \"high\": TF32, four tiles (no 256x32)"),
                                   ("tf32", tensorcore.CONV_TILES, "gpunet \"high\": TF32, five tiles (+ 256x32)"),
                                   ("bf16", small, "gpunet, bf16 operands, 64x64 tiles only (before)"),
                                   ("bf16", (tensorcore.SMALL, tensorcore.BIG), "gpunet, bf16 operands, 64x64 or 128x128"),
                                   ("bf16", tensorcore.TILES, "gpunet, bf16 operands, four tiles (no 256x32)"),
                                   ("bf16", tensorcore.CONV_TILES, "gpunet, bf16 operands, five tiles (+ 256x32)"),
                                   ("cudnn", None, "PyTorch + cuDNN, TF32")):
            g, r = step(hw, mode, tiles)
            lines.append(f"| {hw} | {label} | {g * 1e3:.2f} | {r * 1e3:.2f} | {(g + r) * 1e3:.2f} | "
                         f"{(g + r) / torch_total:.2f}x |")
    flops = sum(f for _, x, w, s, t, dx in unet_convs() for _, f, _, _ in products(x, w, s, t, dx))
    return "\n".join(lines) + f"\n\nGEMM work of one step: {flops / 1e9:.1f} GFLOP over {len(unet_convs())} convs.\n"


SPEED_ARCHS, SPEED_KINDS = ("sm_80", "sm_90"), ("tf32", "bf16")   # fp16's loops are bf16's, instruction for instruction
CONV_TILES = tensorcore.CONV_TILES   # the tiles tc_conv*.cu has (a superset of the dense ones)


def tile_speeds(loops=None):
    """``({suffix: speed}, {suffix: {(arch, kind): ratio}})``: the ``Tile.speed`` values
    gpunet/primitives/tensorcore.py should hold, derived from the loop table. The rule: a tile's
    issue limit (HMMA per instruction of its conv forward cp.async loop) over SMALL's, the
    geometric mean of that ratio over sm_80 and sm_90 and TF32 and BF16 operands (one speed serves
    every operand kind and GPU in tile_for), rounded to 2 decimals. Shared memory and the model's
    cap at the tensor cores' peak are left out (``model_speeds`` has both, for comparison)."""
    speeds, ratios = {}, {}
    for tile in CONV_TILES:
        ratios[tile.suffix] = {}
        for arch in SPEED_ARCHS:
            for kind in SPEED_KINDS:
                hmma, instructions, _ = loop(arch, tile.suffix, kind, "forward", loops)
                small_hmma, small_instructions, _ = loop(arch, tensorcore.SMALL.suffix, kind, "forward", loops)
                ratios[tile.suffix][arch, kind] = (hmma / instructions) / (small_hmma / small_instructions)
        values = list(ratios[tile.suffix].values())
        speeds[tile.suffix] = round(math.prod(values) ** (1 / len(values)), 2)
    return speeds, ratios


def loop_efficiency(hw, kind, suffix, product="forward", loops=None):
    """(tc_time's loop efficiency min(1, issue, shared memory) on GPU ``hw``, whether shared memory is the bound)."""
    h = HW[hw]
    hmma, instructions, flop_per_byte = loop(h["arch"], suffix, kind, product, loops)
    issue, smem = min(1.0, hmma * h["hmma_clocks"] / instructions), flop_per_byte / h["smem_need"][kind]
    return min(issue, smem), smem < issue


def model_speeds(loops=None):
    """``({suffix: speed}, [(GPU, kind, suffix)])``: the speeds by the model's own loop efficiency
    (min(1, issue, shared memory) of the conv forward, relative to SMALL's, geometric mean over the
    A100 / H100 and TF32 / BF16), and the loops shared memory bounds: where the issue-limit rule of
    ``tile_speeds`` and the model part ways."""
    speeds, bound = {}, []
    for tile in CONV_TILES:
        values = []
        for hw in HW:
            for kind in SPEED_KINDS:
                efficiency, smem = loop_efficiency(hw, kind, tile.suffix, loops=loops)
                values.append(efficiency / loop_efficiency(hw, kind, tensorcore.SMALL.suffix, loops=loops)[0])
                bound += [(hw, kind, tile)] if smem else []
        speeds[tile.suffix] = round(math.prod(values) ** (1 / len(values)), 2)
    return speeds, bound


def speeds_table():
    """Markdown: each tile's issue-limit ratio per (arch, kind), the derived speed, tensorcore.py's,
    and the model's efficiency ratio for comparison."""
    (speeds, ratios), (modelled, bound) = tile_speeds(), model_speeds()
    names = {tile.suffix: name for name, tile in vars(tensorcore).items() if isinstance(tile, tensorcore.Tile)}
    columns = [f"{arch} {kind}" for arch in SPEED_ARCHS for kind in SPEED_KINDS]
    lines = ["| tile | " + " | ".join(columns) + " | derived speed | tensorcore.py | off by | model's efficiency ratio |",
             "|---|" + "---:|" * (len(columns) + 4)]
    for tile in CONV_TILES:
        cells = " | ".join(f"{ratios[tile.suffix][arch, kind]:.3f}" for arch in SPEED_ARCHS for kind in SPEED_KINDS)
        off = tile.speed / speeds[tile.suffix] - 1
        lines.append(f"| {names.get(tile.suffix, tile.suffix)} {tile.bm}x{tile.bn} | {cells} | "
                     f"{speeds[tile.suffix]:.2f} | {tile.speed:.2f} | {off:+.0%} | {modelled[tile.suffix]:.2f} |")
    bound = ", ".join(f"{hw} {kind} {tile.bm}x{tile.bn}" for hw, kind, tile in bound) or "none"
    return "\n".join(lines) + (f"\n\nFrom {LOOPS_JSON.name} ({nvrtc_used()}); the rule: tile_speeds' docstring. "
                               f"Conv forward loops the model finds bound by shared memory, not issue: {bound}.\n")


def layers(kind="tf32"):
    """Markdown: the tile, loop efficiency and modelled time of every product, per GPU."""
    lines = ["| GPU | conv | product | tile | efficiency | time (us) |", "|---|---|---|---|---:|---:|"]
    for hw in HW:
        for name, x_shape, w_shape, stride, transposed, dx in unet_convs():
            for product, flops, _, _ in products(x_shape, w_shape, stride, transposed, dx):
                seconds, tile, eff = tc_time(hw, kind, product, flops, x_shape, w_shape, stride)
                label = f"{tile.bm}x{tile.bn}"
                lines.append(f"| {hw} | {name} | {product} | {label} | {eff:.2f} | {seconds * 1e6:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", action="store_true", help="the tile of every U-Net product (TF32)")
    parser.add_argument("--speeds", action="store_true", help="the Tile speeds tensorcore.py should hold")
    args = parser.parse_args()
    print(layers() if args.layers else speeds_table() if args.speeds else table())
