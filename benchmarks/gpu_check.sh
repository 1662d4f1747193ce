#!/usr/bin/env bash
# gpu_check.sh - everything gpunet wants checked on a real GPU, in one command, within 8 minutes.
#
#   bash benchmarks/gpu_check.sh [REPORT_DIR]
#
# writes REPORT_DIR/gpu_check_report.md (REPORT_DIR: the argument, else $OUT, else
# ./gpu_check_report). Parts, each under its own time limit, each recorded with its output and
# exit status whatever the others do:
#   0. setup: the GPU (nvidia-smi), Python packages; CuPy (cupy-cuda12x or cupy-cuda13x, chosen
#      by the driver's CUDA version, the other as fallback) and torch are installed if missing.
#      Offline machines: set GPUNET_WHEELS=/path/to/wheels to install from a folder.
#   1. the cuda subset of the test suite: every test marked `cuda` (the kernel tests' cuda
#      half, strict-sync under cupyx.allow_synchronize(False)), then the model-level tests
#      with GPUNET_BACKEND=cuda;
#   2. benchmarks/gpu_vs_torch.py over every case (train, predict, ops: small CNN, encoder-decoder,
#      U-Net) and every mode its --help offers (eager always; CUDA graphs when the script has the
#      flag; training steps in TF32, mixed_float16 and mixed_bfloat16 when it has --precision);
#   3. gn.profiler on the U-Net case (benchmarks/unet_case.py, batch 16, 128x128x3), the
#      encoder-decoder and the small CNN: per-kernel CUDA-event times and roof fractions,
#      launches and syncs per step;
#   4. benchmarks/host_overhead.py when present (Python cost per launch).
# Without a GPU it runs as a dry run (cudasim, tiny batches) so that the script itself is
# checked; the report says so on its first line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
REPORT_DIR="${1:-${OUT:-$ROOT/gpu_check_report}}"
mkdir -p "$REPORT_DIR"
REPORT="$REPORT_DIR/gpu_check_report.md"
LOGS="$(mktemp -d)"            # each part's full output; the report keeps the last 400 lines of each
trap 'rm -rf "$LOGS"' EXIT
PY="${PYTHON:-$(command -v python || command -v python3)}"
START=$(date +%s)
BUDGET="${GPU_CHECK_SECONDS:-470}"   # the whole run, setup included, stays under 8 minutes
: > "$REPORT"
STATUS=()

note() { printf '%s\n' "$*" | tee -a "$REPORT"; }
elapsed() { echo $(( $(date +%s) - START )); }

# part NAME SECONDS COMMAND...: run under `timeout`, output into the report (the last 400
# lines of it), status recorded; never stops the script.
part() {
    local name="$1" limit="$2"; shift 2
    local left=$(( BUDGET - $(elapsed) ))
    if [ "$left" -lt 20 ]; then
        note ""; note "## $name"; note ""; note "-> $name: SKIPPED (out of the ${BUDGET}s budget)"
        STATUS+=("$name: skipped, out of time"); return
    fi
    [ "$limit" -gt "$left" ] && limit="$left"
    local log="$LOGS/part-$(echo "$name" | tr -c 'A-Za-z0-9' '_').log"
    note ""
    note "## $name"
    note ""
    note "\`$*\` (limit ${limit}s, started at +$(elapsed)s)"
    note ""
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    { echo '```'; tail -n 400 "$log"; echo '```'; } >> "$REPORT"
    local verdict="ok"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && verdict="TIMED OUT after ${limit}s"
    [ "$rc" -ne 0 ] && [ "$verdict" = "ok" ] && verdict="FAILED (exit $rc)"
    note ""
    note "-> $name: $verdict ($(elapsed)s so far)"
    STATUS+=("$name: $verdict")
}

pip_install() {   # pip_install PACKAGE... : quietly, from GPUNET_WHEELS when set; fails fast offline
    if [ -n "${GPUNET_WHEELS:-}" ]; then
        "$PY" -m pip install --quiet --no-index --find-links "$GPUNET_WHEELS" "$@"
    else
        "$PY" -m pip install --quiet --disable-pip-version-check --timeout 20 --retries 1 "$@"
    fi
}

# -- 0. setup ----------------------------------------------------------------------------------
GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPU=1; fi
if [ "$GPU" -eq 1 ]; then
    note "# gpunet GPU check: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
else
    note "# gpunet GPU check: DRY RUN (no GPU visible to nvidia-smi): cudasim and CPU stand in, numbers are not GPU numbers"
fi
note ""
note "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$PY" --version 2>&1)"
CUDA_MAJOR=""
if [ "$GPU" -eq 1 ]; then
    CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -1)
    note "driver supports CUDA ${CUDA_MAJOR:-unknown}"
fi

