"""How numbers, durations and events read for people: one module for the CLI and the app alike."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence, TypeVar

from .engine.events import EpochEnded, RunStarted
from .engine.wording import counted  # noqa: F401  (declared with the engine, whose sentences use it too)



def format_started(e: RunStarted) -> str:
    """Training scratch-mlp (109,386 parameters) on Fashion-MNIST mini: 10,800 train / ... device cpu; run 3fa2c1d0"""
    line = (f"Training {e.config.model} ({e.parameters:,} parameters) on {e.dataset_title}: {e.train_size:,} train / "
            f"{e.val_size:,} val / {e.test_size:,} test images, device {e.where()}")
    return line + (f"; run {e.run_id}" if e.run_id else "")


def format_epoch(e: EpochEnded) -> str:
    width = len(str(e.epochs))
    line = f"Epoch {e.epoch:>{width}}/{e.epochs}  train loss {e.train_loss:.4f}  acc {e.train_acc:6.2f}%"
    if e.val_loss is not None:
        line += f"  val loss {e.val_loss:.4f}  acc {e.val_acc:6.2f}%"
    if e.ema_val_loss is not None:
        line += f"  ema val loss {e.ema_val_loss:.4f}  acc {e.ema_val_acc:6.2f}%"
    return line + f"  {e.seconds:5.1f}s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def duration(seconds: float) -> str:
    """A run's length in a table cell: 42s, 3m07s, 2h05m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def clock(seconds: float) -> str:
    """A running time as a clock shows it: 4:07, 1:02:03."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


Column = TypeVar("Column", bound=Hashable)


def fit_columns(natural: Mapping[Column, int], minimum: Mapping[Column, int], width: int | None, gap: int,
                squeeze: Sequence[Column] = (), drop: Sequence[Column] = (),
                gap_after_last: bool = False) -> dict[Column, int]:
    """The columns to show, in order, and their widths, for a line of them `gap` apart to fit `width`.

    Columns in `squeeze` narrow first, the widest first and never below their minimum; while that is
    not enough, whole columns go in `drop` order. What cannot go is shown even when it does not fit;
    with no `width` (a pipe) every column is shown whole. The CLI's tables and the runs screen share it.
    """
    for dropped in range(len(drop) + 1):
        widths = {key: w for key, w in natural.items() if key not in drop[:dropped]}
        gaps = len(widths) if gap_after_last else len(widths) - 1
        excess = 0 if width is None else sum(widths.values()) + gap * gaps - width
        while excess > 0:
            room = [key for key in squeeze if key in widths and widths[key] > minimum[key]]
            if not room:
                break
            widths[max(room, key=widths.__getitem__)] -= 1  # the widest gives first: cuts end up even
            excess -= 1
        if excess <= 0:
            break
    return widths
