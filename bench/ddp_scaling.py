"""Throughput from 1 to 2 processes: the same run, one process against two DDP ranks (gloo on the CPU, NCCL on GPUs).

    python bench/ddp_scaling.py [--device cpu] [--epochs 3] [--quick]

Each side is `scratch-tui train` (through torchrun for two), the same config and global batch,
full Fashion-MNIST when on disk. Compares the best epoch's samples/s, read from `--jsonl`.
On the CPU each rank gets half the cores, so two ranks can only win where one process leaves
cores idle; for a model this small the all-reduce each step usually costs more than it saves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tui_trainer.engine.data import dataset_status  # noqa: E402


def best_samples_per_s(command: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    rates = [event["samples_per_s"] for event in map(json.loads, filter(None, out.stdout.splitlines()))
             if event.get("event") == "epoch_end"]
    if not rates:
        raise SystemExit(f"no epochs from {' '.join(command)}:\n{out.stdout[-400:]}{out.stderr[-800:]}")
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 20,000 images")
    args = parser.parse_args()
    dataset = "fashion-mnist" if dataset_status("fashion-mnist") == "on disk" else "fashion-mnist-mini"
    flags = ["train", "--device", args.device, "--dataset", dataset, "--epochs", str(2 if args.quick else args.epochs),
             "--batch-size", str(args.batch_size), "--step-mode", "eager", "--no-record", "--jsonl",
             *(["--max-train-samples", "20000"] if args.quick else [])]
    cores = os.cpu_count() or 1
    one = best_samples_per_s([sys.executable, "-m", "tui_trainer", *flags], {**os.environ})
    two = best_samples_per_s([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                              "-m", "tui_trainer", *flags],
                             {**os.environ, "OMP_NUM_THREADS": str(max(cores // 2, 1))})
    print(f"{dataset}, scratch-mlp, global batch {args.batch_size}, {args.device}, {cores} cores")
    print(f"1 process: {one:,.0f} samples/s; 2 ranks: {two:,.0f} samples/s")
    print(f"ratio: {two / one:.2f} (2 ranks / 1 process)")


if __name__ == "__main__":
    main()
