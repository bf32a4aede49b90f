"""What Enter on a run opens, wherever the run is listed (the runs screen, the sweep view)."""

from __future__ import annotations

from ..engine.events import RunState
from ..runs.queue import queued
from ..runs.store import RunNotFound, RunStore, StoreError


def queue_positions(store: RunStore) -> dict[str, int]:
    """Each waiting run's 1-based place in the queue."""
    return {q.id: q.position for q in queued(store) if q.position is not None}


def queued_message(store: RunStore, run_id: str) -> str:
    try:
        position = queue_positions(store).get(run_id)
    except StoreError:
        position = None
    return f"Run {run_id} is queued" + (f" (position {position})" if position else "")


def cannot_open(run_id: str, why: str) -> str:
    """What Enter on a run this version cannot read says (RunRecord.unreadable is `why`)."""
    return f"Run {run_id} cannot be opened: {why}."


def open_run(app, store: RunStore, run_id: str) -> None:
    """Enter on a run (the runs screen, the sweep view): a running or queued run live, a finished run's
    evaluation, a stopped or interrupted one's best checkpoint evaluated."""
    try:
        record = store.get_run(run_id)
    except (RunNotFound, StoreError) as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    if record.unreadable:  # made by another version: its log and checkpoints name what this one has not got
        app.notify(cannot_open(record.id, record.unreadable), severity="error", markup=False)
        return
    if record.status == RunState.QUEUED:  # nothing to evaluate: its view goes live when the runner starts it
        app.notify(f"{queued_message(store, record.id)}; it trains here once the queue's runner starts it.",
                   markup=False)
        app.attach(record.id)
        return
    if record.status == RunState.RUNNING:
        app.attach(record.id)
        return
    try:
        evaluation = store.evaluation(record.id)
    except StoreError as exc:  # its log is damaged: the one line says which event
        app.notify(str(exc), severity="error", markup=False)
        return
    if evaluation is None:  # stopped or interrupted: evaluate its best checkpoint instead
        app.evaluate_checkpoint(record.id, "best")
        return
    app.push_evaluation(evaluation, f" · run {record.id} · {record.model} on {record.dataset}")
