"""Matrix products on tensor cores: TF32 for float32 operands, bf16 / fp16 operands as they are,
float32 results. NumPy reference and kernel launch (kernels/tc_gemm.cu) side by side.

    c = tensorcore.matmul(a, b, bias=None, trans_a=False, trans_b=False)
        a (M, K) or, with trans_a, stored (K, M); b (K, N) or, with trans_b, stored (N, K);
        bias (N,) float32 or None -> c (M, N) float32 = op(a) @ op(b) + bias.

Operands: both float32 (rounded to TF32, i.e. 10 mantissa bits by cvt.rna.tf32.f32: nearest,
ties away from zero), both ``ml_dtypes.bfloat16`` or both ``np.float16``. Products are
exact and summed in float32 (fp32 accumulators), so the NumPy reference rounds the float32
operands the same way (``tf32_round``), converts 16-bit operands to float32 exactly, and
multiplies in float32: the two backends then differ only by summation order.

16-bit activations (mixed precision): ``matmul(..., out_dtype=bf16 or fp16, activation=,
fold=)`` hands the float32 partial sums to ``tc_finish`` (kernels/tc_gemm.cu), which adds the
splits and the bias, applies the activation (or folds an activation's gradient, the gate given in
the 16-bit type) in float32 and rounds once to the 16-bit type; the NumPy reference computes the
same in float32 and narrows once (``epilogue.store``).

Dense uses this for float32 under ``gn.config.set_float32_matmul_precision("high")``; bf16 /
fp16 operands (the mixed-precision policies to come) always take it.

Kernel path (cuda and cudasim; sm_80 and newer on a GPU): one ``tc_gemm_<type>_<nn|nt|tn>``
launch over (ceil(M / 64), ceil(N / 64), splits) blocks of 128 threads, or on the block tile
``tile_for`` picks (``tc_gemm_<type>_<layout>_128x128``, ``_128x64``, ``_128x32``; the grid
divided by its sides).
When the output has few tiles (the grid would leave SMs idle), K is split into ``splits`` chunks
of whole k-tiles, each written to its own slice of a partial buffer, and ``tc_sum_splits`` adds
the slices in order (plus the bias): deterministic, no atomics.

Tiles (``tile_for``, used by tensorcore_conv too), all blocks of 4 warps: ``SMALL`` 64 x 64
(32 x 32 warp tiles); ``BIG`` 128 x 128 (64 x 64 warp tiles: half the shared-memory bytes and
about half the instructions per mma FLOP); ``WIDE`` 128 x 64 (64 x 32 warp tiles) for outputs
33-64 columns wide; ``NARROW`` 128 x 32 (32 x 32 warp tiles in a column) for at most 32 columns,
where SMALL's right-hand warps would multiply zeros. A product takes the tile whose grid
finishes in the least modelled time: ceil(blocks / SMs) waves of one block's work (its area
times its k length) divided by the tile's loop speed (``Tile.speed``), ties to the earlier tile
of TILES. So big outputs take BIG, narrow ones WIDE or NARROW, and small grids keep SMALL (the
SMs a bigger tile would leave idle cost more than it saves), unless split-K gives the bigger
tile's grid the blocks to fill the GPU anyway. The SM count is the
device's on the cuda backend; the NumPy and cudasim backends choose as a GPU of
``SIMULATED_SMS`` SMs would, so that test-sized products run both tiles.
"""
import collections
import math

import numpy as np

from .. import backend
from . import epilogue as epilogues
from . import cast, launch, precision

try:
    import ml_dtypes
    _BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:   # pragma: no cover - bf16 operands then cannot exist either
    _BF16 = None

__all__ = ["matmul", "store", "usable", "tf32_round", "operand_type", "operand_unit_roundoff", "tile_for", "Tile",
           "SMALL", "BIG", "WIDE", "NARROW", "TALL", "TILES", "CONV_TILES", "gemm_plan"]

_K_BYTES = 64           # TC_KBYTES: k bytes of an operand row per k-tile
_SPLIT_BLOCKS = 256     # split K until about this many blocks run (2 per SM on an A100 / H100)...
_SPLIT_MIN_TILES = 4    # ...keeping at least this many k-tiles in each split (the pipeline depth)
_MAX_SUM_BLOCKS = 2048
_CAPABILITY = {}        # device id -> compute capability as an int (80 for 8.0)
_SMS = {}               # device id -> multiprocessor count

