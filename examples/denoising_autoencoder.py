"""Denoise real photographs with a convolutional autoencoder (scikit-learn's sample images, no download).

    python examples/denoising_autoencoder.py                    # about 3 minutes on 2 cores (numpy backend)
    python examples/denoising_autoencoder.py --backend cuda     # the same model on a GPU
    python examples/denoising_autoencoder.py --quick            # a small run in seconds (for CI)

Measured on 2 CPU cores: the default run reaches a held-out PSNR of about 29.9 dB from noisy
inputs at 21.3 dB; --quick reaches about 23.4 dB in 3 s of training. --backend cudasim runs
the real CUDA kernels on the CPU, to check them rather than to train: a --quick run takes
minutes there (set GPUNET_CUDASIM_CONTEXTS=fibers, see docs/backends.md). Without --backend the
example runs where gpunet's default puts it: GPUNET_BACKEND if set, else cuda when CuPy sees a
GPU, else numpy.

The data are 32x32 colour patches of the two photographs that ship inside scikit-learn
(china.jpg, flower.jpg), with Gaussian noise added. The right-most fifth of each photograph
is held out: test patches come from pixels the model never saw. The encoder is Conv2D +
MaxPooling2D twice (32x32 -> 8x8), the decoder Conv2DTranspose with stride 2 twice (8x8 ->
32x32), trained with the mean squared error between its output and the clean patch.

Prints the PSNR of the noisy test patches and of the denoised ones. Writes to --out DIR:
denoiser.weights.h5 (Keras 3 layout), denoising.png (noisy / denoised / clean rows),
history.png (loss per epoch) and results.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_sample_images

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gpunet as gn  # noqa: E402  (after the path line, so the example runs from a checkout)
from gpunet import layers  # noqa: E402

PATCH = 32
HELD_OUT = 0.2      # right-most fraction of each photograph, used only for testing


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: 10, 3 with --quick")
    parser.add_argument("--batch-size", type=int, default=None, help="32 (16 with --quick)")
    parser.add_argument("--backend", choices=("numpy", "cudasim", "cuda"), default=None,
                        help="default: GPUNET_BACKEND if set, else cuda when CuPy sees a GPU, else numpy")
    parser.add_argument("--quick", action="store_true",
                        help="a narrower model on 768 patches, 3 epochs unless --epochs (for CI)")
    parser.add_argument("--out", metavar="DIR", default="denoising_out",
                        help="where to write weights, images and results (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.1, help="standard deviation of the noise on [0, 1] pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=("float32", "mixed_bfloat16", "mixed_float16"), default="float32",
                        help="dtype policy (gn.mixed_precision.set_global_policy): the layers compute in bf16 / "
                             "fp16 under mixed_*, the weights stay float32 (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser.parse_args(argv)


def load_patches(train_count, seed):
    """Clean patches in [0, 1]: ``train_count`` random crops (flipped at random) from the left
    80% of each photograph, and every non-overlapping tile of the right 20%. Shapes
    (train_count, 32, 32, 3) and (tiles, 32, 32, 3), float32."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    images = [image.astype(np.float32) / 255.0 for image in load_sample_images().images]
    for k, image in enumerate(images):
        height, width, _ = image.shape
        cut = int(width * (1 - HELD_OUT))
        count = train_count // len(images) + (k < train_count % len(images))
        tops = rng.integers(0, height - PATCH + 1, count)
        lefts = rng.integers(0, cut - PATCH + 1, count)
        for top, left, flip in zip(tops, lefts, rng.integers(0, 2, count)):
            patch = image[top:top + PATCH, left:left + PATCH]
            train.append(patch[:, ::-1] if flip else patch)
        for top in range(0, height - PATCH + 1, PATCH):
            for left in range(cut, width - PATCH + 1, PATCH):
                test.append(image[top:top + PATCH, left:left + PATCH])
    # Shuffled, so that validation_split (the last 10%) holds crops of both photographs.
    return np.stack(train)[rng.permutation(len(train))], np.stack(test)


