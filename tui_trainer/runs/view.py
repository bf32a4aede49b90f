"""RunView: the one fold of a run's log. Given a run's events in order, it says everything the project
says about the run: its state, its epochs (a resume drops what it trains again), its step losses, the
changes on its record, its training time with pauses left out, the ETA, the log lines, and its best
epoch by its monitor.

    view = RunView()
    for event in events:          # replayed from the store, or live as they come
        view.apply(event, at)     # at: when it was logged (Unix time); now, for a live event
    view.state, view.epochs, view.changes, view.log, view.elapsed, view.best_epoch

The store's summary row, the app, `attach`, `train`'s printer, `runs show`, export, replay and the sweep
table all read this fold, so every view of a run says the same. Each event type is applied by the
method named after its JSON name (`_run_started`, ...); its sentence for people is its own `describe()`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..engine.events import (BatchProgress, BestWeightsRestored, CheckpointSaved, CommandIgnored, CommandReceived,
                             Diagnosis, EarlyStopped, LayerStats, EpochEnded, EvaluationEnded, Event, ForkedFrom, LearningRateChanged,
                             ProcessStarted, ReplayPlanned, RunFailed, RunFinished, RunInterrupted, RunPaused,
                             RunQueued, RunUnpaused, RunStarted, RunState, RunStopped, next_state)
from ..engine.wording import arrow
from ..engine.monitor import Monitor
from ..format import duration

# schedules that are a function of the step times a base lr: a set lr rescales the rest of them (engine/optim.py)
RESCALED_SCHEDULES = ("cosine", "onecycle")
CHANGE_KINDS = ("lr", "pause", "checkpoint", "stop", "early_stop", "best_restored", "ignored")


@dataclass(frozen=True)
class Change:
    """What altered the run's course, at its step: `runs show`, export and `train --replay` read these."""

    step: int  # the run's optimizer steps when it happened
    epoch: int  # the epoch it happened in (1-based)
    what: str  # one of CHANGE_KINDS
    value: float | None = None  # lr: the new rate; pause: seconds paused (None while not resumed)
    previous: float | None = None  # lr: the rate before, when the log kept it
    by: str = ""  # lr: "set by you", "plateau" or "replayed from RUN_ID"
    detail: str = ""  # stop: its reason; early_stop, best_restored, ignored: their sentence

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """"step 1,234 (epoch 3): lr 0.003 → 0.0015 (set by you)"."""
        what, value = self.what, self.value
        if what == "lr":
            body = (f"lr {self.previous:.3g} {arrow()} {value:.3g}" if self.previous is not None
                    else f"lr set to {value:.3g}") + f" ({self.by})"
        elif what == "pause":
            body = "paused" + (f" for {duration(value)}" if value is not None else " (not resumed)")
        elif what == "checkpoint":
            body = "checkpoint"
        elif what == "stop":
            body = "stopped" + (f" ({self.detail})" if self.detail else "")
        else:  # early_stop, best_restored, ignored: their own sentence
            body = self.detail[:1].lower() + self.detail[1:]
        return f"step {self.step:,} (epoch {self.epoch}): {body}"


@dataclass(frozen=True)
class ChangeMark:
    """A change where the charts mark it: x in epochs (as the charts' x axis), at `step`.

    what: lr (set or a plateau cut), pause, resume, checkpoint (one asked for), early_stop, best (the epoch
    whose weights were restored for the evaluation)."""

    x: float
    what: str
    step: int


