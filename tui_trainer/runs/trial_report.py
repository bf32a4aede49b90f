"""A study's trial, seen from the process that trains its run (runs/worker.py): each epoch's monitored metric
reported, the stop command sent when the pruner says so (with why: "pruned by asha at epoch N"), the end told to
the study, and a heartbeat while it trains, so a run that dies fails its trial and any box retries it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..engine.commands import Command
from ..engine.events import EpochEnded, EvaluationEnded, Event, RunFailed, RunFinished, RunStopped
from .store import RunStore
from .study import OpenStudy, direction, load, local_trials
from .study_storage import require_optuna

# How long an epoch's end waits for the run's command poller (runs/recording.py) to take the pruner's stop. The loop
# waits too, so the run trains no batch past its rung: a small model's epoch can be shorter than one poll.
STOP_TAKEN_S = 2.0


class TrialReporter:
    """In the process that trains a trial's run: each epoch's monitored metric reported to the trial, the stop
    command sent when the pruner says so, the end told to the study, and a heartbeat while it trains."""

    def __init__(self, store: RunStore, run_id: str, opened: OpenStudy, number: int):
        self.store, self.run_id, self.opened, self.number = store, run_id, opened, number
        self.trial = opened.study.get_trials(deepcopy=False)[number]
        self.best: float | None = None
        self.pruned_at: int | None = None
        self.run: Any = None
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def attach(self, run: Any) -> None:
        """The run, once built: its control takes the pruner's reason."""
        self.run = run

    def beat(self) -> None:
        """Beat from now until the end (before the run is built: loading data may outlast the grace period)."""
        storage = self.opened.study._storage
        storage.record_heartbeat(self.trial._trial_id)

        def beat() -> None:
            while not self._stop.wait(self.opened.spec.heartbeat):
                try:
                    storage.record_heartbeat(self.trial._trial_id)
                except Exception:  # a finished trial, a storage gone for a moment: the next beat tries again
                    pass

        self._beats = threading.Thread(target=beat, daemon=True, name="trial-heartbeat")
        self._beats.start()

    def __call__(self, event: Event) -> None:
        optuna = require_optuna()
        study, spec = self.opened.study, self.opened.spec
        if isinstance(event, EpochEnded):
            value = event.val_loss if spec.base.monitor == "val_loss" else event.val_acc
            if value is None:
                return
            if self.best is None or (value < self.best if direction(spec) == "minimize" else value > self.best):
                self.best = value
            trial = optuna.Trial(study, self.trial._trial_id)
            trial.report(value, event.epoch)
            if self.pruned_at is None and event.epoch < event.epochs and trial.should_prune():
                self.pruned_at = event.epoch
                if self.run is not None:
                    self.run.control.stop_reason = f"pruned by {spec.pruner} at epoch {event.epoch}"
                self.store.send(self.run_id, Command("stop"))  # the stop any viewer sends, logged as received
                self._wait_for_stop()
        elif isinstance(event, EvaluationEnded):
            study._storage.set_trial_user_attr(self.trial._trial_id, "test_acc", event.test_acc)
        elif isinstance(event, (RunFinished, RunStopped, RunFailed)):
            self._tell(event)

    def _wait_for_stop(self) -> None:
        if self.run is None:
            return
        deadline = time.monotonic() + STOP_TAKEN_S
        while not self.run.control.stop_requested and time.monotonic() < deadline:
            time.sleep(0.005)

    def _tell(self, event: Event) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        self.close()
        study = self.opened.study
        seconds = getattr(event, "seconds", 0.0)
        study._storage.set_trial_user_attr(self.trial._trial_id, "seconds", seconds)
        try:
            if isinstance(event, RunFinished) and self.best is not None:
                study.tell(self.number, self.best)
            elif isinstance(event, RunStopped) and self.pruned_at is not None:
                study.tell(self.number, state=TrialState.PRUNED)
            elif isinstance(event, RunStopped):
                # stopped by a signal (Slurm's preemption, a box shutting down) or by hand: left running and
                # silent, so a requeued worker resumes it (runs/slurm.py), or else it goes stale and any box
                # retries it once
                return
            else:  # failed: `sweep retry` trains it again
                why = getattr(event, "message", "") or getattr(event, "reason", "")
                study._storage.set_trial_user_attr(self.trial._trial_id, "ended", why)
                study.tell(self.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError, ValueError):
            pass  # failed meanwhile as stale by another box: its retry stands

    def close(self) -> None:
        self._stop.set()


def trial_reporter(store: RunStore, run_id: str) -> TrialReporter | None:
    """The reporter of a run that trains a study's trial; None for any other run (no Optuna imported)."""
    for _, link, number in local_trials(store, run_id):
        return TrialReporter(store, run_id, load(link), number)
    return None