Tile = collections.namedtuple("Tile", "suffix bm bn threads speed")
Tile.__doc__ = """A block tile of the tensor-core kernels: kernel name suffix, rows, columns, threads,
and its loop's modelled speed relative to SMALL (tile_for's cost)."""
# Speeds: the loops' issue limits relative to SMALL's (HMMA per instruction of the cp.async loop,
# benchmarks/sass.py, the conv forward on sm_80 and sm_90, TF32 and bf16, rounded: python
# benchmarks/tc_model.py --speeds derives them). Shared memory, not issue, bounds the H100's bf16
# loops on the 32-column warp tiles (SMALL, WIDE, NARROW, TALL), where BIG gains more than this says.
SMALL = Tile("", 64, 64, 128, 1.0)              # tc_gemm.cuh's TcSmall (TC_THREADS)
BIG = Tile("_128x128", 128, 128, 128, 2.0)      # TcBig: 64 x 64 warp tiles
WIDE = Tile("_128x64", 128, 64, 128, 1.5)       # TcWide: 64 x 32 warp tiles
NARROW = Tile("_128x32", 128, 32, 128, 1.0)     # TcNarrow: SMALL's 32 x 32 warp tiles, 4 in a column
TALL = Tile("_256x32", 256, 32, 128, 1.4)       # TcTall: TcWide's 64 x 32 warp tiles, 4 in a column
TILES = (SMALL, BIG, WIDE, NARROW)              # the dense products' (tc_gemm.cu)
CONV_TILES = TILES + (TALL,)                    # the convolutions' (tc_conv.cu, TALL in tc_conv_tall.cu)
SIMULATED_SMS = 2       # the SM count the numpy and cudasim backends choose tiles for


def operand_type(dtype):
    """``"tf32"``, ``"bf16"`` or ``"f16"``: the kernels' name for operands of ``dtype``; else None."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "tf32"
    if dtype == np.float16:
        return "f16"
    if _BF16 is not None and dtype == _BF16:
        return "bf16"
    return None


def operand_unit_roundoff(kind):
    """Unit roundoff u of an operand format: half an ulp of 1, relative (tf32, fp16: 2^-11; bf16: 2^-8)."""
    return {"tf32": 2.0 ** -11, "f16": 2.0 ** -11, "bf16": 2.0 ** -8, "f32": 2.0 ** -24}[kind]


def usable():
    """Whether the active backend runs tensor-core products: numpy (the reference) and cudasim
    always; the cuda backend on compute capability 8.0 and newer (mma.sync tf32/bf16, cp.async)."""
    be = backend.current()
    if be.name != "cuda":
        return True
    device = be.xp.cuda.Device()
    if device.id not in _CAPABILITY:   # asked once per device: dense and conv ask on every call
        _CAPABILITY[device.id] = int(device.compute_capability)
    return _CAPABILITY[device.id] >= 80


def multiprocessors():
    """The SM count tile_for plans for: the cuda device's, else SIMULATED_SMS."""
    be = backend.current()
    if be.name != "cuda":
        return SIMULATED_SMS
    device = be.xp.cuda.Device()
    if device.id not in _SMS:
        _SMS[device.id] = int(be.xp.cuda.runtime.deviceGetAttribute(16, device.id))   # MultiProcessorCount
    return _SMS[device.id]


def tile_for(m, n, k=1, layers=1, splits=None, sms=None, tiles=TILES):
    """The Tile (of ``tiles``) for an (m, k) @ (k, n) product run ``layers`` times side by side
    (grid z: an input gradient's phases), on ``sms`` SMs (default: ``multiprocessors()``).
    ``splits(tile)`` -> ``(splits, k_per_split)`` where the kernel splits K (grid z), else K is one
    piece. Cost of a tile: ceil(blocks / sms) * bm * bn * k_per_split / speed; the least wins,
    ties to the first."""
    sms = multiprocessors() if sms is None else sms
    best = None
    for tile in tiles:
        count, per_split = splits(tile) if splits else (1, k)
        blocks = math.ceil(m / tile.bm) * math.ceil(n / tile.bn) * layers * count
        cost = math.ceil(blocks / sms) * tile.bm * tile.bn * max(per_split, 1) / tile.speed
        if best is None or cost < best[0]:
            best = (cost, tile)
    return best[1]


