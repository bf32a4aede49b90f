"""How numbers, durations and events read for people: one module for the CLI and the app alike."""

from __future__ import annotations

from .engine.events import EpochEnded, EvaluationEnded


def format_epoch(e: EpochEnded) -> str:
    width = len(str(e.epochs))
    line = f"Epoch {e.epoch:>{width}}/{e.epochs}  train loss {e.train_loss:.4f}  acc {e.train_acc:6.2f}%"
    if e.val_loss is not None:
        line += f"  val loss {e.val_loss:.4f}  acc {e.val_acc:6.2f}%"
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


def format_test(e: EvaluationEnded) -> str:
    return f"Test Loss: {e.test_loss:.4f}, Test Accuracy: {e.test_acc:.2f}%"


def clock(seconds: float) -> str:
    """A running time as a clock shows it: 4:07, 1:02:03."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
