"""`runs verify`: train a recorded run's first steps again and hold the losses against its log.

    result = verify_run(store, run_id, steps=200)     # Verification: reproduced, or the first step that differs

The run is built the one way a stored run becomes training (worker.build_run, `from_start`): its recorded config,
data, model source, thread count and lr changes. Its log holds the epoch's running loss at the progress reports
(always at steps 25, 50, 100, 200, ...: engine/loop.py `on_record`) and at each epoch's end; the second training
reports at every 25 steps, so each of those is compared. Nothing is written to the store.

On the CPU the losses must match bit for bit. On CUDA, atomics sum in no fixed order, so they must agree within
CUDA_TOLERANCE (relative), unless `deterministic` turns on torch's deterministic algorithms: bitwise again.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine.events import BatchProgress, EpochEnded, RunFailed, RunStarted, event_from_dict
from .store import RunStore
from .worker import build_run

DEFAULT_STEPS = 200  # or one epoch, whichever is fewer
CUDA_TOLERANCE = 1e-3  # relative: float32 sums in another order drift apart over a few hundred steps, not more


@dataclass(frozen=True)
class Mismatch:
    step: int
    recorded: float
    now: float

    @property
    def relative(self) -> float:
        return abs(self.now - self.recorded) / max(abs(self.recorded), 1e-30)

    def describe(self) -> str:
        return (f"step {self.step}: loss {self.now!r} now, {self.recorded!r} in the log "
                f"({self.now - self.recorded:+.3g}, {self.relative:.2g} relative)")


@dataclass(frozen=True)
class Verification:
    run_id: str
    steps: int  # trained again, from where the run starts (0, or a fork's point)
    compared: list[int]  # the steps whose losses were compared
    tolerance: float  # relative; 0.0: bit for bit
    mismatch: Mismatch | None
    differences: list[tuple[str, Any, Any]]  # (what, in the record, now) of the environment
    seconds: float  # the second training's time for those steps
    recorded_seconds: float | None  # the record's time for the same steps, where its log says
    deterministic: bool
    failure: str = ""  # the second training failed (its RunFailed message)
    notes: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return self.mismatch is None and bool(self.compared) and not self.failure


def verify_run(store: RunStore, run_id: str, steps: int | None = None, *, deterministic: bool = False,
               threads: int | None = None) -> Verification:
    """Train the run's first `steps` steps (default: one epoch or DEFAULT_STEPS, whichever is fewer) again in this
    process and compare. `threads` forces a thread count other than the recorded one. ValueError for a run that
    never started training or a bad `steps`; what build_run and setup raise (DeviceError, DatasetUnavailable,
    LookupError) otherwise."""
    import torch

    record = store.get_run(run_id)
    if not record.started:
        raise ValueError(f"run {record.id} never started training: there is nothing to verify")
    starts = [event_from_dict(data) for data in store.logged(record.id, "run_started")]
    first = starts[0] if starts else event_from_dict(record.started)
    if steps is not None and steps < 1:
        raise ValueError(f"steps: got {steps}; train 1 or more again")
    if threads is not None and threads < 1:
        raise ValueError(f"threads: got {threads}; compute with 1 or more")
    view = store.view(record.id)
    origin = first.resumed_from_step  # a fork starts at its parent's step
    # never past the end of the training it first started (a resume may have trained it further since)
    count = min(steps or min(first.steps_per_epoch, DEFAULT_STEPS),
                max(first.steps_per_epoch * first.config.epochs - origin, 1))
    end = origin + count
    for later in starts[1:]:  # a resume with other settings (more epochs move a schedule): its steps are not these
        if later.config.replace(threads=0) != first.config.replace(threads=0):
            end = min(end, max(later.resumed_from_step, origin + 1))
    count = end - origin
    recorded = {step: loss for step, loss in view.steps.items() if origin < step <= end}
    recorded.update({e.step: e.train_loss for e in view.epochs if origin < e.step <= end})
    # a fork's times count its parent's too
    recorded_seconds = _recorded_seconds(store, record.id, end) if not origin else None

    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it reads this when it starts, so set it before
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic, was_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(deterministic or was_deterministic)
    try:
        run = build_run(store, record.id, from_start=True, progress_seconds=0.0, evaluate_at_end=False)
        run.config = run.config.replace(threads=threads or first.threads or run.config.threads)
        run.setup()  # the device, the data and the model: what the tolerance depends on
        tolerance = 0.0 if deterministic or run.device.type == "cpu" else CUDA_TOLERANCE
        compared, mismatch, started, failure, seconds = _train(run, end, recorded, tolerance)
    finally:  # this process as it was: verify may be called in one that goes on (a test, the app)
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(was_threads)
    notes = []
    if not recorded:
        notes.append(f"its log holds no loss within the first {count} steps; ask for more steps")
    return Verification(record.id, count, compared, tolerance, mismatch, receipt_diff(first, started), seconds,
                        recorded_seconds, deterministic, failure, notes)


def _recorded_seconds(store: RunStore, run_id: str, end: int) -> float | None:
    """The record's training time up to step `end`, from its first progress report or epoch end at or past it."""
    for data in store.logged(run_id, "batch_progress", "epoch_end"):
        if data.get("step", 0) >= end and data.get("event") == "batch_progress":
            return data.get("seconds") or None
        if data.get("step", 0) >= end:  # an epoch end: its own seconds are the epoch's, the first one's the run's
            return data.get("seconds") if data.get("epoch") == 1 else None
    return None


def _train(run: Any, end: int, recorded: dict[int, float], tolerance: float
           ) -> tuple[list[int], Mismatch | None, RunStarted, str, float]:
    """Train `run` to step `end` (or its end), comparing each recorded loss as its step is reached and stopping at
    the first that differs: the steps compared, that difference, the run's start, a failure's message, the time."""
    compared: list[int] = []
    mismatch: Mismatch | None = None
    started: RunStarted | None = None
    failure = ""
    events = run.events()
    began = time.perf_counter()
    try:
        for event in events:
            if isinstance(event, RunStarted):
                started, began = event, time.perf_counter()
            elif isinstance(event, RunFailed):
                failure = event.message
            elif isinstance(event, (BatchProgress, EpochEnded)):
                loss = event.loss if isinstance(event, BatchProgress) else event.train_loss
                if event.step in recorded and event.step not in compared:
                    compared.append(event.step)
                    if not _agree(recorded[event.step], loss, tolerance):
                        mismatch = Mismatch(event.step, recorded[event.step], loss)
                        break
                if event.step >= end:
                    break
    finally:
        events.close()
    return compared, mismatch, started, failure, time.perf_counter() - began


def _agree(recorded: float, now: float, tolerance: float) -> bool:
    if tolerance == 0.0:
        return recorded == now or (math.isnan(recorded) and math.isnan(now))
    return math.isclose(recorded, now, rel_tol=tolerance)


def receipt_diff(before: RunStarted, after: RunStarted) -> list[tuple[str, Any, Any]]:
    """(what, before, after) for every item of the two receipts (RunStarted.receipt) that differs; an item one of
    them never recorded (an older log) is not a difference."""
    old, new = before.receipt(), after.receipt()
    return [(key, old[key], new[key]) for key in old if key in new and old[key] != new[key]]
