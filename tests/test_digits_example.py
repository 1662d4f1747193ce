"""The main example, run as a user runs it: a subprocess on the numpy backend (cuda under
GPUNET_BACKEND=cuda for the quick run; the full run's two-minute budget is the CPU's).

Measured on 2 cores: --quick about 2 s and 0.87-0.94 test accuracy over seeds 0-9; the full run
about 7 s (19-28 epochs before early stopping) and 0.98-0.99 test accuracy over seeds 0-5.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from checks import example_backend

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "digits_cnn.py")


def run_example(*args, backend=None):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    backend = backend or example_backend()
    done = subprocess.run([sys.executable, EXAMPLE, "--backend", backend, *args], capture_output=True,
                          text=True, timeout=180, env=env)
    assert done.returncode == 0, f"example failed:\n{done.stdout}\n{done.stderr}"
    found = re.search(r"test accuracy: ([0-9.]+)", done.stdout)
    assert found, f"no 'test accuracy' line in:\n{done.stdout}"
    return float(found.group(1)), done.stdout


def load_example():
    """The example as a module (its functions), without running main()."""
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_trains_and_writes_its_outputs(tmp_path):
    accuracy, stdout = run_example("--quick", "--verbose", "2", "--out", str(tmp_path))
    assert accuracy >= 0.8, stdout
    # 720 images less the last 10% for validation = 648, in batches of 16.
    assert re.search(r"Epoch 5/5 - 41 steps - .* - val_accuracy: ", stdout)
    assert "Total params: 6,154" in stdout
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert len(saved["history"]["loss"]) == 5 and "val_loss" in saved["history"]
    written = (tmp_path / "summary.txt").read_text()   # after training: Keras adds the optimizer's variables
    trainable = int(re.search(r"Trainable params: ([\d,]+)", written).group(1).replace(",", ""))
    frozen = int(re.search(r"Non-trainable params: ([\d,]+)", written).group(1).replace(",", ""))
    assert trainable + frozen == 6154 and f"Optimizer params: {2 + 2 * trainable:,}" in written
    with open(tmp_path / "history.png", "rb") as f:                 # drawn by gn.utils.plot_history
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "history.png").stat().st_size > 5000

    # The saved weights are the trained model's: loaded into a fresh one, they give the same accuracy.
    example = load_example()
    _, (x_test, y_test) = example.load_data(quick=True, seed=0)
    model = example.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.load_weights(str(tmp_path / "digits.weights.h5"))
    assert model.evaluate(x_test, y_test, verbose=0)[1] == pytest.approx(accuracy, abs=1e-4)


def test_epochs_overrides_quick(tmp_path):
    _, stdout = run_example("--quick", "--epochs", "2", "--verbose", "2", "--out", str(tmp_path))
    assert re.search(r"Epoch 2/2 - 41 steps", stdout), stdout
    assert "Epoch 3/" not in stdout, stdout


def test_backend_is_left_to_gpunet_unless_given(monkeypatch):
    """Without --backend the example does not call set_backend, so GPUNET_BACKEND (or the default) applies."""
    example = load_example()
    assert example.parse_args([]).backend is None and example.parse_args([]).epochs is None
    chosen = []

    class StopBeforeTraining(Exception):
        pass

    def stop(quick, seed):
        raise StopBeforeTraining
    monkeypatch.setattr(example.gn, "set_backend", chosen.append)
    monkeypatch.setattr(example, "load_data", stop)
    with pytest.raises(StopBeforeTraining):
        example.main(["--quick"])
    assert chosen == []
    with pytest.raises(StopBeforeTraining):
        example.main(["--quick", "--backend", "cudasim"])
    assert chosen == ["cudasim"]


def test_full_run_reaches_95_percent(tmp_path):
    accuracy, stdout = run_example("--verbose", "0", "--out", str(tmp_path), backend="numpy")
    assert accuracy >= 0.95, stdout
