"""Train a small CNN on scikit-learn's bundled handwritten digits (8x8 grey images, no download).

    python examples/digits_cnn.py                    # numpy backend, ~97% test accuracy
    python examples/digits_cnn.py --backend cudasim  # the same model on the CUDA kernels, CPU-compiled
    python examples/digits_cnn.py --quick            # a few epochs on a subset (for CI)

Prints the test accuracy; with --out DIR also writes DIR/history.json (per-epoch logs),
DIR/summary.txt and DIR/training.png (loss and accuracy curves, when matplotlib is installed).
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
    parser.add_argument("--epochs", type=int, default=40, help="most epochs (early stopping may end sooner)")
    parser.add_argument("--batch-size", type=int, default=None, help="32 (16 with --quick)")
    parser.add_argument("--backend", choices=("numpy", "cudasim", "cuda"), default="numpy")
    parser.add_argument("--quick", action="store_true", help="5 epochs on 720 training images, batch 16 (for CI)")
    parser.add_argument("--out", metavar="DIR", help="where to write history.json, summary.txt, training.png")
    parser.add_argument("--seed", type=int, default=0)
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
        layers.Softmax(),
    ])


def save_outputs(out, model, history, accuracy):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({"history": history.history, "test_accuracy": accuracy}, f, indent=1)
    lines = []
    model.summary(print_fn=lines.append)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix in ("", "val_"):
            if prefix + key in history.history:
                ax.plot(history.history[prefix + key], label=prefix + key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "training.png"), dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    gn.set_backend(args.backend)
    gn.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_data(args.quick, args.seed)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if args.verbose:
        model.summary()
    started = time.perf_counter()
    # Quick mode takes smaller batches: more steps let BatchNormalization's moving statistics
    # (momentum 0.99) settle, which evaluation relies on.
    batch_size = args.batch_size or (16 if args.quick else 32)
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=5 if args.quick else args.epochs,
                        validation_split=0.1, verbose=args.verbose,
                        callbacks=[gn.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    seconds = time.perf_counter() - started
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained {len(history.epoch)} epochs on {len(x_train)} images in {seconds:.1f}s "
          f"({gn.get_backend()} backend)")
    print(f"test accuracy: {accuracy:.4f} (loss {loss:.4f}, {len(x_test)} images)")
    if args.out:
        save_outputs(args.out, model, history, accuracy)
    return accuracy


if __name__ == "__main__":
    main()