def add_noise(clean, sigma, seed):
    """``clean`` plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1]."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, clean.shape).astype(np.float32)
    return np.clip(clean + noise, 0.0, 1.0)


def psnr(images, reference):
    """Peak signal-to-noise ratio in dB for pixels in [0, 1], averaged over images."""
    mse = np.mean((images.astype(np.float64) - reference) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def build_model(filters=32):
    """(batch, 32, 32, 3) noisy -> (batch, 32, 32, 3) denoised, through an 8x8 code."""
    return gn.Sequential([
        layers.Input((PATCH, PATCH, 3)),
        layers.Conv2D(filters, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(2 * filters, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(3, 3, padding="same"),
        layers.Activation("sigmoid", dtype="float32"),   # a float32 output under mixed precision, Keras's advice
    ], name="denoiser")


def save_grid(path, rows, titles, columns=8):
    """A PNG with one row per array in ``rows`` (each (n, h, w, 3) in [0, 1]), ``columns`` images each."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(1.3 * columns, 1.4 * len(rows)))
    for r, (images, title) in enumerate(zip(rows, titles)):
        for c in range(columns):
            axes = figure.add_subplot(len(rows), columns, r * columns + c + 1)
            axes.imshow(np.clip(images[c], 0, 1), interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if c == 0:
                axes.set_ylabel(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_outputs(out, model, history, results, noisy, denoised, clean):
    os.makedirs(out, exist_ok=True)
    model.save_weights(os.path.join(out, "denoiser.weights.h5"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({**results, "history": history.history}, f, indent=1)
    written = ["denoiser.weights.h5", "results.json"]
    try:
        # Tiles spread over the held-out strips of both photographs.
        pick = np.linspace(0, len(clean) - 1, 8).astype(int)
        save_grid(os.path.join(out, "denoising.png"), [noisy[pick], denoised[pick], clean[pick]],
                  ["noisy", "denoised", "clean"])
        gn.utils.plot_history(history, os.path.join(out, "history.png"), title="denoising autoencoder")
        written += ["denoising.png", "history.png"]
    except ImportError as error:
        print(f"no images written: {error}")
    print(f"wrote {', '.join(written)} to {out}")


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        gn.set_backend(args.backend)
    gn.utils.set_random_seed(args.seed)
    gn.mixed_precision.set_global_policy(args.policy)   # before the layers are made: they read it then
    train_clean, test_clean = load_patches(768 if args.quick else 6000, args.seed)
    train_noisy = add_noise(train_clean, args.noise, args.seed + 1)
    test_noisy = add_noise(test_clean, args.noise, args.seed + 2)
    model = build_model(filters=16 if args.quick else 32)
    model.compile(optimizer=gn.optimizers.Adam(3e-3 if args.quick else 1e-3), loss="mse")
    if args.verbose:
        model.summary()
    # Quick mode trades batch size for steps: 3 short epochs must move the model far.
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 10)
    batch_size = args.batch_size or (16 if args.quick else 32)
    started = time.perf_counter()
    history = model.fit(train_noisy, train_clean, batch_size=batch_size, epochs=epochs,
                        validation_split=0.1, verbose=args.verbose)
    seconds = time.perf_counter() - started
    denoised = model.predict(test_noisy, batch_size=64, verbose=0)
    results = {"psnr_noisy": psnr(test_noisy, test_clean), "psnr_denoised": psnr(denoised, test_clean),
               "test_patches": len(test_clean), "seconds": seconds, "backend": gn.get_backend(),
               "policy": args.policy}
    print(f"trained {len(history.epoch)} epochs on {len(train_clean)} patches in {seconds:.1f}s "
          f"({gn.get_backend()} backend)")
    print(f"held-out PSNR: noisy input {results['psnr_noisy']:.2f} dB -> "
          f"denoised {results['psnr_denoised']:.2f} dB ({len(test_clean)} patches)")
    write_outputs(args.out, model, history, results, test_noisy, denoised, test_clean)
    return results


if __name__ == "__main__":
    main()
