"""What the store gives back of a run: its summary (a row of a listing), its whole record, what it left to go on
from, and whether this version can read the settings it was made with. A row this version cannot read at all (a
config or start that is not JSON, an unknown status) comes back marked damaged, never as an exception: one bad row
must not take the listing, or the app, down with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...engine.config import SETTINGS, ConfigError, TrainConfig
from ...engine.events import RunState


def status_of(state: RunState) -> str:
    """The status column: queued until the queue's runner starts it, running while a process owns the run
    (starting, training or paused: the liveness check watches it), else how its log ended."""
    return RunState.RUNNING.value if state.active else state.value


STATUSES = tuple(dict.fromkeys(status_of(state) for state in RunState))
STATES = frozenset(state.value for state in RunState)


class DamagedConfig(dict):
    """A config column that cannot be read as settings (not JSON, or not an object): empty, saying why. Every
    reader of a run's config gets it, so `why_unreadable` and `stored_config` refuse the run with that line."""

    def __init__(self, why: str):
        super().__init__()
        self.why = why


def config_column(text: Any) -> dict[str, Any]:
    """A run's stored config, or a DamagedConfig saying what is wrong with it."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return DamagedConfig("its config in the store is not JSON")
    return value if isinstance(value, dict) else DamagedConfig("its config in the store is not a JSON object")


def started_column(text: Any) -> tuple[dict[str, Any] | None, str]:
    """A run's stored RunStarted (None before its first), and what is wrong with it ('' when nothing is)."""
    if not text:
        return None, ""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None, "its start in the store is not JSON"
    return (value, "") if isinstance(value, dict) else (None, "its start in the store is not a JSON object")


def row_damage(status: str, *faults: str) -> str:
    """What is wrong with a runs row, in one line ('' for a sound one): an unknown status, then each fault."""
    found = [] if status in STATUSES else [f"its status {str(status)[:40]!r} is not one scratch-tui knows"]
    found += [fault for fault in faults if fault]
    return f"damaged: {'; '.join(found)}" if found else ""


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
    damaged: str = field(default="", kw_only=True)  # what is wrong with its row, in one line; '' for a sound one

    @property
    def state(self) -> RunState:
        """The run's state as every view of it says it (RunView's fold of its log)."""
        if self.status not in STATUSES:  # a damaged row: ended as far as anyone acting on it is concerned
            return RunState.FAILED
        if self.folded in STATES and status_of(RunState(self.folded)) == self.status:
            return RunState(self.folded)
        # no event yet, or a liveness check that could not write has found its process gone
        return RunState.PAUSED if self.paused and self.status == RunState.RUNNING else RunState(self.status)

    @property
    def status_text(self) -> str:
        """Its status as a listing shows it: its state, or `damaged` (the line `damaged` says why)."""
        return "damaged" if self.damaged else str(self.state)


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
        if self.damaged:
            raise ConfigError({"config": f"run {self.id}: {self.damaged}"})
        return stored_config(self.id, self.config)

    @property
    def unreadable(self) -> str:
        """Why this version of scratch-tui cannot open the run, in one line; '' when it can. A run made by
        another version (a model, dataset or setting this one has not got), or a damaged one, is listed, never
        opened."""
        return self.damaged or why_unreadable(self.config)


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
        if isinstance(config, DamagedConfig):  # empty: read as it is, it would be the defaults
            raise ConfigError({})
        return TrainConfig.from_dict(config)
    except ConfigError:
        raise ConfigError({"config": f"run {run_id}: {why_unreadable(config)}"}) from None


def why_unreadable(config: dict[str, Any]) -> str:
    """Why this version cannot read a stored config, said as its user would: the settings it has that this
    version has not, or the model or dataset it names, or the damage that keeps anyone from reading it; '' when it
    can read it."""
    if isinstance(config, DamagedConfig):
        return f"damaged: {config.why}"
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
