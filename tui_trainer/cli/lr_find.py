"""`scratch-tui lr-find [train flags]`: the learning-rate range test, its curve and the lr it suggests.

It trains a throwaway copy of the model and records nothing: no run id, no checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ..engine.config import PRESETS, ConfigError
from ..engine.lr_find import END_LR, START_LR, STEPS, LrFindProgress, check_range, find_lr
from .common import error, usage_error
from .flags import TRAIN_FLAGS, config_from_args, name_flags

PLOT_WIDTH, PLOT_HEIGHT = 78, 18  # inside an 80-column terminal
_RANGE_FLAGS = {"start_lr": "--start-lr", "end_lr": "--end-lr", "steps": "--steps"}
PROGRESS_LINES_IN_A_PIPE = 4  # into a file, a few lines of progress rather than one per step


def add_lr_find_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "lr-find", help="find a learning rate: a short range test, its loss curve and a suggestion",
        description="Train a throwaway copy of the model for a few hundred steps while the learning rate rises "
                    "exponentially; plot the loss against it and suggest one. Takes the train flags; records no run.")
    parser.add_argument("--preset", choices=tuple(PRESETS), help="start from a named recipe")
    parser.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    for flag, kwargs in TRAIN_FLAGS.items():
        parser.add_argument(flag, default=None, **kwargs)
    parser.add_argument("--start-lr", type=float, default=START_LR, metavar="LR",
                        help=f"the learning rate of the first step (default {START_LR:g})")
    parser.add_argument("--end-lr", type=float, default=END_LR, metavar="LR",
                        help=f"the learning rate of the last step (default {END_LR:g})")
    parser.add_argument("--steps", type=int, default=STEPS, metavar="N",
                        help=f"mini-batches to raise it over (default {STEPS})")


def _flagged(exc: ConfigError) -> str:
    """Range messages name start_lr, end_lr and steps; on the command line, name the flags."""
    message = "; ".join(exc.errors.values())
    for name, flag in _RANGE_FLAGS.items():
        message = message.replace(name, flag)
    return message


def run_lr_find(args: argparse.Namespace) -> int:
    try:
        check_range(args.start_lr, args.end_lr, args.steps)
    except ConfigError as exc:
        return usage_error(_flagged(exc), "lr-find")
    from ..engine.fits import check_fits

    try:
        config = config_from_args(args)
        check_fits([config])
    except ConfigError as exc:
        return usage_error(name_flags(exc), "lr-find")

    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from .printer import TerminalPrinter

    printer = TerminalPrinter(sys.stdout, sys.stderr)  # for its download progress
    result = None
    try:
        for item in find_lr(config, args.start_lr, args.end_lr, args.steps,
                            download_progress=printer.download_progress):
            if isinstance(item, LrFindProgress):
                _progress(item, sys.stderr, printer.live)
            else:
                result = item
    except ConfigError as exc:
        return usage_error(_flagged(exc) if set(exc.errors) <= set(_RANGE_FLAGS) else name_flags(exc), "lr-find")
    except DeviceError as exc:
        return usage_error(str(exc).replace("device:", "--device:", 1), "lr-find")
    except DatasetUnavailable as exc:
        return error(str(exc), "lr-find")
    except KeyboardInterrupt:
        if printer.live:
            sys.stderr.write("\r\033[K")
        return error("stopped; nothing was recorded", "lr-find", 130)
    if printer.live:
        sys.stderr.write("\r\033[K")
    _report(result, config, args.start_lr, sys.stdout)
    return 0


def _progress(item: Any, err: TextIO, live: bool) -> None:
    line = f"lr-find {item.step}/{item.steps}  lr {item.lr:.3g}  loss {item.loss:.4f}"
    if live:
        err.write("\r\033[K" + line)
        err.flush()
    elif item.step % max(item.steps // PROGRESS_LINES_IN_A_PIPE, 1) == 0:
        print(line, file=err, flush=True)


def _report(result: Any, config: Any, start_lr: float, out: TextIO) -> None:
    from ..command_line import command_line

    print(plot(result.lrs, result.losses, out), file=out)
    last = result.lrs[-1]
    if result.stopped_early:
        print(f"Stopped early at lr {last:.3g}, step {len(result.lrs)}: the loss diverged.", file=out)
    else:
        print(f"Reached lr {last:.3g} after {len(result.lrs)} steps without the loss diverging.", file=out)
    suggestion = float(f"{result.suggestion:.2g}")  # two figures: the test is not more precise than that
    print(f"Lowest smoothed loss {min(result.losses):.4f} at lr {result.min_loss_lr:.3g}; a tenth of that is "
          f"the suggestion" + (f" (raised to --start-lr {start_lr:g})" if result.suggestion == start_lr else "")
          + ".", file=out)
    print(f"suggested lr: {suggestion:g} (`{command_line(config.replace(lr=suggestion))}`)", file=out)


def plot(lrs: list[float], losses: list[float], out: TextIO) -> str:
    """The smoothed loss against the lr on a log axis, 78 columns wide; as a short table where the
    output cannot show plotext's box and braille characters."""
    import math

    import plotext

    try:
        "┌⠉".encode(out.encoding or "ascii")
    except (UnicodeEncodeError, LookupError, AttributeError):
        every = max(len(lrs) // 15, 1)
        rows = [f"{'lr':>10}  smoothed loss"] + [f"{lr:>10.3g}  {loss:.4f}" for lr, loss in
                                                 list(zip(lrs, losses))[::every]]
        return "\n".join(rows)
    plotext.clear_figure()
    plotext.plotsize(PLOT_WIDTH, PLOT_HEIGHT)
    # a diverged tail would squash the valley into a line: cut the axis a little above the starting loss
    top = max(losses[0], min(losses)) * 1.25
    plotext.plot(lrs, [min(loss, top) for loss in losses], marker="braille")
    plotext.xscale("log")
    decades = range(math.floor(math.log10(lrs[0])), math.ceil(math.log10(lrs[-1])) + 1)
    ticks = [10.0 ** d for d in decades]
    plotext.xticks(ticks, [f"{t:g}" for t in ticks])
    plotext.title("smoothed training loss against the learning rate")
    plotext.xlabel("learning rate (log scale)")
    text = plotext.build()
    plotext.clear_figure()
    # its colors are escape codes: kept for a terminal, left out of a file or a pipe
    colored = getattr(out, "isatty", lambda: False)()
    return (text if colored else plotext.uncolorize(text)).rstrip()
