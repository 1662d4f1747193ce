"""Activation memory of one training step, float32 against a mixed policy (issue 11), on numpy.

    python benchmarks/mixed_precision_memory.py                 # the three examples' models
    python benchmarks/mixed_precision_memory.py --policy mixed_float16

Two measures per model and policy:

* kept: the bytes of the arrays the layers hold for their backward after a training forward
  (every array in a layer's attributes, its activation's and a nested model's, each buffer once;
  weights and their compute-dtype copies left out): what a step keeps alive between forward and
  backward, the part of memory that a policy halves. "without patches" leaves out the im2col
  patches the float32 numpy conv keeps for its filter gradient, which the 16-bit conv path
  recomputes instead: the like-for-like comparison of the activations themselves.
* peak: tracemalloc's peak over one whole ``train_step`` (forward, loss, backward, update) minus
  what was allocated before it: the kept arrays plus the transient ones (im2col patches, float32
  products of 16-bit operands, gradients).
"""
import argparse
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import gpunet as gn  # noqa: E402


def _models():
    """name -> (build, x shape, targets(n)): the three examples' models at their default widths."""
    import denoising_autoencoder
    import digits_cnn
    import unet_segmentation
    rng = np.random.default_rng(0)
    return {
        "digits CNN (batch 32)": (digits_cnn.build_model, (32, 8, 8, 1), lambda n: rng.integers(0, 10, n),
                                  "sparse_categorical_crossentropy"),
        "denoiser (batch 32)": (denoising_autoencoder.build_model, (32, 32, 32, 3),
                                lambda n: rng.uniform(0, 1, (n, 32, 32, 3)).astype(np.float32), "mse"),
        "U-Net (batch 16)": (unet_segmentation.build_unet, (16, 32, 32, 3),
                             lambda n: (rng.uniform(0, 1, (n, 32, 32, 1)) > 0.5).astype(np.float32),
                             "binary_crossentropy"),
    }


def _buffer(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _arrays(value, found):
    if isinstance(value, np.ndarray):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _arrays(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _arrays(item, found)


def kept_bytes(model, patches=True):
    """Bytes of the arrays the layers of ``model`` hold after a forward (weights excluded);
    ``patches=False`` leaves out the im2col patches a float32 conv keeps on numpy for its filter
    gradient (``_saved`` of a conv layer; the 16-bit conv path recomputes them instead)."""
    from gpunet.layers.conv import BaseConv
    weights = {id(_buffer(w)) for w in model.weights}
    seen, total = set(), 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        found = []
        for key, value in vars(layer).items():
            if key == "_weight_casts" or (not patches and key == "_saved" and isinstance(layer, BaseConv)):
                continue   # the bf16 copy of a kernel is a weight, not an activation
            if isinstance(value, gn.layers.Layer):
                stack.append(value)
            else:
                _arrays(value, found)
        for array in found:
            buffer = _buffer(array)
            if id(buffer) not in seen and id(buffer) not in weights:
                seen.add(id(buffer))
                total += buffer.nbytes
    return total


def measure(build, shape, targets, loss, policy):
    gn.mixed_precision.set_global_policy(policy)
    gn.utils.set_random_seed(0)
    model = build()
    gn.mixed_precision.set_global_policy("float32")
    model.compile(optimizer="adam", loss=loss)
    x = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    y = targets(shape[0])
    xb, yb = model._to_backend([x]), model._targets_to_backend(y)
    model._train_step(xb, yb)            # optimizer slots and caches made before measuring
    model.forward(xb, training=True)
    kept = (kept_bytes(model), kept_bytes(model, patches=False))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    model._train_step(xb, yb)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return kept, peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="mixed_bfloat16", choices=("mixed_bfloat16", "mixed_float16"))
    args = parser.parse_args(argv)
    gn.set_backend("numpy")
    print(f"MiB, float32 -> {args.policy} (ratio)")
    print(f"{'model':24s} {'kept':>24s} {'kept without patches':>24s} {'peak':>24s}")
    for name, (build, shape, targets, loss) in _models().items():
        kept32, peak32 = measure(build, shape, targets, loss, "float32")
        kept16, peak16 = measure(build, shape, targets, loss, args.policy)
        cells = [(kept32[0], kept16[0]), (kept32[1], kept16[1]), (peak32, peak16)]
        print(f"{name:24s}" + "".join(f" {a / 2**20:8.2f} -> {b / 2**20:6.2f} ({b / a:4.2f})" for a, b in cells))


if __name__ == "__main__":
    main()
