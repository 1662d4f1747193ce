"""Datasets from folders of image files: Keras 3's ``image_dataset_from_directory`` and a paired
image + mask loader for segmentation. Files are read when iterated (they need not fit in memory).

    train, val = gn.utils.image_dataset_from_directory("photos", image_size=(180, 180), batch_size=32,
                                                       validation_split=0.2, subset="both", seed=1337)
    model.fit(train, validation_data=val, epochs=10)

A file Pillow cannot read is an error naming it (Keras fails on it too, when iterating).
"""
import os

import numpy as np

from .dataset import Dataset
from .images import ALLOWED_FORMATS, _color_mode, img_to_array, open_image, resize_images

__all__ = ["image_dataset_from_directory", "segmentation_dataset_from_directory"]

LABEL_MODES = ("int", "categorical", "binary", None)


def _image_files(folder, follow_links=False):
    """Image paths under ``folder`` (recursively), sorted."""
    found = []
    for root, _, files in os.walk(folder, followlinks=follow_links):
        found.extend(os.path.join(root, f) for f in files if f.lower().endswith(ALLOWED_FORMATS))
    return sorted(found)


def _index(directory, labels, class_names, follow_links):
    """(paths, int labels or None, class names)."""
    if not os.path.isdir(directory):
        raise ValueError(f"image_dataset_from_directory: {directory!r} is not a folder.")
    if labels == "inferred":
        subdirs = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
        if class_names is not None:
            missing = sorted(set(class_names) - set(subdirs))
            if missing:
                raise ValueError(f"class_names {missing} have no sub-folder in {directory!r}; found {subdirs}.")
            subdirs = list(class_names)
        paths, found = [], []
        for k, name in enumerate(subdirs):
            files = _image_files(os.path.join(directory, name), follow_links)
            paths.extend(files)
            found.extend([k] * len(files))
        return paths, np.asarray(found, dtype=np.int64), subdirs
    paths = _image_files(directory, follow_links)
    if labels is None:
        return paths, None, None
    labels = np.asarray(labels)
    if len(labels) != len(paths):
        raise ValueError(f"labels has {len(labels)} entries but {directory!r} holds {len(paths)} image files; "
                         f"give one label per file, in the sorted order of their paths.")
    return paths, labels.astype(np.int64), None


def _split(items, validation_split, subset, seed):
    """Keras's split: the last ``int(validation_split * n)`` items are the validation set."""
    if validation_split is None:
        if subset is not None:
            raise ValueError(f"subset={subset!r} needs validation_split.")
        return {"all": items}
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1); received {validation_split!r}.")
    if subset not in ("training", "validation", "both"):
        raise ValueError(f"With validation_split, subset must be 'training', 'validation' or 'both'; "
                         f"received {subset!r}.")
    cut = len(items[0]) - int(validation_split * len(items[0]))
    return {"training": [None if a is None else a[:cut] for a in items],
            "validation": [None if a is None else a[cut:] for a in items]}


def _encode_labels(labels, label_mode, num_classes):
    if label_mode == "int":
        return labels.astype(np.int32)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels.astype(np.float32)[:, None]   # binary


def _load(path, color_mode, image_size, interpolation, crop_to_aspect_ratio):
    x = img_to_array(open_image(path, color_mode))
    if image_size is not None and x.shape[:2] != tuple(image_size):
        x = resize_images(x, image_size, interpolation, crop_to_aspect_ratio)
    return x


