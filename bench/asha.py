"""ASHA (`sweep --halving`, a study's pruner "asha") against one-rung synchronous halving, in epochs trained.

The one-rung halving is what `sweep --halving` did before it became ASHA; it lives on here as the baseline. Both
are measured in total epochs trained, on one sweep of 8 configs.

    python bench/asha.py [--epochs 8] [--rung 2] [--slots 2] [--device cpu] [--curves bench/results/asha-curves.json]

Each of the 8 configs (lr from 1e-4 to 0.3, log-spaced; the bundled mini data) is trained once, in this process,
for all its epochs, and its val accuracy per epoch kept. Both policies are then played on those same curves:

- one-rung halving (`halving_plan` below): every config trains to the rung; the bottom half by val accuracy
  there stops; the rest train to the end;
- ASHA: Optuna's SuccessiveHalvingPruner (min resource = the rung, reduction factor 2) as the study uses it,
  the 8 trials drawn by `--slots` workers at once, each epoch reported as it ends and stopped when pruned.

Prints the epochs each policy trains, the config each keeps as best, and writes bench/results/asha.txt.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

import optuna  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun  # noqa: E402
from tui_trainer.engine.devices import resolve_device  # noqa: E402
from tui_trainer.engine.events import EpochEnded  # noqa: E402

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3)


def halving_plan(at_rung: dict[float, float]) -> set[float]:
    """The one-rung baseline: of the configs' val accuracy at the rung, keep the top half (rounded up, and any
    config tied with the last one kept); the configs kept."""
    judged = sorted(at_rung.values(), reverse=True)
    cut = judged[math.ceil(len(judged) / 2) - 1]  # the last kept
    return {config for config, acc in at_rung.items() if acc >= cut}


def curves(epochs: int, device: str) -> dict[float, list[float]]:
    """Val accuracy after each epoch, per lr: real training, the same data and seed for every config."""
    found = {}
    for lr in LRS:
        config = TrainConfig(dataset="fashion-mnist-mini", epochs=epochs, lr=lr, device=device, hidden=(64,),
                             max_train_samples=4096, seed=0, monitor="val_acc")
        found[lr] = [e.val_acc for e in TrainingRun(config).events() if isinstance(e, EpochEnded)]
        print(f"lr={lr:g}: " + " ".join(f"{v:.1f}" for v in found[lr]), flush=True)
    return found


def one_rung(acc: dict[float, list[float]], epochs: int, rung: int, slots: int, order: list[float]) -> tuple[int, float]:
    """Epochs trained by the one-rung halving with `slots` runs at once: configs start in order and train on; once
    every config has reached the rung, the bottom half by val accuracy there is stopped (those still training) or
    never started. The best lr among those it kept (by final val acc)."""
    waiting, done, running, judged, kept = list(order), {lr: 0 for lr in acc}, [], False, set(acc)
    while waiting or running:
        while waiting and len(running) < slots:
            running.append(waiting.pop(0))
        for lr in running:  # one epoch each, side by side
            done[lr] += 1
        running = [lr for lr in running if done[lr] < epochs]
        if not judged and all(done[lr] >= rung for lr in acc):
            kept = halving_plan({lr: acc[lr][rung - 1] for lr in acc})
            running = [lr for lr in running if lr in kept]
            waiting = [lr for lr in waiting if lr in kept]
            judged = True
    return sum(done.values()), max(kept, key=lambda lr: acc[lr][-1])


def asha(acc: dict[float, list[float]], epochs: int, rung: int, slots: int,
         order: list[float]) -> tuple[int, float, dict[float, int]]:
    """Epochs trained under ASHA with `slots` trials at once, each epoch taking one unit of time; the best lr
    of those trained to the end; each lr's epochs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=rung, reduction_factor=2))
    waiting = list(order)
    running: list[tuple[int, int, float, object]] = []  # (time its next epoch ends, order, lr, trial)
    order, now, done = 0, 0, {}

    def start(at: int) -> None:
        nonlocal order
        lr = waiting.pop(0)
        study.enqueue_trial({"lr": lr})
        trial = study.ask({"lr": optuna.distributions.CategoricalDistribution(list(acc))})
        heapq.heappush(running, (at + 1, order, lr, trial))
        order += 1

    while waiting and len(running) < slots:
        start(0)
    while running:
        now, _, lr, trial = heapq.heappop(running)
        epoch = done.get(lr, 0) + 1
        done[lr] = epoch
        trial.report(acc[lr][epoch - 1], epoch)
        if epoch == epochs:
            study.tell(trial, acc[lr][-1])
        elif trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            heapq.heappush(running, (now + 1, order, lr, trial))
            order += 1
            continue
        if waiting:  # a slot freed the moment its trial ended or was pruned
            start(now)
    finished = [lr for lr, n in done.items() if n == epochs]
    return sum(done.values()), max(finished, key=lambda lr: acc[lr][-1]), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rung", type=int, default=2, help="the halving epoch; ASHA's first rung")
    parser.add_argument("--slots", type=int, default=2, help="trials training at once under ASHA")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--orders", type=int, default=20, help="random arrival orders to average over")
    parser.add_argument("--curves", type=Path, help="play the policies on curves a previous run saved (JSON)")
    args = parser.parse_args()
    saved = Path(__file__).resolve().parent / "results" / "asha-curves.json"
    if args.curves:
        acc = {float(lr): v for lr, v in json.loads(args.curves.read_text()).items()}
    else:
        acc = curves(args.epochs, args.device)
        saved.write_text(json.dumps(acc) + "\n")
    full = len(acc) * args.epochs
    ascending = sorted(acc)
    rung_epochs, rung_best = one_rung(acc, args.epochs, args.rung, args.slots, ascending)
    asha_epochs, asha_best, each = asha(acc, args.epochs, args.rung, args.slots, ascending)
    # a search draws configs in no particular order: the same curves, in 20 random orders
    shuffled = [random.Random(seed).sample(ascending, len(ascending)) for seed in range(args.orders)]
    rung_many = [one_rung(acc, args.epochs, args.rung, args.slots, o)[0] for o in shuffled]
    asha_many = [asha(acc, args.epochs, args.rung, args.slots, o)[0] for o in shuffled]
    lines = [
        f"# bench/asha.py --epochs {args.epochs} --rung {args.rung} --slots {args.slots} --device {args.device}"
        + (f" --curves {args.curves}" if args.curves else ""),
        f"# {describe_machine(resolve_device(args.device))}",
        f"8 configs x {args.epochs} epochs, no halving: {full} epochs; best lr {max(acc, key=lambda k: acc[k][-1]):g}",
        f"lr ascending, {args.slots} slots: one-rung halving at epoch {args.rung}: {rung_epochs} epochs "
        f"({rung_epochs / full:.0%}), best kept lr {rung_best:g}; ASHA (first rung {args.rung}): {asha_epochs} epochs "
        f"({asha_epochs / full:.0%}), best kept lr {asha_best:g}",
        "ASHA epochs per lr (ascending order): " + ", ".join(f"{lr:g}: {n}" for lr, n in each.items()),
        f"{args.orders} random orders, {args.slots} slots: one-rung halving {statistics.fmean(rung_many):.1f} epochs "
        f"(min {min(rung_many)}, max {max(rung_many)}); ASHA {statistics.fmean(asha_many):.1f} epochs "
        f"(min {min(asha_many)}, max {max(asha_many)})",
        "val acc per epoch: " + "; ".join(f"{lr:g}: " + " ".join(f"{v:.1f}" for v in acc[lr]) for lr in acc),
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = Path(__file__).resolve().parent / "results" / "asha.txt"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
