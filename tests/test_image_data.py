"""Image files and folders: load_img / img_to_array / array_to_img / save_img / to_categorical,
image_dataset_from_directory (Keras 3's arguments), the Dataset chain fit takes, and the paired
image + mask loader; folders are built from scikit-learn's sample images."""
import os

import numpy as np
import pytest
from sklearn.datasets import load_sample_images

import gpunet as gn
from gpunet import layers
from gpunet.data import AUTOTUNE, Dataset

from checks import assert_close

PHOTOS = load_sample_images().images   # two 427 x 640 RGB photos


def _crop(k, j, size=(24, 32)):
    return PHOTOS[k % 2][j * 37:j * 37 + size[0], j * 41 + k * 7:j * 41 + k * 7 + size[1]]


@pytest.fixture
def folder(tmp_path):
    """classes 'china' (5 files, jpg and png) and 'flower' (4 png files) of 24 x 32 crops."""
    for k, (name, count) in enumerate((("china", 5), ("flower", 4))):
        os.makedirs(tmp_path / name)
        for j in range(count):
            suffix = "jpg" if (name, j) == ("china", 0) else "png"
            gn.utils.save_img(str(tmp_path / name / f"{j}.{suffix}"), _crop(k, j), scale=False)
    (tmp_path / "flower" / "notes.txt").write_text("not an image: ignored")
    return str(tmp_path)


def test_image_files_round_trip_and_to_categorical(tmp_path):
    x = _crop(0, 1).astype(np.float32)
    path = str(tmp_path / "a.png")
    gn.utils.save_img(path, x, scale=False)
    img = gn.utils.load_img(path)
    assert (img.height, img.width) == (24, 32)
    assert_close(gn.utils.img_to_array(img), x, rtol=0, atol=0)
    grey = gn.utils.img_to_array(gn.utils.load_img(path, color_mode="grayscale", target_size=(12, 8),
                                                   keep_aspect_ratio=True))
    assert grey.shape == (12, 8, 1) and grey.dtype == np.float32
    scaled = gn.utils.img_to_array(gn.utils.array_to_img(x / 255.0 - 0.5))   # scale=True stretches to 0..255
    assert scaled.min() == 0 and scaled.max() == 255
    assert_close(gn.utils.to_categorical([[0], [2], [1]], num_classes=3), np.eye(3)[[0, 2, 1]])
    with pytest.raises(ValueError, match=r"to_categorical: label 3 is outside \[0, 3\)"):
        gn.utils.to_categorical([3], num_classes=3)


def test_image_dataset_from_directory_labels_sizes_and_modes(folder):
    ds = gn.utils.image_dataset_from_directory(folder, image_size=(16, 20), batch_size=4, shuffle=False,
                                               verbose=False)
    assert ds.class_names == ["china", "flower"] and len(ds) == 3
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(4, 16, 20, 3), (4, 16, 20, 3), (1, 16, 20, 3)]
    labels = np.concatenate([b[1] for b in batches])
    assert labels.dtype == np.int32 and labels.tolist() == [0] * 5 + [1] * 4
    first = gn.utils.img_to_array(gn.utils.load_img(os.path.join(folder, "china", "0.jpg")))
    assert_close(batches[0][0][0], gn.data.images.resize_images(first, (16, 20)), rtol=0, atol=1e-4)
    onehot = next(iter(gn.utils.image_dataset_from_directory(folder, label_mode="categorical", image_size=(8, 8),
                                                             shuffle=False, verbose=False)))[1]
    assert onehot.shape == (9, 2) and onehot.dtype == np.float32
    binary = next(iter(gn.utils.image_dataset_from_directory(folder, label_mode="binary", image_size=(8, 8),
                                                            verbose=False, seed=1)))[1]
    assert binary.shape == (9, 1) and set(binary[:, 0]) == {0.0, 1.0}
    images_only = next(iter(gn.utils.image_dataset_from_directory(folder, labels=None, color_mode="grayscale",
                                                                 image_size=(8, 8), verbose=False, seed=1)))
    assert images_only.shape == (9, 8, 8, 1)
    cropped = gn.utils.image_dataset_from_directory(folder, image_size=(8, 8), crop_to_aspect_ratio=True,
                                                    shuffle=False, batch_size=None, verbose=False)
    image, _ = next(iter(cropped))
    assert_close(image, gn.data.images.resize_images(first[:, 4:28], (8, 8)), rtol=0, atol=1e-4)


