"""What the store gives back of a run: its summary (a row of a listing), its whole record, what it left to go on
from, and whether this version can read the settings it was made with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...engine.config import SETTINGS, ConfigError, TrainConfig
from ...engine.events import RunState


def status_of(state: RunState) -> str:
    """The status column: queued until the queue's runner starts it, running while a process owns the run
    (starting, training or paused: the liveness check watches it), else how its log ended."""
    return RunState.RUNNING.value if state.active else state.value


STATUSES = tuple(dict.fromkeys(status_of(state) for state in RunState))


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    model: str
    dataset: str
    status: str  # one of STATUSES
    epochs_done: int
    epochs: int
    best_val_acc: float | None
    test_acc: float | None
    duration_s: float  # training time; still counting while running
    started_at: float  # Unix time the run was created
    ended_at: float | None
    paused: bool
    sweep_id: str = field(default="", kw_only=True)  # '' for a run not queued as part of a sweep
    sweep_name: str = field(default="", kw_only=True)
    folded: str = field(default="", kw_only=True)  # the state its view folded the log into; '' before any event

    @property
    def state(self) -> RunState:
        """The run's state as every view of it says it (RunView's fold of its log)."""
        if self.folded and status_of(RunState(self.folded)) == self.status:
            return RunState(self.folded)
        # no event yet, or a liveness check that could not write has found its process gone
        return RunState.PAUSED if self.paused and self.status == RunState.RUNNING else RunState(self.status)


@dataclass(frozen=True)
class RunRecord(RunSummary):
    config: dict[str, Any]
    message: str  # why it stopped, failed or was interrupted
    device: str
    device_name: str
    torch_version: str
    pid: int | None
    host: str
    last_checkpoint: str | None
    best_checkpoint: str | None
    started: dict[str, Any] | None  # the latest RunStarted event (sizes, classes, parameters)
    updated_at: float  # last write: a heartbeat while it runs
    segment: int  # times it has started: 0 before its first event, 1, then one more per resume
    parent_id: str = field(default="", kw_only=True)  # a fork's parent run ('' for a run that is not a fork)
    parent_epoch: int | None = field(default=None, kw_only=True)  # the parent's epoch the fork starts from

    def train_config(self) -> TrainConfig:
        """The run's settings; ConfigError, in one line, where this version cannot read them (see `unreadable`)."""
        return stored_config(self.id, self.config)

    @property
    def unreadable(self) -> str:
        """Why this version of scratch-tui cannot open the run, in one line; '' when it can. A run made by
        another version (a model, dataset or setting this one has not got) is listed, never opened."""
        return why_unreadable(self.config)


@dataclass(frozen=True)
class RunLeft:
    """What a run that ended early left to go on from (the store's `left_behind`); the advice built from it is
    runs/advice.py's."""

    checkpoint: bool  # its last checkpoint is on disk, to resume from
    epochs: int  # the epochs it was set to train
    unevaluated: bool  # that checkpoint is of its last epoch and the run was never evaluated: only the test is left


def stored_config(run_id: str, config: dict[str, Any]) -> TrainConfig:
    """A recorded run's settings as this version reads them; ConfigError naming the run and what it does not know."""
    try:
        return TrainConfig.from_dict(config)
    except ConfigError:
        raise ConfigError({"config": f"run {run_id}: {why_unreadable(config)}"}) from None


def why_unreadable(config: dict[str, Any]) -> str:
    """Why this version cannot read a stored config, said as its user would: the settings it has that this
    version has not, or the model or dataset it names; '' when it can read it."""
    unknown = [name for name in config if name not in SETTINGS]
    if len(unknown) == 1:
        return f"setting {unknown[0]!r} is not known to this version of scratch-tui"
    if unknown:
        return f"settings {', '.join(map(repr, unknown))} are not known to this version of scratch-tui"
    for name, value in config.items():
        if SETTINGS[name].choices and value not in SETTINGS[name].choices:
            return f"{name} {value!r} is not known to this version of scratch-tui"
    try:
        TrainConfig.from_dict(config)
    except ConfigError as exc:  # a value this version's rules refuse
        return f"its settings do not hold in this version of scratch-tui: {exc}"
    return ""
