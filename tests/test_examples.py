"""The encoder-decoder examples, run as a user runs them (a subprocess, --quick, numpy backend;
cuda under GPUNET_BACKEND=cuda),
and gn.utils.plot_history, which every example uses.

Measured on 2 cores, seeds 0-5 (the default run, seed 0, is the first number):
- denoising --quick: about 3 s of training; held-out PSNR 21.3 dB noisy -> 23.4 dB denoised
  (gains 1.9 to 3.3 dB over the seeds). The bar is a gain of 1 dB.
- U-Net --quick: about 5.5 s of training; held-out foreground IoU 0.83 / Dice 0.91 (0.80 to
  0.83 IoU over the seeds), against 0.31 / 0.47 for predicting foreground everywhere and
  0 / 0 for predicting background everywhere. The bar is IoU 0.6 and Dice 0.75, and 0.3 IoU
  above the better trivial predictor.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gpunet as gn
from checks import example_backend
from gpunet import plotting

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def run_example(name, *args):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    backend = example_backend()
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--backend", backend, *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def load_example(name):
    """The example as a module (its functions), without running main()."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), os.path.join(EXAMPLES, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert os.path.getsize(path) > 5000, f"{path} is suspiciously small"


# -- the examples -------------------------------------------------------------------------
def test_denoising_quick_beats_the_noisy_input(tmp_path):
    stdout = run_example("denoising_autoencoder.py", "--quick", "--out", str(tmp_path))
    found = re.search(r"held-out PSNR: noisy input ([0-9.]+) dB -> denoised ([0-9.]+) dB", stdout)
    assert found, f"no PSNR line in:\n{stdout}"
    noisy, denoised = map(float, found.groups())
    assert 20.0 < noisy < 22.5, stdout          # sigma 0.1 noise, clipped to [0, 1]
    assert denoised >= noisy + 1.0, stdout
    for name in ("denoising.png", "history.png"):
        assert_png(tmp_path / name)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["psnr_denoised"] == pytest.approx(denoised, abs=0.01)
    assert len(results["history"]["val_loss"]) == 3

    # The saved weights are the trained model's: loaded into a fresh one, they give the same PSNR.
    example = load_example("denoising_autoencoder.py")
    _, clean = example.load_patches(768, seed=0)
    noisy_patches = example.add_noise(clean, 0.1, seed=2)
    model = example.build_model(filters=16)
    model.load_weights(str(tmp_path / "denoiser.weights.h5"))
    again = example.psnr(model.predict(noisy_patches, verbose=0), clean)
    assert again == pytest.approx(results["psnr_denoised"], abs=1e-3)


def test_unet_quick_beats_the_trivial_predictors(tmp_path):
    stdout = run_example("unet_segmentation.py", "--quick", "--out", str(tmp_path))
    scores = {name: tuple(map(float, m)) for name, *m in
              re.findall(r"^\s+(U-Net|all background|all foreground)\s+IoU ([0-9.]+)\s+Dice ([0-9.]+)$",
                         stdout, re.M)}
    assert set(scores) == {"U-Net", "all background", "all foreground"}, stdout
    iou, dice = scores["U-Net"]
    trivial_iou = max(scores["all background"][0], scores["all foreground"][0])
    assert scores["all background"] == (0.0, 0.0)
    assert 0.2 < scores["all foreground"][0] < 0.4, stdout      # the digits cover about 30% of the pixels
    assert iou >= 0.6 and dice >= 0.75 and iou >= trivial_iou + 0.3, stdout
    for name in ("segmentation.png", "history.png"):
        assert_png(tmp_path / name)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["iou_model"] == pytest.approx(iou, abs=1e-3)

    example = load_example("unet_segmentation.py")
    _, (images, masks) = example.load_data(quick=True, seed=0)
    model = example.build_unet(width=8)
    model.load_weights(str(tmp_path / "unet.weights.h5"))
    again = example.scores(model.predict(images, verbose=0), masks)
    assert again["iou_model"] == pytest.approx(results["iou_model"], abs=1e-4)


@pytest.mark.parametrize("name", ["digits_cnn.py", "denoising_autoencoder.py", "unet_segmentation.py"])
def test_examples_document_their_flags(name):
    stdout = run_example(name, "--help")
    for flag in ("--epochs", "--backend", "--quick", "--out", "--batch-size", "--seed"):
        assert flag in stdout, f"{name} --help does not mention {flag}:\n{stdout}"


# -- plot_history ---------------------------------------------------------------------------
HISTORY = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9], "val_loss": [1.0, 0.7, 0.6],
           "val_accuracy": [0.5, 0.7, 0.8], "learning_rate": [0.001, 0.001, 0.001]}


def test_plot_history_draws_a_png_from_a_dict_or_a_history(tmp_path):
    assert plotting.plot_history(HISTORY, tmp_path / "a.png", title="demo") == tmp_path / "a.png"
    assert_png(tmp_path / "a.png")

    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), epochs=2,
                        validation_split=0.25, verbose=0)
    plotting.plot_history(history, str(tmp_path / "b.png"))
    assert_png(tmp_path / "b.png")


def test_plot_history_takes_numpy_arrays(tmp_path):
    history = {key: np.array(values) for key, values in HISTORY.items()}
    assert plotting._panels(history) == ["loss", "accuracy"]
    plotting.plot_history(history, tmp_path / "arrays.png")
    assert_png(tmp_path / "arrays.png")


def test_plot_history_panels_pair_training_with_validation():
    assert plotting._panels(HISTORY) == ["loss", "accuracy"]          # a constant learning rate is left out
    changing = {**HISTORY, "learning_rate": [0.1, 0.01, 0.001]}
    assert plotting._panels(changing) == ["loss", "accuracy", "learning_rate"]
    assert plotting._panels({"val_loss": [1.0], "mae": [2.0]}) == ["loss", "mae"]   # val_ alone: own panel


def test_plot_history_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # makes "import matplotlib" fail
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plotting.plot_history(HISTORY, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_importing_gpunet_does_not_import_matplotlib():
    code = "import sys, gpunet, gpunet.plotting; print(sorted(m for m in sys.modules if 'matplotlib' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=os.path.join(EXAMPLES, ".."))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("bad, error", [([0.1, 0.2], TypeError), ({"loss": []}, ValueError),
                                        ({"learning_rate": [0.1, 0.1]}, ValueError)])
def test_plot_history_rejects_what_it_cannot_draw(tmp_path, bad, error):
    with pytest.raises(error, match="plot_history"):
        plotting.plot_history(bad, tmp_path / "x.png")


def test_plot_history_is_reachable_as_gn_utils_plot_history():
    assert gn.utils.plot_history is plotting.plot_history
