"""Segment handwritten digits from photographed backgrounds with a small U-Net (no download).

    python examples/unet_segmentation.py                    # under 3 minutes on 2 cores (numpy backend)
    python examples/unet_segmentation.py --backend cuda     # the same model on a GPU
    python examples/unet_segmentation.py --quick            # a small run in seconds (for CI)

Measured on 2 CPU cores: the default run reaches a held-out foreground IoU of about 0.92
(Dice 0.96) where predicting foreground everywhere scores 0.31 (Dice 0.47); --quick reaches
about 0.83 in 6 s of training. --backend cudasim runs the real CUDA kernels on the CPU, to
check them rather than to train: a --quick run takes minutes there (set
GPUNET_CUDASIM_CONTEXTS=fibers, see docs/backends.md). Without --backend the example runs where
gpunet's default puts it: GPUNET_BACKEND if set, else cuda when CuPy sees a GPU, else numpy.

The data come with scikit-learn: its 8x8 handwritten digits, enlarged to 32x32 (bilinear) and
painted in a random colour over 32x32 crops of its two sample photographs (china.jpg,
flower.jpg). The training images and their masks are written as PNG files to a temporary
image folder and mask folder, and training reads them back through
gn.utils.segmentation_dataset_from_directory, as a real data set on disk would be read: a
Dataset that loads each batch when fit asks for it, scales it to [0, 1] and flips image and
mask together at random (RandomFlip on an {"images", "segmentation_masks"} pair, so that both
get the same flip; see docs/data.md). The target is the digit's mask (enlarged ink above one half). Test digits are
digits the model never saw, painted over the right-most fifth of each photograph, which no
training image shows. The model is a functional U-Net: two Conv2D + BatchNormalization
blocks per level, MaxPooling2D down (32 -> 16 -> 8), Conv2DTranspose up, and Concatenate
skips that bring the encoder's detail back at each resolution.

Prints IoU and Dice of the foreground on the held-out images, next to the trivial
predictors (all background, all foreground). Writes to --out DIR: unet.weights.h5,
segmentation.png (image / mask / prediction rows), history.png and results.json.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gpunet as gn  # noqa: E402  (after the path line, so the example runs from a checkout)
from gpunet import layers  # noqa: E402

SIZE = 32
HELD_OUT = 0.2      # right-most fraction of each photograph, backgrounds for test images only


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: 8, 3 with --quick")
    parser.add_argument("--batch-size", type=int, default=None, help="32 (16 with --quick)")
    parser.add_argument("--backend", choices=("numpy", "cudasim", "cuda"), default=None,
                        help="default: GPUNET_BACKEND if set, else cuda when CuPy sees a GPU, else numpy")
    parser.add_argument("--quick", action="store_true",
                        help="a narrower U-Net on 600 images, 3 epochs unless --epochs (for CI)")
    parser.add_argument("--out", metavar="DIR", default="unet_out",
                        help="where to write weights, images and results (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=("float32", "mixed_bfloat16", "mixed_float16"), default="float32",
                        help="dtype policy (gn.mixed_precision.set_global_policy): the layers compute in bf16 / "
                             "fp16 under mixed_*, the weights stay float32 (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser.parse_args(argv)


def enlarge(images):
    """(n, 8, 8) digit intensities in [0, 1] -> (n, 32, 32), bilinear, with gpunet's own UpSampling2D."""
    device = gn.backend.current()   # a layer computes on the active backend's arrays (CuPy on cuda)
    # float32 whatever the global policy: the data are the same for every policy
    upsample = layers.UpSampling2D(SIZE // 8, interpolation="bilinear", name="enlarge", dtype="float32")
    return np.asarray(device.to_numpy(upsample(device.asarray(images[..., None]))))[..., 0]


def background_crops(count, train, rng):
    """``count`` random (32, 32, 3) crops in [0, 1]: from the left 80% of the photographs for
    training images, from the right 20% for test images."""
    photos = [p.astype(np.float32) / 255.0 for p in load_sample_images().images]
    which = rng.integers(0, len(photos), count)
    crops = np.empty((count, SIZE, SIZE, 3), np.float32)
    for k, photo in enumerate(photos):
        height, width, _ = photo.shape
        cut = int(width * (1 - HELD_OUT))
        low, high = (0, cut - SIZE) if train else (cut, width - SIZE)
        for i in np.flatnonzero(which == k):
            top, left = rng.integers(0, height - SIZE + 1), rng.integers(low, high + 1)
            crops[i] = photo[top:top + SIZE, left:left + SIZE]
    return crops


def paint(digits, backgrounds, rng):
    """Images (n, 32, 32, 3): each digit's ink, in a random colour far from its background's
    mean colour, blended over the background; masks (n, 32, 32, 1): ink above one half."""
    ink = enlarge(digits)[..., None]
    mean = backgrounds.mean(axis=(1, 2))
    # Each colour channel at least 0.35 away from the background's mean, on the far side of 0.5.
    u = rng.uniform(0.0, 1.0, mean.shape)
    colour = np.where(mean < 0.5, mean + 0.35 + u * (0.65 - mean), u * (mean - 0.35))[:, None, None, :]
    images = (1 - ink) * backgrounds + ink * colour
    return images.astype(np.float32), (ink > 0.5).astype(np.float32)


def load_data(quick, seed):
    """((x_train, m_train), (x_test, m_test)): images (n, 32, 32, 3), masks (n, 32, 32, 1)."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    train_digits, test_digits = train_test_split(digits.images / 16.0, test_size=0.2,
                                                 stratify=digits.target, random_state=seed)
    if quick:
        train_digits = train_digits[:600]
    else:   # each training digit twice, over two different backgrounds
        train_digits = np.concatenate([train_digits, train_digits])
    train = paint(train_digits, background_crops(len(train_digits), True, rng), rng)
    test = paint(test_digits, background_crops(len(test_digits), False, rng), rng)
    order = rng.permutation(len(train_digits))   # so validation_split does not take the repeats
    return (train[0][order], train[1][order]), test


def write_folders(root, images, masks):
    """The images as 8-bit PNGs in root/images, their masks (grey levels 0 / 1) in root/masks,
    paired by file name; returns the two folders."""
    folders = os.path.join(root, "images"), os.path.join(root, "masks")
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    for k, (image, mask) in enumerate(zip(images, masks)):
        gn.utils.save_img(os.path.join(folders[0], f"{k:05d}.png"), np.round(image * 255), scale=False)
        gn.utils.save_img(os.path.join(folders[1], f"{k:05d}.png"), mask, scale=False)
    return folders


def folder_datasets(folders, batch_size, seed):
    """(training, validation) Datasets of (images in [0, 1], int masks) read from the folders; the
    training batches flipped left-right at random, each image with its own mask."""
    train, val = gn.utils.segmentation_dataset_from_directory(*folders, batch_size=batch_size, num_classes=2,
                                                              seed=seed, validation_split=0.1, subset="both",
                                                              verbose=False)
    flip = layers.RandomFlip("horizontal", seed=seed)

    def augment(images, masks):
        pair = flip({"images": images, "segmentation_masks": masks})   # one draw for both
        return pair["images"] / 255.0, pair["segmentation_masks"]
    return (train.map(augment).prefetch(gn.data.AUTOTUNE),
            val.map(lambda images, masks: (images / 255.0, masks)))


def conv_block(x, filters):
    # No bias before BatchNormalization: its beta does that job. Momentum 0.9 rather than Keras's
    # 0.99, so that the moving statistics prediction uses follow the weights within a few hundred
    # steps, which is all these runs take.
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    return x


def build_unet(width=16):
    """(batch, 32, 32, 3) images -> (batch, 32, 32, 1) foreground probabilities."""
    inputs = gn.Input((SIZE, SIZE, 3))
    skip1 = conv_block(inputs, width)                                    # 32x32
    skip2 = conv_block(layers.MaxPooling2D(2)(skip1), 2 * width)         # 16x16
    x = conv_block(layers.MaxPooling2D(2)(skip2), 4 * width)             # 8x8
    x = layers.Conv2DTranspose(2 * width, 2, strides=2)(x)               # 16x16
    x = conv_block(layers.Concatenate()([x, skip2]), 2 * width)
    x = layers.Conv2DTranspose(width, 2, strides=2)(x)                   # 32x32
    x = conv_block(layers.Concatenate()([x, skip1]), width)
    # The sigmoid in float32 under mixed precision (Keras's advice for a model's output).
    outputs = layers.Activation("sigmoid", dtype="float32")(layers.Conv2D(1, 1)(x))
    return gn.Model(inputs, outputs, name="unet")


def iou_dice(predicted, target):
    """Foreground IoU and Dice over all pixels of all images (boolean arrays of one shape)."""
    overlap = np.logical_and(predicted, target).sum()
    union = np.logical_or(predicted, target).sum()
    total = predicted.sum() + target.sum()
    return (float(overlap / union) if union else 1.0), (float(2 * overlap / total) if total else 1.0)


def scores(probabilities, masks):
    """IoU / Dice of the model (probability > 0.5) and of the two trivial predictors."""
    target = masks > 0.5
    results = {}
    for name, predicted in (("model", probabilities > 0.5), ("all_background", np.zeros_like(target)),
                            ("all_foreground", np.ones_like(target))):
        results[f"iou_{name}"], results[f"dice_{name}"] = iou_dice(predicted, target)
    results["foreground_fraction"] = float(target.mean())
    return results


def save_grid(path, images, masks, probabilities, columns=8):
    """A PNG: the images, their true masks and the predicted masks, one row each."""
    from matplotlib.figure import Figure
    rows = [(images, "image", None), (masks[..., 0], "mask", "gray"),
            ((probabilities[..., 0] > 0.5).astype(np.float32), "prediction", "gray")]
    figure = Figure(figsize=(1.3 * columns, 1.4 * len(rows)))
    for r, (pictures, title, cmap) in enumerate(rows):
        for c in range(columns):
            axes = figure.add_subplot(len(rows), columns, r * columns + c + 1)
            axes.imshow(pictures[c], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if c == 0:
                axes.set_ylabel(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_outputs(out, model, history, results, test, probabilities):
    os.makedirs(out, exist_ok=True)
    model.save_weights(os.path.join(out, "unet.weights.h5"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({**results, "history": history.history}, f, indent=1)
    written = ["unet.weights.h5", "results.json"]
    try:
        save_grid(os.path.join(out, "segmentation.png"), test[0], test[1], probabilities)
        gn.utils.plot_history(history, os.path.join(out, "history.png"), title="U-Net segmentation")
        written += ["segmentation.png", "history.png"]
    except ImportError as error:
        print(f"no images written: {error}")
    print(f"wrote {', '.join(written)} to {out}")


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        gn.set_backend(args.backend)
    gn.utils.set_random_seed(args.seed)
    train, test = load_data(args.quick, args.seed)
    gn.mixed_precision.set_global_policy(args.policy)   # before the model's layers are made: they read it then
    model = build_unet(width=8 if args.quick else 16)
    model.compile(optimizer=gn.optimizers.Adam(3e-3 if args.quick else 2e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    if args.verbose:
        model.summary()
    # Quick mode takes smaller batches: more steps let BatchNormalization's moving statistics
    # (momentum 0.9, see conv_block) settle, which prediction relies on.
    batch_size = args.batch_size or (16 if args.quick else 32)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 8)
    with tempfile.TemporaryDirectory() as root:
        train_ds, val_ds = folder_datasets(write_folders(root, *train), batch_size, args.seed)
        started = time.perf_counter()
        history = model.fit(train_ds, epochs=epochs, validation_data=val_ds, verbose=args.verbose)
        seconds = time.perf_counter() - started
    probabilities = model.predict(test[0], batch_size=64, verbose=0)
    results = {**scores(probabilities, test[1]), "test_images": len(test[0]), "seconds": seconds,
               "backend": gn.get_backend(), "policy": args.policy}
    print(f"trained {len(history.epoch)} epochs on {len(train[0])} images in {seconds:.1f}s "
          f"({gn.get_backend()} backend)")
    print(f"held-out foreground ({len(test[0])} images, {results['foreground_fraction']:.1%} of pixels):")
    for name, label in (("model", "U-Net"), ("all_background", "all background"),
                        ("all_foreground", "all foreground")):
        print(f"  {label:15s} IoU {results[f'iou_{name}']:.3f}  Dice {results[f'dice_{name}']:.3f}")
    write_outputs(args.out, model, history, results, test, probabilities)
    return results


if __name__ == "__main__":
    main()