@dataclass
class RunView:
    started: RunStarted | None = None
    state: RunState = RunState.STARTING
    progress: BatchProgress | None = None
    epochs: list[EpochEnded] = field(default_factory=list)
    step_losses: list[tuple[float, float]] = field(default_factory=list)  # (fractional epoch, interval mean loss)
    reports: dict[int, BatchProgress] = field(default_factory=dict)  # step -> its progress report
    evaluation: EvaluationEnded | None = None
    lr: float | None = None  # the lr in force, as the log last said it
    samples_per_s: float = 0.0  # the latest pace, from a progress report or an epoch's end
    pending: str | None = None  # pause, resume or stop: received by the run, not yet acted on
    ended: Event | None = None  # the run's last ending: finished, stopped, failed or interrupted
    ended_at: float | None = None  # when that ending was logged
    queued: RunQueued | None = None  # how it was queued (its place then, its sweep)
    forked: ForkedFrom | None = None
    replay: ReplayPlanned | None = None
    log: list[str] = field(default_factory=list)  # every line for people, in log order
    marks: list[ChangeMark] = field(default_factory=list)  # each change, for the charts' markers
    changes: list[Change] = field(default_factory=list)
    layer_stats: list[LayerStats] = field(default_factory=list)  # the probe's measurements, in step order
    diagnoses: list[Diagnosis] = field(default_factory=list)  # the init check's verdict, then each flag once
    segments: int = 0  # RunStarted seen: 1, then one more per resume
    pack: str = ""  # "trained in pack P with …": kept when it resumes alone later
    pack_id: str = ""  # that pack's name
    last_checkpoint: str = ""
    best_checkpoint: str = ""
    seconds: float = 0.0  # training seconds as the run last reported them, pauses left out
    seconds_at: float | None = None  # when that report was logged, while the clock runs (not paused, not ended)
    version: int = 0  # bumped on every event, so views redraw only when it moved
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    monitor: Monitor | None = field(default=None, repr=False)  # by the run's --monitor: best epoch, patience
    _step: int = field(default=0, repr=False)
    _paused_at: float | None = field(default=None, repr=False)

    # -- the fold ------------------------------------------------------------------
    def apply(self, event: Event, at: float | None = None) -> None:
        """Take the run's next event; `at`: when it was logged (Unix time), now when not given."""
        at = self.clock() if at is None else at
        self.version += 1
        before, self.state = self.state, next_state(self.state, event)
        if self.state != before or not self.state.active:
            self.pending = None  # the command the run received has taken effect
        step = getattr(event, "step", None)
        if isinstance(step, int) and step > 0 and not isinstance(event, RunStarted):
            self._step = step
        if isinstance(event, (BatchProgress, RunPaused, RunUnpaused, RunFinished, RunStopped, RunFailed,
                              RunInterrupted)):  # their run time so far
            self.seconds = event.seconds
            self.seconds_at = at if self.state == RunState.RUNNING else None
        getattr(self, "_" + event.event_name)(event, at)
        if self.on_change:
            self.on_change()

    def _line(self, event: Event) -> None:
        if (line := event.describe()) is not None:
            self.log.append(line)

    def _run_started(self, e: RunStarted, at: float) -> None:
        # A resumed run starts again from its checkpoint: keep only what came before it.
        kept, kept_step = e.resumed_from_epoch, e.resumed_from_step
        self.epochs = [x for x in self.epochs if x.epoch <= kept]
        self.step_losses = [p for p in self.step_losses if p[0] <= kept]
        self.reports = {s: report for s, report in self.reports.items() if s <= kept_step}
        self.marks = [m for m in self.marks if m.step <= kept_step]
        self.changes = [c for c in self.changes if c.step <= kept_step]
        self.layer_stats = [x for x in self.layer_stats if x.step <= kept_step]
        self.diagnoses = [x for x in self.diagnoses if x.step <= kept_step]
        self.progress, self.evaluation, self.ended = None, None, None
        self.started, self.lr, self._step = e, e.config.lr, kept_step
        self.seconds_at = at
        self.segments += 1
        # a fork's own best starts with its own first epoch, as its checkpoint's monitor does
        self.monitor = Monitor(e.config.monitor)
        for epoch in self.epochs:
            self.monitor.update(epoch.epoch, epoch.val_loss, epoch.val_acc)
        # a fork's first start: ForkedFrom said it; a resume part-way through epoch 1 has kept steps, no epoch
        if (kept or kept_step) and not (self.forked and self.segments == 1):
            self.log.append(f"Resumed run {e.run_id} after epoch {kept}, step {kept_step:,}")
        if e.pack:
            self.pack, self.pack_id = e.pack_line(), e.pack
            self.log.append(self.pack[0].upper() + self.pack[1:])

    def _batch_progress(self, e: BatchProgress, at: float) -> None:
        previous = self.progress
        if previous and previous.epoch == e.epoch and e.batch > previous.batch:
            # Two running means give the exact mean over the batches between them.
            loss = (e.loss * e.batch - previous.loss * previous.batch) / (e.batch - previous.batch)
        else:
            loss = e.loss
        self.progress, self.lr, self.samples_per_s = e, e.lr, e.samples_per_s
        self.step_losses.append((e.epoch - 1 + e.batch / e.batches, loss))
        self.reports[e.step] = e

    def _epoch_end(self, e: EpochEnded, at: float) -> None:
        self.epochs.append(e)
        self.lr, self.samples_per_s = e.lr, e.samples_per_s
        if self.monitor is not None:
            self.monitor.update(e.epoch, e.val_loss, e.val_acc)
        self._line(e)

    def _eval_end(self, e: EvaluationEnded, at: float) -> None:
        self.evaluation = e
        self._line(e)

    def _lr_changed(self, e: LearningRateChanged, at: float) -> None:
        self.lr = e.lr
        self._line(e)
        schedule = self.started.config.schedule if self.started else ""
        if not e.reason and schedule in RESCALED_SCHEDULES:
            scale = f" (every later lr ×{e.lr / e.previous:.3g})" if e.previous else ""
            self.log.append(f"The {schedule} schedule is rescaled from here: it goes on from {e.lr:.3g}{scale}")
        self._mark("lr", e.step)
        replayed = self.replay is not None and [e.step, e.lr] in self.replay.lr_changes
        by = e.reason or (f"replayed from {self.replay.source_id}" if replayed else "set by you")
        # a set lr acts before the next batch: at an epoch's end, it is the next epoch's
        epoch = self._epoch_of(e.step if e.reason else e.step + 1)
        self.changes.append(Change(self._step, epoch, "lr", e.lr, e.previous, by))

    def _run_paused(self, e: RunPaused, at: float) -> None:
        if e.lr is not None:
            self.lr = e.lr
        self._paused_at = at
        self._line(e)
        self._mark("pause", e.step, e.epoch - 1)
        self.changes.append(Change(self._step, e.epoch, "pause"))

    def _run_resumed(self, e: RunUnpaused, at: float) -> None:
        if e.lr is not None:
            self.lr = e.lr
        self._line(e)
        self._mark("resume", e.step, e.epoch - 1)
        for i in range(len(self.changes) - 1, -1, -1):  # a resume completes its pause's change
            if self.changes[i].what == "pause":
                if self.changes[i].value is None:
                    seconds = at - self._paused_at if self._paused_at is not None else 0.0
                    self.changes[i] = dataclasses.replace(self.changes[i], value=max(0.0, seconds))
                break

    def _checkpoint_saved(self, e: CheckpointSaved, at: float) -> None:
        self.last_checkpoint = e.path
        self.best_checkpoint = e.best_path or self.best_checkpoint
        self._line(e)
        if e.reason == "request":
            self._mark("checkpoint", e.step)
            self.changes.append(Change(self._step, self._epoch_of(self._step), "checkpoint"))

    def _command_received(self, e: CommandReceived, at: float) -> None:
        if e.command in ("pause", "resume", "stop"):
            self.pending = e.command
        self._line(e)

    def _command_ignored(self, e: CommandIgnored, at: float) -> None:
        self._line(e)
        self.changes.append(Change(self._step, self._epoch_of(self._step), "ignored", detail=e.describe()))

    def _early_stopped(self, e: EarlyStopped, at: float) -> None:
        self._line(e)
        self._mark("early_stop", e.step, e.epoch)
        self.changes.append(Change(self._step, self._epoch_of(self._step), "early_stop", detail=e.describe()))

    def _best_restored(self, e: BestWeightsRestored, at: float) -> None:
        self._line(e)
        self.marks.append(ChangeMark(float(e.epoch), "best", e.epoch * self.steps_per_epoch))  # at the epoch evaluated
        self.changes.append(Change(self._step, self._epoch_of(self._step), "best_restored", detail=e.describe()))

    def _ended(self, e: Event, at: float) -> None:
        self.ended, self.ended_at = e, at
        self._line(e)

    def _run_stopped(self, e: RunStopped, at: float) -> None:
        self._ended(e, at)
        self.changes.append(Change(self._step, self._epoch_of(self._step), "stop", detail=e.reason))

    _run_finished = _run_failed = _run_interrupted = _ended

    def _run_queued(self, e: RunQueued, at: float) -> None:
        self.queued = e
        self._line(e)

    def _forked_from(self, e: ForkedFrom, at: float) -> None:
        self.forked = e
        self._line(e)

    def _replay_planned(self, e: ReplayPlanned, at: float) -> None:
        self.replay = e
        self._line(e)

    def _process_started(self, e: ProcessStarted, at: float) -> None:
        self._line(e)

    def _layer_stats(self, e: LayerStats, at: float) -> None:
        self.layer_stats.append(e)

    def _diagnosis(self, e: Diagnosis, at: float) -> None:
        self.diagnoses.append(e)
        self._line(e)

    def _mark(self, what: str, step: int, epoch: float | None = None) -> None:
        """A chart marker at `step` (x = steps / steps per epoch, as the per-step losses are placed); `epoch` where
        the run's steps per epoch are not known yet."""
        spe = self.steps_per_epoch
        x = step / spe if spe and step else float(epoch if epoch is not None else self.epochs_done)
        self.marks.append(ChangeMark(x, what, step))

    def _epoch_of(self, step: int) -> int:
        """The epoch step `step` (1-based, as the run counts: steps taken so far) belongs to: a change at an epoch's
        last step, as a plateau cut or an early stop is, is said of the epoch that just ended."""
        spe = self.steps_per_epoch
        if not spe:
            return 1
        return max(1, min((step - 1) // spe + 1, self.total_epochs or step))

    # -- what the views read -------------------------------------------------------
    @property
    def message(self) -> str:
        return (self.ended.describe() or "") if self.ended is not None else ""

    @property
    def is_active(self) -> bool:
        return self.state.active

    @property
    def elapsed(self) -> float:
        """The run's own training time now: the last report's, plus the time since while it trains."""
        running = self.state == RunState.RUNNING and self.seconds_at is not None
        return self.seconds + (max(0.0, self.clock() - self.seconds_at) if running else 0.0)

    @property
    def steps_per_epoch(self) -> int:
        return self.started.steps_per_epoch if self.started else 0

    @property
    def total_epochs(self) -> int:
        return self.started.config.epochs if self.started else 0

    @property
    def epochs_done(self) -> int:
        """Epochs trained, counting those a resumed run or a fork starts after (its log may not hold them)."""
        if isinstance(self.ended, (RunFinished, RunStopped, RunFailed, RunInterrupted)) and self.ended.epochs_done:
            return self.ended.epochs_done
        started_after = self.started.resumed_from_epoch if self.started else 0
        return max(self.epochs[-1].epoch if self.epochs else 0, started_after)

    @property
    def current_epoch(self) -> int:
        """The epoch the run trains now (1-based), or the last it trained once it has stopped."""
        done = self.epochs_done
        return min(done + 1, self.total_epochs) if self.is_active else done

    @property
    def best_epoch(self) -> int:
        """The best epoch by the run's monitor (0 before its first validated epoch)."""
        return self.monitor.best_epoch if self.monitor is not None else 0

    @property
    def best_val_acc(self) -> float | None:
        return max((e.val_acc for e in self.epochs if e.val_acc is not None), default=None)

    @property
    def eta(self) -> float | None:
        """Training seconds left at the run's own pace (pauses are not in samples/s), while it trains; a short
        last batch counts as the samples it holds."""
        s = self.started
        if not (s and self.is_active and self.samples_per_s > 0):
            return None
        p, done = self.progress, self.epochs_done
        if p is not None and p.epoch > done:  # part-way through epoch p.epoch
            left = s.train_size - min(p.batch * s.config.batch_size, s.train_size)
            return (left + (self.total_epochs - p.epoch) * s.train_size) / self.samples_per_s
        return max(0, self.total_epochs - done) * s.train_size / self.samples_per_s

    def fraction_done(self) -> tuple[float, float]:
        """(this epoch, whole run), each 0..1."""
        if not self.started:
            return 0.0, 0.0
        done, p = self.epochs_done, self.progress
        if self.state == RunState.FINISHED or done >= self.total_epochs:
            return 1.0, 1.0  # every epoch trained: what is left is the evaluation
        if p is not None and p.epoch > done:
            done, batch = p.epoch - 1, p.batch / p.batches
        else:
            batch = 0.0
        return batch, (done + batch) / max(self.total_epochs, 1)

    @property
    def steps(self) -> dict[int, float]:
        """step -> its epoch's running loss, as reported."""
        return {step: report.loss for step, report in self.reports.items()}

    def lr_changes(self) -> list[tuple[int, float]]:
        """(step, lr) of the lr changes made through the run's control (not the plateau's cuts, which the
        config repeats by itself), the last of each step: what `train --replay` applies."""
        wanted = {c.step: c.value for c in self.changes if c.what == "lr" and c.by != "plateau"}
        return sorted(wanted.items())


def view_of(timed_events: Iterable[tuple[float | None, Event]]) -> RunView:
    """The fold of a whole log of (when logged, event)."""
    view = RunView()
    for at, event in timed_events:
        view.apply(event, at)
    return view
