"""A sweep file's runs in this one process, one after another, then its table: for a lent GPU's short lease.

    python bench/sweep_here.py bench/sweeps/recommended-mlp.toml [--device cuda] [--set FIELD=VALUE ...]

`scratch-tui sweep FILE` is the product's way (queued runs, each its own recorded process).
This runs the same expanded configs with the same engine but without a process, a store or
a data load per run, so a sweep of two dozen short runs fits in a minute of GPU time. The
table is the same `sweep_table` the product prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from tui_trainer.engine import TrainingRun  # noqa: E402
from tui_trainer.engine.config import from_text  # noqa: E402
from tui_trainer.engine.data import load_raw, prepare  # noqa: E402
from tui_trainer.engine.devices import resolve_device  # noqa: E402
from tui_trainer.engine.events import EpochEnded, EvaluationEnded, RunFinished  # noqa: E402
from tui_trainer.runs.sweep import RunResult, SweepSpec, sweep_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    device = resolve_device(args.device)
    changes = {field: from_text(field, value) for field, value in (item.split("=", 1) for item in args.set)}
    configs = [c.replace(device=str(device), **changes) for c in SweepSpec.load(args.file).configs()]
    print(f"{args.file}: {len(configs)} runs on {describe_machine(device)}", flush=True)
    raws, prepared, results = {}, {}, []
    started = time.perf_counter()
    for n, config in enumerate(configs, 1):
        raw = raws.setdefault(config.dataset, load_raw(config.dataset, config.data_dir))
        key = (config.dataset, config.val_split, config.seed, config.max_train_samples)
        if key not in prepared:
            prepared[key] = prepare(raw, device, config.val_split, config.seed, config.max_train_samples)
        best_val, test_acc, seconds, state = None, None, 0.0, "failed"
        for event in TrainingRun(config, data=prepared[key]).events():
            if isinstance(event, EpochEnded) and event.val_acc is not None:
                best_val = max(best_val or 0.0, event.val_acc)
            elif isinstance(event, EvaluationEnded):
                test_acc = event.test_acc
            elif isinstance(event, RunFinished):
                seconds, state = event.seconds, "finished"
        results.append(RunResult(config, best_val, test_acc, seconds, state))
        print(f"[{n}/{len(configs)}] {config.name}: test {test_acc if test_acc is None else f'{test_acc:.2f}%'} "
              f"in {seconds:.1f} s", flush=True)
    print(f"all runs: {time.perf_counter() - started:.0f} s\n")
    print("\n".join(sweep_table(results).render(width=120)))
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
