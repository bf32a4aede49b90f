"""What the UI remembers of the current run, built from engine events alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.events import (BatchProgress, BestWeightsRestored, CheckpointSaved, CommandIgnored, CommandReceived,
                             EarlyStopped,
                             EpochEnded, EvaluationEnded, Event, LearningRateChanged, ProcessStarted, RunFailed,
                             RunFinished, RunInterrupted, RunPaused, RunQueued, RunResumed, RunStarted, RunState,
                             RunStopped, TERMINAL_EVENTS, next_state)
from ..format import describe_checkpoint, describe_steering

# schedules that are a function of the step times a base lr: a set lr rescales the rest of them (engine/optim.py)
RESCALED_SCHEDULES = ("cosine", "onecycle")


@dataclass(frozen=True)
class ChangeMark:
    """A change to the run's course where the charts mark it: x in epochs (as the charts' x axis), at `step`.

    what: lr (set or a plateau cut), pause, resume, checkpoint (one asked for), early_stop, best (the epoch
    whose weights were restored for the evaluation)."""

    x: float
    what: str
    step: int


@dataclass
class RunHistory:
    started: RunStarted | None = None
    state: RunState = RunState.STARTING
    progress: BatchProgress | None = None
    epochs: list[EpochEnded] = field(default_factory=list)
    step_losses: list[tuple[float, float]] = field(default_factory=list)  # (fractional epoch, running loss)
    evaluation: EvaluationEnded | None = None
    lr: float | None = None
    samples_per_s: float = 0.0  # the latest pace, from a progress report or an epoch's end
    pending: str | None = None  # pause, resume or stop: received by the run, not yet acted on
    message: str = ""
    ended: Event | None = None  # the run's last event: finished, stopped, failed or interrupted
    queued: RunQueued | None = None  # how it was queued (its place then, its sweep), for a run the queue starts
    log: list[str] = field(default_factory=list)
    marks: list[ChangeMark] = field(default_factory=list)  # each change, for the charts' markers
    version: int = 0  # bumped on every change, so views redraw only when it moved
    # Training seconds as the run last reported them, and when that report arrived here: a view
    # opened an hour in shows the run's own time, with pauses left out, as the launching view does.
    _seconds: float = 0.0
    _seconds_at: float = 0.0
    # called after every change: the training screen redraws on changes instead of polling
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def is_active(self) -> bool:
        return self.state.active

    @property
    def elapsed(self) -> float:
        running = self.state == RunState.RUNNING and self._seconds_at
        return self._seconds + (time.monotonic() - self._seconds_at if running else 0.0)

    def apply(self, event: Event) -> None:
        self._apply(event)
        if self.on_change:
            self.on_change()

    def _apply(self, event: Event) -> None:
        self.version += 1
        before, self.state = self.state, next_state(self.state, event)
        if self.state != before or not self.is_active:
            self.pending = None  # the command the run received has taken effect
        if isinstance(event, (BatchProgress, RunPaused, RunResumed, *TERMINAL_EVENTS)):  # their run time so far
            self._seconds, self._seconds_at = event.seconds, time.monotonic()
        if isinstance(event, RunStarted):
            # A resumed run starts again from its checkpoint: keep only what came before it.
            kept = event.resumed_from_epoch
            self.epochs = [e for e in self.epochs if e.epoch <= kept]
            self.step_losses = [p for p in self.step_losses if p[0] <= kept]
            self.marks = [m for m in self.marks if m.step <= event.resumed_from_step]
            self.progress, self.evaluation, self.ended = None, None, None
            self.started = event
            self.lr = event.config.lr
            self._seconds_at = time.monotonic()
            if kept:
                self.log.append(f"Resumed run {event.run_id} after epoch {kept}")
        elif isinstance(event, RunQueued):
            self.queued = event
            sweep = f" (sweep {event.sweep_name or event.sweep_id})" if event.sweep_id else ""
            self.log.append(f"Queued at position {event.position}{sweep}")
        elif isinstance(event, CheckpointSaved):
            if event.reason != "epoch":  # one per epoch would drown the log
                self.log.append(describe_checkpoint(event))
            if event.reason == "request":
                self._mark("checkpoint", event.step)
        elif isinstance(event, BatchProgress):
            previous = self.progress
            if previous and previous.epoch == event.epoch and event.batch > previous.batch:
                # Two running means give the exact mean over the batches between them.
                loss = (event.loss * event.batch - previous.loss * previous.batch) / (event.batch - previous.batch)
            else:
                loss = event.loss
            self.progress, self.lr, self.samples_per_s = event, event.lr, event.samples_per_s
            self.step_losses.append((event.epoch - 1 + event.batch / event.batches, loss))
        elif isinstance(event, EpochEnded):
            self.epochs.append(event)
            self.lr, self.samples_per_s = event.lr, event.samples_per_s
        elif isinstance(event, EvaluationEnded):
            self.evaluation = event
        elif isinstance(event, LearningRateChanged):
            self.lr = event.lr
            line = describe_steering(event)
            self.log.append(line if "at step" in line else f"{line} at step {event.step}")
            schedule = self.started.config.schedule if self.started else ""
            if not event.reason and schedule in RESCALED_SCHEDULES:
                scale = f" (every later lr ×{event.lr / event.previous:.3g})" if event.previous else ""
                self.log.append(f"The {schedule} schedule is rescaled from here: it goes on from {event.lr:.3g}{scale}")
            self._mark("lr", event.step)
        elif isinstance(event, CommandIgnored):
            self.log.append(describe_steering(event))
        elif isinstance(event, (EarlyStopped, BestWeightsRestored)):
            self.log.append(describe_steering(event))
            if isinstance(event, EarlyStopped):
                self._mark("early_stop", event.step, event.epoch)
            else:  # at the epoch whose weights are evaluated
                self.marks.append(ChangeMark(float(event.epoch), "best", event.epoch * self.steps_per_epoch))
        elif isinstance(event, ProcessStarted):
            self.log.append(f"Training process started (pid {event.pid})" + (" to resume the run" if event.resuming
                                                                              else ""))
        elif isinstance(event, CommandReceived):
            if event.command in ("pause", "resume", "stop"):
                self.pending = event.command
            elif event.command == "checkpoint":
                self.log.append("Checkpoint requested")
        elif isinstance(event, RunPaused):
            self.log.append(f"Paused at step {event.step}")
            self._mark("pause", event.step, event.epoch - 1)
        elif isinstance(event, RunResumed):
            self.log.append(f"Resumed at step {event.step}")
            self._mark("resume", event.step, event.epoch - 1)
        elif isinstance(event, (RunFinished, RunStopped, RunFailed, RunInterrupted)):
            self.ended = event
            if isinstance(event, RunFinished):
                self.message = f"Finished {event.epochs_done} epochs in {event.seconds:.1f}s"
            elif isinstance(event, RunStopped):
                self.message = f"Stopped after {event.epochs_done} epoch(s)"
            elif isinstance(event, RunInterrupted):
                self.message = f"Interrupted after {event.epochs_done} epoch(s): {event.message}"
            else:
                self.message = f"Failed: {event.message}"
            self.log.append(self.message)

    def _mark(self, what: str, step: int, epoch: float | None = None) -> None:
        """A chart marker at `step` (x = steps / steps per epoch, as the per-step losses are placed); `epoch` where
        the run's steps per epoch are not known yet."""
        spe = self.steps_per_epoch
        x = step / spe if spe and step else float(epoch if epoch is not None else len(self.epochs))
        self.marks.append(ChangeMark(x, what, step))

    @property
    def steps_per_epoch(self) -> int:
        return self.started.steps_per_epoch if self.started else 0

    @property
    def total_epochs(self) -> int:
        return self.started.config.epochs if self.started else 0

    @property
    def eta(self) -> float | None:
        """Training seconds left at the run's own pace (pauses are not in samples/s), while it trains."""
        if not (self.started and self.is_active and self.samples_per_s > 0):
            return None
        _, done = self.fraction_done()
        samples = self.started.train_size * self.total_epochs * (1 - done)
        return samples / self.samples_per_s

    def fraction_done(self) -> tuple[float, float]:
        """(this epoch, whole run), each 0..1."""
        if not self.started:
            return 0.0, 0.0
        done_epochs = len(self.epochs)
        if self.state == RunState.FINISHED or done_epochs >= self.total_epochs:
            return 1.0, 1.0  # every epoch trained: what is left is the evaluation
        batch = self.progress.batch / self.progress.batches if self.progress and self.progress.epoch > done_epochs else 0.0
        return batch, (done_epochs + batch) / max(self.total_epochs, 1)


def downsample(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most `limit` points, averaging neighbours: a plot cannot show more than its width in columns."""
    if len(points) <= limit or limit <= 0:
        return list(points)
    size = len(points) / limit
    out = []
    for i in range(limit):
        chunk = points[int(i * size):max(int((i + 1) * size), int(i * size) + 1)]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out
