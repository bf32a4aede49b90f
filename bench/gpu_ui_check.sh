#!/usr/bin/env bash
# The app on a lent GPU machine: bench/ui_overhead.py on many CPU cores and on CUDA, and the
# GPU memory figures the training process reports.
# The machine has torch but no Textual and no network: it expects pure-Python wheels of textual,
# textual-plotext, plotext, platformdirs and their dependencies in .gpuwheels/
#   pip download -d .gpuwheels textual==8.2.8 textual-plotext==1.0.1 plotext==5.3.2 platformdirs uc-micro-py
# and full Fashion-MNIST's four .gz IDX files in .fmnist/ (as bench/gpu_check.sh).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:/tmp/pylib SCRATCH_TUI_DATA=/tmp/scratch-data
python3 -m pip install -q --no-index --find-links .gpuwheels --target /tmp/pylib \
    textual textual-plotext plotext platformdirs 2>&1 | tail -2
mkdir -p "$SCRATCH_TUI_DATA/FashionMNIST/raw"
for f in .fmnist/*.gz; do gunzip -c "$f" > "$SCRATCH_TUI_DATA/FashionMNIST/raw/$(basename "$f" .gz)"; done
python3 --version; echo "CPU cores: $(nproc)"
timeout 120 python3 bench/ui_overhead.py --device cpu --rounds 3 --epochs 6
timeout 100 python3 bench/ui_overhead.py --device cuda --rounds 2 --epochs 6
python3 -m tui_trainer train --device cuda --epochs 1 --max-train-samples 5000 --jsonl > /tmp/cuda.jsonl
grep -m1 -o '"memory_mib": [0-9.]*, "peak_memory_mib": [0-9.]*' /tmp/cuda.jsonl
