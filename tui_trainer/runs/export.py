"""A recorded run's metrics as CSV (one row per epoch) or JSON (everything)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from ..engine.events import EpochEnded
from .replay import repeat_line
from .store import RunStore

FORMATS = ("csv", "json")


def export_run(store: RunStore, run_id: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format: got {fmt!r}; choose csv or json")
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
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in dataclasses.fields(EpochEnded)],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(epochs)
    return buffer.getvalue()
