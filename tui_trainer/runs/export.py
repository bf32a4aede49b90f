"""Recorded runs as CSV (one row per epoch), JSON (everything) or TensorBoard event files (one folder per run).

The CSV's header is EpochEnded's fields, in order (CSV_HEADER): epoch, epochs, train_loss, train_acc, val_loss,
val_acc, lr, seconds, samples_per_s, step, ema_val_loss, ema_val_acc. A validation the run did not have (and the
moving average's, without --ema) is an empty cell.

TensorBoard's files are written by its own writer (torch.utils.tensorboard, which needs only the `tensorboard`
package: the `tensorboard` extra), so TensorBoard, W&B and Aim read them as their own. In each run's folder:

    train/loss, train/acc, lr, samples_per_s   per progress report, at its step (loss and acc: the epoch's running
                                               means, as the log keeps them)
    epoch/train_loss ... epoch/lr, epoch/seconds   per epoch, at the epoch's number
    test/loss, test/acc                        the evaluation, at the last epoch
    changes                                    text: each steering change (runs show's sentence), at its step
    run                                        text: the command that repeats it and its receipt, at step 0
    layers/NAME/...                            the probe's statistics: act/weight/grad histograms and scalars
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

from ..engine.events import EpochEnded, LayerStats
from .replay import repeat_line
from .store import RunStore

FORMATS = ("csv", "json", "tensorboard")
CSV_HEADER = tuple(f.name for f in dataclasses.fields(EpochEnded))
INSTALL_TENSORBOARD = "pip install '.[tensorboard]'"


class TensorBoardMissing(ImportError):
    """The `tensorboard` package is not installed."""


def export_run(store: RunStore, run_id: str, fmt: str) -> str:
    """One run as CSV or JSON text."""
    if fmt not in ("csv", "json"):
        raise ValueError(f"format: got {fmt!r}; choose csv or json (tensorboard writes files: export_tensorboard)")
    record = store.get_run(run_id)
    view = store.view(record.id)
    epochs = [e.to_dict() for e in view.epochs]
    if fmt == "json":
        # changes: what altered the run's course, each {step, epoch, what, value, previous, by, detail}
        return json.dumps({"run": dataclasses.asdict(record), "command": repeat_line(store, record),
                           "epochs": epochs, "steps": sorted(view.steps.items()),
                           "changes": [c.to_dict() for c in view.changes],
                           "layer_stats": [s.to_dict() for s in view.layer_stats],
                           "diagnoses": [d.to_dict() for d in view.diagnoses],
                           "evaluation": view.evaluation.to_dict() if view.evaluation else None}) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(epochs)
    return buffer.getvalue()


def summary_writer() -> type:
    """TensorBoard's writer, or TensorBoardMissing saying how to install it."""
    try:
        import tensorboard  # noqa: F401  (torch's writer imports it late, with a less helpful message)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TensorBoardMissing(f"TensorBoard export needs the tensorboard package: {INSTALL_TENSORBOARD}") \
            from None
    return SummaryWriter


def export_tensorboard(store: RunStore, run_ids: list[str], folder: Path) -> list[Path]:
    """Each run's event file in a folder of its own under `folder` (its id, and its name where it has one); the
    folders written. A folder exported before is emptied first, so a second export does not double the points."""
    writer_class = summary_writer()
    written = []
    for run_id in run_ids:
        record = store.get_run(run_id)
        into = folder / (record.id + (f"-{_safe(record.name)}" if record.name else ""))
        if into.is_dir():
            for old in into.glob("events.out.tfevents.*"):
                old.unlink()
        writer = writer_class(log_dir=str(into))
        try:
            _write_run(writer, store, record)
        finally:
            writer.close()
        written.append(into)
    return written


def _write_run(writer: Any, store: RunStore, record: Any) -> None:
    view = store.view(record.id)
    about = [f"    {repeat_line(store, record)}"]
    if view.started is not None:
        about += [f"    {key} = {value}" for key, value in view.started.receipt().items()]
    writer.add_text("run", "\n".join(about), 0)  # indented: TensorBoard shows markdown, and these as code
    for step, report in sorted(view.reports.items()):
        writer.add_scalar("train/loss", report.loss, step)
        writer.add_scalar("train/acc", report.acc, step)
        writer.add_scalar("lr", report.lr, step)
        writer.add_scalar("samples_per_s", report.samples_per_s, step)
    for e in view.epochs:
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
            value = getattr(e, name)
            if value is not None:
                writer.add_scalar(f"epoch/{name}", value, e.epoch)
    if view.evaluation is not None:
        last = view.epochs[-1].epoch if view.epochs else 0
        writer.add_scalar("test/loss", view.evaluation.test_loss, last)
        writer.add_scalar("test/acc", view.evaluation.test_acc, last)
    for change in view.changes:
        writer.add_text("changes", change.describe(), change.step)
    for stats in view.layer_stats:
        _write_layers(writer, stats)


LAYER_SCALARS = ("act_mean", "act_std", "dead", "saturated", "weight_std", "weight_norm", "grad_norm", "update_ratio")
LAYER_HISTOGRAMS = {"act_hist": "activations", "weight_hist": "weights", "grad_hist": "grads"}


def _write_layers(writer: Any, stats: LayerStats) -> None:
    if stats.loss is not None:
        writer.add_scalar("probe/loss", stats.loss, stats.step)
    for layer in stats.layers:
        for name in LAYER_SCALARS:
            value = getattr(layer, name)
            if value is not None:
                writer.add_scalar(f"layers/{layer.name}/{name}", value, stats.step)
        for name, label in LAYER_HISTOGRAMS.items():
            histogram = getattr(layer, name)
            if histogram:
                _add_histogram(writer, f"layers/{layer.name}/{label}", histogram, stats.step)


def _add_histogram(writer: Any, tag: str, histogram: list[float], step: int) -> None:
    """The probe's histogram, [low, high, count, count, ...] over equal bins (engine/probe.py), as TensorBoard's
    buckets, each named by its upper edge; the sums are the bins' middles times their counts, as near as bins tell."""
    low, high, counts = histogram[0], histogram[1], histogram[2:]
    total = sum(counts)
    if not counts or not total:
        return
    width = (high - low) / len(counts)
    middles = [low + width * (i + 0.5) for i in range(len(counts))]
    writer.add_histogram_raw(tag, min=low, max=high, num=total,
                             sum=sum(m * c for m, c in zip(middles, counts)),
                             sum_squares=sum(m * m * c for m, c in zip(middles, counts)),
                             bucket_limits=[low + width * (i + 1) for i in range(len(counts))], bucket_counts=counts,
                             global_step=step)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:40]

