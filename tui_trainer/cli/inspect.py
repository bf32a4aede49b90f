"""`scratch-tui inspect [train flags]`: the probe at step 0 on a fresh model, its layer table and the init check.

It builds the model as `train` would, the user's own included, measures it once, and records nothing.
`runs show ID --layers` prints the same table of a recorded run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..engine.config import PRESETS, ConfigError
from .common import error, table, terminal_width, usage_error
from .flags import TRAIN_FLAGS, config_from_args, name_flags


def add_inspect_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "inspect", help="look inside a fresh model: each layer's statistics at init and what they say",
        description="Build the model and data as `train` would, measure every layer on a fixed batch before any "
                    "update (activation spread, dead units, gradient norms) and say whether the init is healthy. "
                    "Takes the train flags; records no run.")
    parser.add_argument("--preset", choices=tuple(PRESETS), help="start from a named recipe")
    parser.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    for flag, kwargs in TRAIN_FLAGS.items():
        parser.add_argument(flag, default=None, **kwargs)


def layer_rows(stats: Any) -> list[str]:
    """The layer table of a LayerStats: one row per layer, '-' where a number does not apply."""
    def number(value: float | None, spec: str = ".3g") -> str:
        return "-" if value is None else format(value, spec)

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    rows = [("LAYER", "TYPE", "ACT MEAN", "ACT STD", "DEAD", "SATURATED", "WEIGHT STD", "GRAD NORM", "UPDATE")]
    for layer in stats.layers:
        rows.append((layer.name, layer.kind, number(layer.act_mean), number(layer.act_std), share(layer.dead),
                     share(layer.saturated), number(layer.weight_std), number(layer.grad_norm),
                     number(layer.update_ratio, ".1e")))
    head = (f"step {stats.step:,} (epoch {stats.epoch}): probe loss {number(stats.loss)} "
            f"(ln K = {number(stats.expected_loss)}), logits std {number(stats.logits_std)}")
    return [head, *table(rows, terminal_width(), squeeze=(0,), drop=(8, 5, 1))]


def run_inspect(args: argparse.Namespace) -> int:
    from ..engine.fits import check_fits

    try:
        config = config_from_args(args)
        check_fits([config])  # a model too big for the memory is refused before it is built
    except ConfigError as exc:
        return usage_error(name_flags(exc), "inspect")
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..engine.events import Diagnosis, LayerStats
    from ..engine.loop import TrainingRun
    from .printer import TerminalPrinter

    run = TrainingRun(config.replace(probe_every=max(config.probe_every, 1)),
                      download_progress=TerminalPrinter(sys.stdout, sys.stderr).download_progress)
    try:
        run.setup()
    except DeviceError as exc:
        return usage_error(str(exc).replace("device:", "--device:", 1), "inspect")
    except DatasetUnavailable as exc:
        return error(str(exc), "inspect")
    events = list(run.look_inside(1))
    stats = next(e for e in events if isinstance(e, LayerStats))
    print(f"{config.model} on {run.data.spec.title}: {sum(p.numel() for p in run.model.parameters()):,} parameters")
    print("\n".join(layer_rows(stats)))
    for diagnosis in (e for e in events if isinstance(e, Diagnosis)):
        print(diagnosis.describe())
    return 0