def tf32_round(x):
    """float32 ``x`` rounded to TF32 as cvt.rna.tf32.f32 does (inf and NaN unchanged); a new array."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    finite = (bits & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    rounded = np.where(finite, (bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000), bits)
    return rounded.astype(np.uint32).view(np.float32)


def _check(op, a, b, bias, trans_a, trans_b):
    kinds = {operand_type(a.dtype), operand_type(b.dtype)}
    if a.dtype != b.dtype or None in kinds:
        raise TypeError(f"{op}: tensor-core operands must both be float32, bfloat16 or float16; received "
                        f"{a.dtype} and {b.dtype}.")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{op}: operands must be matrices; received shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    m, k = a.shape[::-1] if trans_a else a.shape
    k_b, n = b.shape[::-1] if trans_b else b.shape
    if k != k_b:
        raise ValueError(f"{op}: op(a) is ({m}, {k}) and op(b) is ({k_b}, {n}): the inner sizes differ "
                         f"(trans_a={trans_a}, trans_b={trans_b}).")
    if bias is not None and (bias.shape != (n,) or bias.dtype != np.float32):
        raise ValueError(f"{op}: bias must be float32 of shape ({n},); received {bias.dtype} {tuple(bias.shape)}.")
    return m, k, n


def matmul(a, b, bias=None, trans_a=False, trans_b=False, op="matmul", out_dtype=None, activation=None,
           fold=None):
    """``op(a) @ op(b) (+ bias)`` on tensor cores, float32 (M, N); see the module doc for shapes.

    ``out_dtype`` (float32, bfloat16 or float16): the result in that dtype instead, after
    ``activation`` (an ``epilogue.Epilogue``) or gated by ``fold = (gate (M, N), Epilogue)``, the gate
    in ``out_dtype`` (as ``epilogue.store`` finishes a product, with the split-K sum fused in)."""
    m, k, n = _check(op, a, b, bias, trans_a, trans_b)
    if not usable():
        raise RuntimeError(f"{op}: tensor-core products need a GPU of compute capability 8.0 or newer; "
                           f"this one is {backend.current().xp.cuda.Device().compute_capability}.")
    if backend.current().runs_kernels:
        return _matmul_kernel(op, a, b, bias, trans_a, trans_b, m, k, n, out_dtype, activation, fold)
    a32, b32 = (tf32_round(v) if v.dtype == np.float32 else v.astype(np.float32) for v in (a, b))
    c = (a32.T if trans_a else a32) @ (b32.T if trans_b else b32)
    if bias is not None:
        c += bias
    return c if out_dtype is None else epilogues.store(c, out_dtype, activation=activation, fold=fold)


def store(c, dtype, bias=None, activation=None, fold=None, op="store"):
    """A float32 product ``c (..., cols)`` as ``dtype``, as ``epilogue.store`` does (its NumPy
    reference here): ``act(c + bias)``, or with ``fold = (gate, Epilogue)`` c times act' read from
    gate (c's shape, in ``dtype``), rounded once. The kernel backends run tc_finish (one split)."""
    if not backend.current().runs_kernels:
        return epilogues.store(c, dtype, bias=bias, activation=activation, fold=fold)
    cols = c.shape[-1]
    if fold is not None:
        fold = (fold[0].reshape(-1, cols) if fold[0].size == c.size else fold[0], fold[1])
    return _finish(op, c.reshape(1, -1, cols), bias, precision.dtype_of(dtype), activation, fold).reshape(c.shape)


def _finish(op, partial, bias, dtype, activation, fold):
    """tc_finish: ``partial (splits, rows, cols)`` float32 summed in order (+ bias), the epilogue, -> dtype."""
    splits, rows, cols = partial.shape
    if fold is not None and tuple(fold[0].shape) != (rows, cols):
        raise ValueError(f"{op}: the folded activation's output has shape {tuple(fold[0].shape)}; the gradient "
                         f"it gates has shape {(rows, cols)}.")
    (partial,) = launch.inputs(op, partial)
    bias_arg = launch.inputs(op, bias)[0] if bias is not None else launch.placeholder()
    c = launch.empty((rows, cols), dtype)
    gate, epilogue = (c, activation) if fold is None else fold   # without a fold the gate is never read
    (gate,) = launch.inputs(op, gate, dtype=dtype)
    launch.run("tc_gemm.cu", "tc_finish", launch.blocks_for(rows * cols, cap=_MAX_SUM_BLOCKS), launch.THREADS,
               partial, bias_arg, c, gate, rows, cols, splits, int(bias is not None), int(fold is not None),
               *epilogues.kernel_settings(epilogue))
    return c


def splits_for(m, k, n, itemsize, tile=SMALL):
    """``(splits, k_per_split)`` for an (M, K) @ (K, N) product on ``tile``: split K only while the
    output's tiles leave SMs idle, every split whole k-tiles, at least _SPLIT_MIN_TILES of them."""
    tiles = math.ceil(m / tile.bm) * math.ceil(n / tile.bn)
    k_tile = _K_BYTES // itemsize
    k_tiles = max(1, math.ceil(k / k_tile))
    splits = max(1, min(math.ceil(_SPLIT_BLOCKS / tiles), k_tiles // _SPLIT_MIN_TILES))
    per_split = math.ceil(k_tiles / splits) * k_tile
    return max(1, math.ceil(k / per_split)), per_split


def gemm_plan(m, k, n, itemsize, sms=None):
    """``(tile, splits, k_per_split)`` of an (M, K) @ (K, N) tensor-core product."""
    tile = tile_for(m, n, k, splits=lambda t: splits_for(m, k, n, itemsize, t), sms=sms)
    return (tile, *splits_for(m, k, n, itemsize, tile))


def _matmul_kernel(op, a, b, bias, trans_a, trans_b, m, k, n, out_dtype=None, activation=None, fold=None):
    dtype = a.dtype
    a, b = launch.inputs(op, a, b, dtype=dtype)
    for what, size in (("rows x columns", m * n), ("rows x depth", m * k), ("depth x columns", k * n)):
        launch.i32(size, f"{op}: {what}")
    tile, splits, per_split = gemm_plan(m, k, n, dtype.itemsize)
    rows, cols = launch.grid_for((m, n), (tile.bm, tile.bn))
    if cols > 65535:
        raise ValueError(f"{op}: {n} output columns need {cols} column tiles; the grid's y axis takes 65,535.")
    kernel = f"tc_gemm_{operand_type(dtype)}_{'t' if trans_a else 'n'}{'t' if trans_b else 'n'}{tile.suffix}"
    bias_arg = launch.inputs(op, bias)[0] if bias is not None else launch.zeros((1,))
    finish = out_dtype is not None
    out = launch.empty((splits, m, n) if splits > 1 or finish else (m, n))
    launch.i32(out.size, f"{op}: split partial sums")
    launch.run("tc_gemm.cu", kernel, (rows, cols, splits), tile.threads, a, b, bias_arg, out, m, k, n,
               int(bias is not None and not finish), per_split)
    if finish:   # tc_finish adds the splits and the bias itself
        return _finish(op, out, bias, precision.dtype_of(out_dtype), activation, fold)
    if splits == 1:
        return out
    c = launch.empty((m, n))
    launch.run("tc_gemm.cu", "tc_sum_splits", launch.blocks_for(m * n, cap=_MAX_SUM_BLOCKS), launch.THREADS,
               out, bias_arg, c, m, n, splits, int(bias is not None))
    return c


# Helpers of the 16-bit paths of dense.py and conv_half.py.

def same_dtype(op, names, *arrays):
    """The dtype of ``arrays``, which must share it (a TypeError naming ``op`` and the array otherwise)."""
    dtype = arrays[0].dtype
    for name, a in zip(names, arrays):
        if a.dtype != dtype:
            raise TypeError(f"{op}: {names[0]} is {dtype}, so {name} must be {dtype} too (a layer casts its "
                            f"kernel to its compute dtype); received {a.dtype}.")
    return dtype


def float32_bias(op, b):
    """A bias as float32: as it is, or a 16-bit one (a layer's bias cast to its compute dtype) widened."""
    if b is None or b.dtype == np.float32:
        return b
    if not precision.is_half(b.dtype):
        raise TypeError(f"{op}: b must be float32, bfloat16 or float16; received {b.dtype}.")
    if not backend.current().runs_kernels:
        return precision.widen(b)
    return cast.cast(b, np.float32)


def epilogue_args(op, fold, activation, shape, like):
    """A gemm.cu / conv.cu kernel's ``gate, has_gate, act, alpha``, the gate (fold's y, ``shape``) in
    the kernel's element type, ``like``'s dtype; without a fold a placeholder the kernel never reads."""
    if fold is None:
        return (launch.placeholder() if like.dtype == np.float32 else like, launch.i32(0),
                *epilogues.kernel_settings(activation))
    if like.dtype == np.float32:
        return epilogues.fold_settings(fold, shape, op)
    gate, epilogue = fold
    if tuple(gate.shape) != tuple(shape):
        raise ValueError(f"{op}: the folded activation's output has shape {tuple(gate.shape)}; the gradient "
                         f"it gates has shape {tuple(shape)}.")
    (gate,) = launch.inputs(op, gate, dtype=like.dtype)
    return (gate, launch.i32(1), *epilogues.kernel_settings(epilogue))