def _file_dataset(paths, labels, batch_size, shuffle, seed, load):
    """Elements (image, label) or images, read from ``paths`` when iterated; shuffled each pass."""
    count = len(paths)
    rng = np.random.default_rng(seed)

    def make():
        order = rng.permutation(count) if shuffle else np.arange(count)
        for i in order:
            image = load(paths[i])
            yield image if labels is None else (image, labels[i])
    dataset = Dataset(make, count)
    return dataset.batch(batch_size) if batch_size is not None else dataset


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, verbose=True, **unsupported):
    """A Dataset of batches ``(images, labels)`` from ``directory/<class>/*.jpg|png|...`` (Keras 3).

    images: float32 ``(batch, *image_size, channels)`` in 0..255 (channels 1 / 3 / 4 for
    color_mode grayscale / rgb / rgba), each resized with ``interpolation`` (after a centre crop to
    the target's aspect ratio with ``crop_to_aspect_ratio``). labels: "int" (batch,) int32,
    "categorical" (batch, classes) one-hot, "binary" (batch, 1) float32 (two classes), None: no
    labels. ``labels`` may also be None or a list of labels, one per file in sorted path order.
    validation_split with subset "training" / "validation" / "both" (a tuple of two datasets);
    shuffle with ``seed`` orders the files once (before the split) and again each epoch.
    ``dataset.class_names`` lists the classes.
    """
    if unsupported:
        raise TypeError(f"image_dataset_from_directory got unsupported argument(s): {', '.join(sorted(unsupported))}.")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}; received {label_mode!r}.")
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(f"labels must be 'inferred', None or a list of labels; received {labels!r}.")
    if labels is None or label_mode is None:
        labels, label_mode = (None if labels in (None, "inferred") else labels), None
    _color_mode(color_mode)
    if validation_split and shuffle and seed is None:
        raise ValueError("If using validation_split and shuffling the data, you must provide a seed argument, "
                         "so that the training and validation subsets do not overlap.")
    paths, found, names = _index(directory, "inferred" if labels == "inferred" else labels, class_names, follow_links)
    if not paths:
        raise ValueError(f"No images found in directory {directory!r}. Allowed formats: {ALLOWED_FORMATS}.")
    num_classes = len(names) if names is not None else (int(found.max()) + 1 if found is not None else 0)
    if label_mode == "binary" and num_classes != 2:
        raise ValueError(f"label_mode='binary' needs exactly 2 classes; found {num_classes} in {directory!r}.")
    if verbose:
        print(f"Found {len(paths)} files" + (f" belonging to {num_classes} classes." if found is not None else "."))
    if shuffle:
        order = np.random.default_rng(seed if seed is not None else np.random.SeedSequence().entropy).permutation(
            len(paths))
        paths, found = [paths[i] for i in order], None if found is None else found[order]
    encoded = None if found is None or label_mode is None else _encode_labels(found, label_mode, num_classes)
    parts = _split([paths, encoded], validation_split, subset, seed)

    def load(path):
        return _load(path, color_mode, image_size, interpolation, crop_to_aspect_ratio)

    def build(name):
        part_paths, part_labels = parts[name]
        if verbose and name != "all":
            print(f"Using {len(part_paths)} files for {name}.")
        dataset = _file_dataset(part_paths, part_labels, batch_size, shuffle, seed, load)
        dataset.class_names, dataset.file_paths = names, list(part_paths)
        return dataset
    if "all" in parts:
        return build("all")
    if subset == "both":
        return build("training"), build("validation")
    return build(subset)


def segmentation_dataset_from_directory(image_directory, mask_directory, image_size=None, batch_size=32,
                                        num_classes=None, color_mode="rgb", shuffle=True, seed=None,
                                        validation_split=None, subset=None, crop_to_aspect_ratio=False,
                                        verbose=True):
    """A Dataset of batches ``(images, masks)`` from paired files: ``image_directory/name.jpg`` and a
    mask ``mask_directory/name.png`` of the same name stem and size (gpunet's; Keras has none).

    images: float32 ``(batch, *image_size, channels)`` 0..255, resized bilinearly; masks: int32
    class labels ``(batch, *image_size)`` read as grey levels, resized with nearest (labels stay
    labels), checked against ``num_classes`` when given. A geometric augmentation must move both
    alike: see docs/data.md.
    """
    images = {os.path.splitext(os.path.relpath(p, image_directory))[0]: p for p in _image_files(image_directory)}
    masks = {os.path.splitext(os.path.relpath(p, mask_directory))[0]: p for p in _image_files(mask_directory)}
    if not images:
        raise ValueError(f"No images found in directory {image_directory!r}. Allowed formats: {ALLOWED_FORMATS}.")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise ValueError(f"{len(missing)} image(s) in {image_directory!r} have no mask of the same name in "
                         f"{mask_directory!r}, e.g. {missing[:3]}.")
    stems = sorted(images)
    if verbose:
        print(f"Found {len(stems)} image / mask pairs.")
    if shuffle:
        stems = [stems[i] for i in np.random.default_rng(seed).permutation(len(stems))]
    pairs = [(images[s], masks[s]) for s in stems]
    parts = _split([pairs], validation_split, subset, seed)

    def load(pair):
        return _load_pair(pair, color_mode, image_size, num_classes, crop_to_aspect_ratio)

    def build(name):
        part, = parts[name]
        return _file_dataset(part, None, batch_size, shuffle, seed, load)
    if "all" in parts:
        return build("all")
    if subset == "both":
        return build("training"), build("validation")
    return build(subset)


def _load_pair(pair, color_mode, image_size, num_classes, crop_to_aspect_ratio):
    image_path, mask_path = pair
    image = img_to_array(open_image(image_path, color_mode))
    mask = img_to_array(open_image(mask_path, "grayscale"))
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"Image {image_path!r} is {image.shape[1]}x{image.shape[0]} but its mask {mask_path!r} "
                         f"is {mask.shape[1]}x{mask.shape[0]}; an image and its mask must have one size.")
    if image_size is not None and image.shape[:2] != tuple(image_size):
        image = resize_images(image, image_size, "bilinear", crop_to_aspect_ratio)
        mask = resize_images(mask, image_size, "nearest", crop_to_aspect_ratio)
    labels = mask[..., 0].astype(np.int32)
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(f"Mask {mask_path!r} holds label {int(labels.max())}, outside [0, {num_classes}) "
                         f"(num_classes={num_classes}).")
    return image, labels
