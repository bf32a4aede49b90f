#!/usr/bin/env bash
# One prepared pass over the CUDA path on a lent GPU machine (see README "Performance").
# Expects full Fashion-MNIST's four .gz IDX files in .fmnist/ (copied from Debian's dataset-fashion-mnist).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD SCRATCH_TUI_DATA=/tmp/scratch-data
mkdir -p "$SCRATCH_TUI_DATA/FashionMNIST/raw"
for f in .fmnist/*.gz; do gunzip -c "$f" > "$SCRATCH_TUI_DATA/FashionMNIST/raw/$(basename "$f" .gz)"; done
python3 -m tui_trainer devices
python3 -m tui_trainer train --device cuda --epochs 2 --max-train-samples 5000
python3 -m tui_trainer train --device cuda:9 --epochs 1; echo "exit code for a missing cuda:9: $?"
python3 bench/engine_speed.py --device cuda --epochs 2
python3 bench/accuracy.py --device cuda
