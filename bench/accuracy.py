"""Train the recommended defaults (and the tutorial preset) on full Fashion-MNIST; print a table.

    python bench/accuracy.py [--device auto] [--seed 0] [--only scratch-mlp,cnn]

Needs full Fashion-MNIST: Debian's dataset-fashion-mnist, or a downloaded copy.
Prints progress per epoch, then a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun, preset  # noqa: E402
from tui_trainer.engine.config import from_text  # noqa: E402
from tui_trainer.engine.data import load_raw, prepare  # noqa: E402
from tui_trainer.engine.devices import resolve_device  # noqa: E402
from tui_trainer.engine.events import EpochEnded, EvaluationEnded, RunFailed  # noqa: E402

RECIPES = {
    "scratch-mlp": TrainConfig(model="scratch-mlp", epochs=15),
    "sequential-mlp": TrainConfig(model="sequential-mlp", epochs=15),
    "cnn": TrainConfig(model="cnn", epochs=10),
    "tutorial": preset("tutorial"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(RECIPES))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of every recipe, e.g. --set precision=fp32")
    args = parser.parse_args()
    device = resolve_device(args.device)
    raw = load_raw("fashion-mnist")
    print(f"machine: {describe_machine(device)}; data: {raw.source}", flush=True)
    rows = []
    for name in args.only.split(","):
        config = RECIPES[name].replace(dataset="fashion-mnist", device=str(device), seed=args.seed)
        config = config.replace(**{field: from_text(field, value)
                                   for field, value in (item.split("=", 1) for item in args.set)})
        data = prepare(raw, device, config.val_split, config.seed)
        started = time.perf_counter()
        test_acc = float("nan")
        for event in TrainingRun(config, data=data).events():
            if isinstance(event, EpochEnded):
                print(f"  {name} epoch {event.epoch}/{event.epochs}: val acc {event.val_acc:.2f}% "
                      f"({event.seconds:.1f}s)", flush=True)
            elif isinstance(event, EvaluationEnded):
                test_acc = event.test_acc
            elif isinstance(event, RunFailed):
                print(f"  {name} failed: {event.message}")
        seconds = time.perf_counter() - started
        label = f"{name} ({config.optimizer}, init {config.init})" if config.model != "cnn" else name
        label += "".join(f", {item}" for item in args.set)
        rows.append((label, config.epochs, seconds, test_acc))
        print(f"{name}: {test_acc:.2f}% in {seconds:.0f}s", flush=True)

    print(f"\nFull Fashion-MNIST, seed {args.seed}, on {describe_machine(device)}:\n")
    print("| recipe | epochs | seconds | test accuracy |")  # seconds include loading and evaluation
    print("|---|---:|---:|---:|")
    for label, epochs, seconds, acc in rows:
        print(f"| {label} | {epochs} | {seconds:.0f} | {acc:.2f}% |")


if __name__ == "__main__":
    main()
