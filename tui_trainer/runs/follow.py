"""Following a run through the store: the events of a run another process trains, as they land.

    for event in follow(store, run_id):    # blocks between polls; run it off the UI thread
        ...

It yields what a recorder stored, in the same order a live consumer saw it:
RunStarted, BatchProgress (as throttled when stored) and EpochEnded in step order,
RunPaused / RunResumed, then EvaluationEnded and the terminal event. A run resumed
meanwhile starts again with a RunStarted whose `resumed_from_step` says what to keep.
An interrupted run (its process died) ends with RunStopped carrying the store's message.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

from ..engine.events import (EpochEnded, Event, RunFailed, RunFinished, RunPaused, RunResumed, RunStopped,
                     event_from_dict)
from .store import RunStore

LIVENESS_EVERY_S = 2.0  # how often a followed run's process is checked for having died


def follow(store: RunStore, run_id: str, poll_s: float = 0.25,
           stop: threading.Event | None = None) -> Iterator[Event]:
    """Events of the run from its start until it ends (or `stop` is set); RunNotFound if it is deleted."""
    run_id = store.resolve(run_id)
    segment, last_epoch, last_step, paused = 0, 0, 0, False
    next_liveness = time.monotonic() + LIVENESS_EVERY_S
    while True:
        record = store.get_run(run_id)  # read before the rows: a run that has ended has written them all
        if record.segment != segment and record.started:
            segment = record.segment
            started = event_from_dict(record.started)
            last_epoch = min(last_epoch, started.resumed_from_epoch)
            last_step = min(last_step, started.resumed_from_step)
            yield started
        if segment:
            epochs = [event_from_dict(e) for e in store.epochs(run_id, after=last_epoch)]
            steps = store.progress(run_id, after=last_step)
            for event in _in_step_order(epochs, steps):
                if isinstance(event, EpochEnded):
                    last_epoch = event.epoch
                else:
                    last_step = event.step
                yield event
            if record.paused != paused and record.status == "running":
                paused = record.paused
                position = {"epoch": record.epochs_done + 1, "step": last_step}
                yield RunPaused(**position) if paused else RunResumed(**position)
        if record.status != "running":
            yield from _ending(store, run_id, record)
            return
        if time.monotonic() >= next_liveness:
            next_liveness = time.monotonic() + LIVENESS_EVERY_S
            store.mark_interrupted()
        if stop is not None:
            if stop.wait(poll_s):
                return
        else:
            time.sleep(poll_s)


def _in_step_order(epochs: list[Event], steps: list[Event]) -> list[Event]:
    # An epoch's end comes after the progress of its last batch: sort by step, epochs last on ties.
    return sorted([*epochs, *steps], key=lambda e: (e.step, isinstance(e, EpochEnded)))


def _ending(store: RunStore, run_id: str, record) -> Iterator[Event]:
    evaluation = store.evaluation(run_id)
    if evaluation is not None:
        yield event_from_dict(evaluation)
    seconds, done = record.duration_s, record.epochs_done
    if record.status == "finished":
        yield RunFinished(epochs_done=done, seconds=seconds)
    elif record.status == "failed":
        yield RunFailed(message=record.message, epochs_done=done, seconds=seconds)
    else:  # stopped, or interrupted: both can be resumed from their last checkpoint
        yield RunStopped(epochs_done=done, seconds=seconds, reason=record.message or record.status)
