"""The main example, run as a user runs it: a subprocess on the numpy backend (cuda under
GPUNET_BACKEND=cuda for the quick run; the full run's two-minute budget is the CPU's).

Measured on 2 cores: --quick about 2 s and 0.87-0.94 test accuracy over seeds 0-9; the full run
about 7 s (19-28 epochs before early stopping) and 0.98-0.99 test accuracy over seeds 0-5.
"""
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


def test_quick_run_trains_and_writes_its_outputs(tmp_path):
    accuracy, stdout = run_example("--quick", "--verbose", "2", "--out", str(tmp_path))
    assert accuracy >= 0.8, stdout
    # 720 images less the last 10% for validation = 648, in batches of 16.
    assert re.search(r"Epoch 5/5 - 41 steps - .* - val_accuracy: ", stdout)
    assert "Total params: 6,154" in stdout
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert len(saved["history"]["loss"]) == 5 and "val_loss" in saved["history"]
    assert "Total params: 6,154" in (tmp_path / "summary.txt").read_text()
    assert (tmp_path / "training.png").stat().st_size > 1000


def test_full_run_reaches_95_percent():
    accuracy, stdout = run_example("--verbose", "0", backend="numpy")
    assert accuracy >= 0.95, stdout
