"""A run's changes: what altered its course (lr set or cut, pauses, requested checkpoints, the stop, an early
stop, restored best weights, commands that came too late), each at its step, read from its event log.

    log = ChangeLog()
    for at, event in store.events_at(run_id):   # or live: log.add(event, time.time())
        log.add(event, at)
    log.changes                                 # [Change(step=1234, epoch=3, what="lr", value=0.0015, ...)]

`runs show`, export and the app's chart markers all read this one derivation; `format_change` says each in a line.
The lr changes someone asked for are also what `train --replay` repeats (`lr_changes`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

from ..engine.events import (BestWeightsRestored, CheckpointSaved, CommandIgnored, EarlyStopped, Event,
                             LearningRateChanged, ReplayPlanned, RunPaused, RunResumed, RunStarted, RunStopped)
from ..format import arrow, describe_steering, duration

KINDS = ("lr", "pause", "checkpoint", "stop", "early_stop", "best_restored", "ignored")


@dataclass(frozen=True)
class Change:
    step: int  # the run's optimizer steps when it happened
    epoch: int  # the epoch it happened in (1-based)
    what: str  # one of KINDS
    value: float | None = None  # lr: the new rate; pause: seconds paused (None while not resumed)
    previous: float | None = None  # lr: the rate before, when the log kept it
    by: str = ""  # lr: "set by you", "plateau" or "replayed from RUN_ID"
    detail: str = ""  # stop: its reason; early_stop, best_restored, ignored: their sentence

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ChangeLog:
    """Folds a run's events, in log order, into its changes; feed it the whole log, or live events as they come."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.source = ""  # the run whose lr changes this one replays
        self._planned: set[tuple[int, float]] = set()
        self._step = 0
        self._steps_per_epoch = 0
        self._epochs = 0
        self._paused_at: float | None = None

    def add(self, event: Event, at: float | None = None) -> Change | None:
        """Take the next event (`at`: when it was logged, Unix time); returns the change it made, if any."""
        if isinstance(event, RunStarted):
            self._steps_per_epoch, self._epochs = event.steps_per_epoch, event.config.epochs
            # a resume trains again what came after its checkpoint: those changes did not last
            self.changes = [c for c in self.changes if c.step <= event.resumed_from_step]
            self._step = event.resumed_from_step
            return None
        if isinstance(event, ReplayPlanned):
            self.source = event.source_id
            self._planned = {(int(step), float(lr)) for step, lr in event.lr_changes}
            return None
        step = getattr(event, "step", None)
        if isinstance(step, int) and step > 0:
            self._step = step
        change = self._change(event, at)
        if change is not None and not isinstance(event, RunResumed):  # a resume completes its pause's change
            self.changes.append(change)
        return change

    def _change(self, event: Event, at: float | None) -> Change | None:
        step, epoch = self._step, self._epoch(self._step)
        if isinstance(event, LearningRateChanged):
            replayed = (event.step, event.lr) in self._planned
            by = event.reason or (f"replayed from {self.source}" if replayed else "set by you")
            # a set lr acts before the next batch: at an epoch's end, it is the next epoch's
            return Change(step, epoch if event.reason else self._epoch(step + 1), "lr", event.lr, event.previous, by)
        if isinstance(event, RunPaused):
            self._paused_at = at
            return Change(step, event.epoch, "pause")
        if isinstance(event, RunResumed):
            paused = next((i for i in range(len(self.changes) - 1, -1, -1) if self.changes[i].what == "pause"), None)
            if paused is not None and self.changes[paused].value is None:
                seconds = at - self._paused_at if at is not None and self._paused_at is not None else 0.0
                self.changes[paused] = dataclasses.replace(self.changes[paused], value=max(0.0, seconds))
                return self.changes[paused]
            return None
        if isinstance(event, CheckpointSaved) and event.reason == "request":
            return Change(step, epoch, "checkpoint")
        if isinstance(event, RunStopped):
            return Change(step, epoch, "stop", detail=event.reason)
        if isinstance(event, (EarlyStopped, BestWeightsRestored)):
            what = "early_stop" if isinstance(event, EarlyStopped) else "best_restored"
            return Change(step, epoch, what, detail=describe_steering(event) or "")
        if isinstance(event, CommandIgnored):
            return Change(step, epoch, "ignored", detail=describe_steering(event))
        return None

    def _epoch(self, step: int) -> int:
        """The epoch step `step` (1-based, as the run counts: steps taken so far) belongs to: a change at an epoch's
        last step, as a plateau cut or an early stop is, is said of the epoch that just ended."""
        if not self._steps_per_epoch:
            return 1
        return max(1, min((step - 1) // self._steps_per_epoch + 1, self._epochs or step))

    def lr_changes(self) -> list[tuple[int, float]]:
        """(step, lr) of the lr changes made through the run's control (not the plateau's cuts, which the
        config repeats by itself), the last of each step: what `train --replay` applies."""
        wanted = {c.step: c.value for c in self.changes if c.what == "lr" and c.by != "plateau"}
        return sorted(wanted.items())


def changes_of(timed_events: Iterable[tuple[float | None, Event]]) -> ChangeLog:
    log = ChangeLog()
    for at, event in timed_events:
        log.add(event, at)
    return log


def format_change(change: Change) -> str:
    """One recorded change as `runs show` lists it and the app's log shows it:
    "step 1,234 (epoch 3): lr 0.003 → 0.0015 (set by you)"."""
    what, value = change.what, change.value
    if what == "lr":
        body = (f"lr {change.previous:.3g} {arrow()} {value:.3g}" if change.previous is not None
                else f"lr set to {value:.3g}") + f" ({change.by})"
    elif what == "pause":
        body = "paused" + (f" for {duration(value)}" if value is not None else " (not resumed)")
    elif what == "checkpoint":
        body = "checkpoint"
    elif what == "stop":
        body = "stopped" + (f" ({change.detail})" if change.detail else "")
    else:  # early_stop, best_restored, ignored: their own sentence
        body = change.detail[:1].lower() + change.detail[1:]
    return f"step {change.step:,} (epoch {change.epoch}): {body}"