def test_validation_split_both_is_a_disjoint_seeded_split(folder, capsys):
    train, val = gn.utils.image_dataset_from_directory(folder, image_size=(8, 8), validation_split=0.34,
                                                       subset="both", seed=3)
    assert "Found 9 files belonging to 2 classes.\nUsing 6 files for training.\nUsing 3 files for validation." \
        in capsys.readouterr().out
    assert not set(train.file_paths) & set(val.file_paths) and len(train.file_paths + val.file_paths) == 9
    again = gn.utils.image_dataset_from_directory(folder, image_size=(8, 8), validation_split=0.34,
                                                  subset="validation", seed=3, verbose=False)
    assert again.file_paths == val.file_paths
    with pytest.raises(ValueError, match="you must provide a seed argument"):
        gn.utils.image_dataset_from_directory(folder, validation_split=0.2, subset="training")


def test_a_dataset_chains_and_fit_takes_it(folder):
    ds = gn.utils.image_dataset_from_directory(folder, image_size=(8, 8), batch_size=4, seed=0, verbose=False)
    scaled = ds.map(lambda x, y: (x / 255.0, y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    for x, y in scaled.take(1):
        assert x.shape == (4, 8, 8, 3) and x.max() <= 1.0
    pairs = list(scaled.unbatch().batch(3))
    assert [len(p[1]) for p in pairs] == [3, 3, 3]
    model = gn.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2), layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(scaled, epochs=2, validation_data=scaled, verbose=0).history
    assert len(history["loss"]) == 2 and len(history["val_accuracy"]) == 2
    assert model.predict(scaled, verbose=0).shape == (9, 2)
    numbers = Dataset.from_tensor_slices((np.arange(10), np.arange(10) * 2)).shuffle(4, seed=1).map(
        lambda a, b: (a, b + a), num_parallel_calls=3)
    firsts = [int(a) for a, _ in numbers]
    assert sorted(firsts) == list(range(10)) and firsts != list(range(10))
    assert all(int(b) == 3 * int(a) for a, b in numbers)
    assert len(Dataset.from_tensor_slices(np.arange(10)).batch(4, drop_remainder=True)) == 2


def test_bad_files_and_folders_are_named(folder, tmp_path):
    broken = os.path.join(folder, "china", "broken.jpg")
    with open(broken, "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")
    ds = gn.utils.image_dataset_from_directory(folder, image_size=(8, 8), shuffle=False, verbose=False)
    with pytest.raises(ValueError, match=r"Cannot read image file '.*china/broken.jpg'"):
        list(ds)
    with pytest.raises(ValueError, match=r"label_mode='binary' needs exactly 2 classes; found 3"):
        os.makedirs(os.path.join(folder, "third"))
        gn.utils.save_img(os.path.join(folder, "third", "x.png"), _crop(0, 0))
        gn.utils.image_dataset_from_directory(folder, label_mode="binary")
    os.makedirs(tmp_path / "empty" / "a")
    with pytest.raises(ValueError, match=r"No images found in directory '.*empty'"):
        gn.utils.image_dataset_from_directory(str(tmp_path / "empty"))


def _pairs(tmp_path, count=4, mask_size=(24, 32)):
    os.makedirs(tmp_path / "images")
    os.makedirs(tmp_path / "masks")
    for j in range(count):
        image = _crop(j, j)
        gn.utils.save_img(str(tmp_path / "images" / f"p{j}.jpg"), image, scale=False)
        mask = (image.mean(axis=-1, keepdims=True) > 110).astype(np.float32)[:mask_size[0], :mask_size[1]]
        gn.utils.save_img(str(tmp_path / "masks" / f"p{j}.png"), mask, scale=False)
    return str(tmp_path / "images"), str(tmp_path / "masks")


def test_paired_image_and_mask_folders(tmp_path):
    images, masks = _pairs(tmp_path)
    ds = gn.utils.segmentation_dataset_from_directory(images, masks, image_size=(12, 16), batch_size=3,
                                                      num_classes=2, seed=0, verbose=False)
    (x, y), (x2, y2) = list(ds)
    assert x.shape == (3, 12, 16, 3) and y.shape == (3, 12, 16) and y.dtype == np.int32
    assert set(np.unique(np.concatenate([y.ravel(), y2.ravel()]))) == {0, 1}   # nearest: labels stay labels
    with pytest.raises(ValueError, match=r"holds label 1, outside \[0, 1\) \(num_classes=1\)"):
        list(gn.utils.segmentation_dataset_from_directory(images, masks, num_classes=1, verbose=False))


def test_paired_folders_refuse_missing_and_mismatched_masks(tmp_path):
    images, masks = _pairs(tmp_path, mask_size=(20, 32))
    with pytest.raises(ValueError, match=r"Image '.*p0.jpg' is 32x24 but its mask '.*p0.png' is 32x20"):
        list(gn.utils.segmentation_dataset_from_directory(images, masks, shuffle=False, verbose=False))
    os.remove(os.path.join(masks, "p1.png"))
    with pytest.raises(ValueError, match=r"1 image\(s\) in '.*images' have no mask of the same name"):
        gn.utils.segmentation_dataset_from_directory(images, masks)