"$PY" -c "import numpy, h5py, tqdm, pytest" 2>/dev/null || {
    note "installing gpunet's dependencies and pytest"
    pip_install -e ".[test]" || pip_install numpy h5py tqdm pytest || note "WARNING: could not install gpunet's dependencies"
}
cupy_works() { "$PY" - <<'EOF' 2>&1
import cupy as cp
k = cp.RawKernel(r'extern "C" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }', "twice")
x = cp.arange(4, dtype=cp.float32)
k((1,), (4,), (x,))
assert x.get().tolist() == [0.0, 2.0, 4.0, 6.0]
print("CuPy", cp.__version__, "compiles and runs kernels on", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
EOF
}
if [ "$GPU" -eq 1 ]; then
    if ! cupy_works > "$LOGS/cupy_probe.log"; then
        first=13; second=12
        [ "${CUDA_MAJOR:-13}" -lt 13 ] 2>/dev/null && { first=12; second=13; }
        note "CuPy missing or not working ($(tail -1 "$LOGS/cupy_probe.log")); installing cupy-cuda${first}x"
        for package in "cupy-cuda${first}x[ctk]" "cupy-cuda${first}x" "cupy-cuda${second}x[ctk]" "cupy-cuda${second}x"; do
            pip_install "$package" >/dev/null 2>&1 && cupy_works > "$LOGS/cupy_probe.log" && { note "installed $package"; break; }
            "$PY" -m pip uninstall --quiet -y "${package%%\[*}" >/dev/null 2>&1
        done
    fi
    cupy_works > "$LOGS/cupy_probe.log" && note "$(tail -1 "$LOGS/cupy_probe.log")" || \
        note "ERROR: no working CuPy (last error: $(tail -1 "$LOGS/cupy_probe.log")). Offline? Put cupy-cuda12x/13x wheels in a folder and set GPUNET_WHEELS. The cuda parts below will fail."
fi
torch_works() { "$PY" -c "import torch; assert torch.cuda.is_available() or $GPU == 0; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1; }
if [ "$GPU" -eq 1 ] && ! torch_works > "$LOGS/torch_probe.log"; then
    note "torch missing or without CUDA; installing torch"
    pip_install "torch" >/dev/null 2>&1 || note "WARNING: could not install torch (offline? set GPUNET_WHEELS): gpu_vs_torch.py will fail"
fi
torch_works > "$LOGS/torch_probe.log" && note "$(tail -1 "$LOGS/torch_probe.log")"
note "setup took $(elapsed)s"

# -- the parts, most important first (each clamped to what is left of the budget) -------------
MODEL_TESTS="tests/test_training.py tests/test_models.py tests/test_callbacks.py tests/test_losses_metrics.py \
tests/test_core_layers.py tests/test_conv_layers.py tests/test_pool_norm_layers.py tests/test_shape_merge.py tests/test_saving.py"
MODES=("")
HELP=$("$PY" benchmarks/gpu_vs_torch.py --help 2>/dev/null || true)
for flag in --jit-compile --cuda-graphs --graphs; do
    grep -q -- "$flag" <<< "$HELP" && MODES+=("$flag")
done
if [ "$GPU" -eq 1 ]; then
    part "1. tests marked cuda (kernels against numpy, strict sync)" 150 \
        "$PY" -m pytest -q -m cuda --maxfail=20 -p no:cacheprovider
    part "2. profiler: U-Net case, batch 16, 128x128x3" 60 \
        "$PY" benchmarks/profile_step.py --backend cuda --model unet --steps 10
    part "2b. profiler: encoder-decoder, batch 32" 40 \
        "$PY" benchmarks/profile_step.py --backend cuda --model autoencoder --steps 20
    part "3. gpu_vs_torch.py, every case, eager" 90 "$PY" benchmarks/gpu_vs_torch.py --repeats 20 --warmup 3
    if grep -q -- "--precision" <<< "$HELP"; then   # tensor cores: TF32, fp16 (autocast + GradScaler), bf16
        for precision in tf32 mixed_float16 mixed_bfloat16; do
            part "3b. gpu_vs_torch.py, training steps, --precision $precision" 50 \
                "$PY" benchmarks/gpu_vs_torch.py --cases train --repeats 10 --warmup 3 --precision "$precision"
        done
    fi
    part "4. profiler: small CNN, batch 64" 30 "$PY" benchmarks/profile_step.py --backend cuda --model cnn --steps 20
    part "5. model-level tests on the cuda backend" 120 \
        env GPUNET_BACKEND=cuda "$PY" -m pytest -q -m "not reference" --maxfail=20 -p no:cacheprovider $MODEL_TESTS
    for mode in "${MODES[@]:1}"; do
        part "6. gpu_vs_torch.py, every case, $mode" 75 "$PY" benchmarks/gpu_vs_torch.py --repeats 20 --warmup 3 $mode
    done
else
    part "1. tests marked cuda (dry run: each skips, saying why)" 120 \
        "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_sync_free.py
    part "2. profiler (dry run: cudasim, U-Net case 16x16x3, batch 1)" 150 \
        env GPUNET_CUDASIM_CONTEXTS=fibers "$PY" benchmarks/profile_step.py --backend cudasim --model unet --size 16 --batch 1 --steps 2
    part "2b. profiler (dry run: cudasim, encoder-decoder, batch 2)" 120 \
        env GPUNET_CUDASIM_CONTEXTS=fibers "$PY" benchmarks/profile_step.py --backend cudasim --model autoencoder --batch 2 --steps 2
    if "$PY" -c "import torch" 2>/dev/null; then
        for mode in "${MODES[@]}"; do
            part "3. gpu_vs_torch.py ${mode:-eager} (dry run)" 120 "$PY" benchmarks/gpu_vs_torch.py --dry-run $mode
        done
    else
        note ""; note "-> 3. gpu_vs_torch.py: skipped in the dry run (torch is not installed here; on a GPU machine it is installed)"
        STATUS+=("3. gpu_vs_torch.py: skipped, no torch (dry run)")
    fi
fi
if [ -f benchmarks/host_overhead.py ]; then
    part "7. host_overhead.py (Python cost per launch)" 30 "$PY" benchmarks/host_overhead.py
fi

note ""
note "## Summary ($(elapsed)s in all)"
note ""
for line in "${STATUS[@]}"; do note "- $line"; done
echo "report: $REPORT"
