"""A recorded run's metrics as CSV (one row per epoch) or JSON (everything)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from ..engine.command import command_line
from ..engine.events import EpochEnded
from .store import RunStore

FORMATS = ("csv", "json")


def export_run(store: RunStore, run_id: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format: got {fmt!r}; choose csv or json")
    record = store.get_run(run_id)
    epochs = store.epochs(record.id)
    if fmt == "json":
        return json.dumps({"run": dataclasses.asdict(record), "command": command_line(record.train_config()),
                           "epochs": epochs, "steps": store.steps(record.id),
                           "evaluation": store.evaluation(record.id)}) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in dataclasses.fields(EpochEnded)],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(epochs)
    return buffer.getvalue()
