#!/usr/bin/env bash
# One prepared pass over the CUDA path on a lent GPU machine, in under 8 minutes (see README "Performance").
# That machine has torch but no network. Bring along, in the repository root (both are git-ignored):
#   .fmnist/     full Fashion-MNIST's four .gz IDX files:  cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
#   .gpuwheels/  the pure-Python wheels it lacks:
#     pip download -d .gpuwheels textual textual-plotext plotext platformdirs pytest pytest-asyncio nvidia-ml-py
# Writes what it prints to $OUT (or /tmp/gpu-check) as gpu-check.txt; the tables are at the end.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:/tmp/site SCRATCH_TUI_DATA=/tmp/scratch-data
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    $(ls .gpuwheels/*.whl | grep -v -e packaging- -e typing_extensions- -e exceptiongroup- -e tomli-) 2>&1 | tail -2
mkdir -p "$SCRATCH_TUI_DATA/FashionMNIST/raw"
for f in .fmnist/*.gz; do gunzip -c "$f" > "$SCRATCH_TUI_DATA/FashionMNIST/raw/$(basename "$f" .gz)"; done
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPU cores"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m tui_trainer devices
echo "== the CUDA tests"
timeout 180 python3 -m pytest -q -p no:cacheprovider -m cuda tests/engine 2>&1 | tail -25  # the CUDA tests live there
echo "== a run through the CLI, and a device that is not there"
python3 -m tui_trainer train --device cuda --epochs 2 --max-train-samples 5000 --runs-dir /tmp/runs | tail -4
python3 -m tui_trainer train --device cuda:9 --epochs 1 --runs-dir /tmp/runs; echo "exit code for cuda:9: $?"
echo "== accuracy on the fast path (the CNN in bf16 must hold its accuracy)"
timeout 120 python3 bench/accuracy.py --device cuda --only scratch-mlp,cnn 2>&1 | tail -8
timeout 120 python3 bench/accuracy.py --device cuda --only cnn --set precision=fp32 2>&1 | tail -3
echo "== every speed figure, side by side"
timeout 300 python3 bench/run_all.py --devices cuda
