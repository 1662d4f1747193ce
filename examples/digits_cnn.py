"""Train a small CNN on scikit-learn's bundled handwritten digits (8x8 grey images, no download).

    python examples/digits_cnn.py                    # ~98% test accuracy, seconds on the numpy backend
    python examples/digits_cnn.py --backend cuda     # the same model on a GPU
    python examples/digits_cnn.py --quick            # a few epochs on a subset (for CI)

Without --backend the example runs where gpunet's default puts it: GPUNET_BACKEND if set, else
cuda when CuPy sees a GPU, else numpy. --backend cudasim runs the real CUDA kernels on the CPU,
to check them rather than to train: slow, so use --quick there (and set
GPUNET_CUDASIM_CONTEXTS=fibers, see docs/backends.md).

Prints the test accuracy. Writes to --out DIR: digits.weights.h5 (Keras 3 layout),
history.png (loss and accuracy per epoch, when matplotlib is installed), history.json
(per-epoch logs and the test accuracy) and summary.txt.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gpunet as gn  # noqa: E402  (after the path line, so the example runs from a checkout)
from gpunet import layers  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="most epochs, early stopping may end sooner (default: 40, 5 with --quick)")
    parser.add_argument("--batch-size", type=int, default=None, help="32 (16 with --quick)")
    parser.add_argument("--backend", choices=("numpy", "cudasim", "cuda"), default=None,
                        help="default: GPUNET_BACKEND if set, else cuda when CuPy sees a GPU, else numpy")
    parser.add_argument("--quick", action="store_true",
                        help="5 epochs (unless --epochs) on 720 training images, batch 16 (for CI)")
    parser.add_argument("--out", metavar="DIR", default="digits_out",
                        help="where to write weights, plot, history and summary (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=("float32", "mixed_bfloat16", "mixed_float16"), default="float32",
                        help="dtype policy (gn.mixed_precision.set_global_policy): the layers compute in bf16 / "
                             "fp16 under mixed_*, the weights stay float32 (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser.parse_args(argv)


def load_data(quick, seed):
    """Images (n, 8, 8, 1) scaled to [0, 1] and integer labels, split 80/20 by class."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=seed)
    if quick:
        x_train, y_train = x_train[:720], y_train[:720]
    return (x_train, y_train), (x_test, y_test)


def build_model():
    return gn.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, strides=2, padding=1, dilation_rate=1),
        layers.LeakyReLU(),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(10),
        layers.Softmax(dtype="float32"),   # Keras's advice: a mixed model's output layer in float32
    ])


def write_outputs(out, model, history, accuracy):
    os.makedirs(out, exist_ok=True)
    model.save_weights(os.path.join(out, "digits.weights.h5"))
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({"history": history.history, "test_accuracy": accuracy}, f, indent=1)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        model.summary(print_fn=f.write)   # Keras hands print_fn the whole text, newline-terminated
    written = ["digits.weights.h5", "history.json", "summary.txt"]
    try:
        gn.utils.plot_history(history, os.path.join(out, "history.png"), title="digits CNN")
        written.append("history.png")
    except ImportError as error:
        print(f"no plot written: {error}")
    print(f"wrote {', '.join(written)} to {out}")


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        gn.set_backend(args.backend)
    gn.utils.set_random_seed(args.seed)
    gn.mixed_precision.set_global_policy(args.policy)   # before the layers are made: they read it then
    (x_train, y_train), (x_test, y_test) = load_data(args.quick, args.seed)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if args.verbose:
        model.summary()
    started = time.perf_counter()
    # Quick mode takes smaller batches: more steps let BatchNormalization's moving statistics
    # (momentum 0.99) settle, which evaluation relies on.
    batch_size = args.batch_size or (16 if args.quick else 32)
    epochs = args.epochs if args.epochs is not None else (5 if args.quick else 40)
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        validation_split=0.1, verbose=args.verbose,
                        callbacks=[gn.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    seconds = time.perf_counter() - started
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained {len(history.epoch)} epochs on {len(x_train)} images in {seconds:.1f}s "
          f"({gn.get_backend()} backend)")
    print(f"test accuracy: {accuracy:.4f} (loss {loss:.4f}, {len(x_test)} images, policy {args.policy})")
    write_outputs(args.out, model, history, accuracy)
    return accuracy


if __name__ == "__main__":
    main()
