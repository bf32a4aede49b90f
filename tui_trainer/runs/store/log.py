"""The log: a run's truth, every event its training process emitted (and the store's own RunInterrupted), in
order, numbered by `seq`.

Appending an event folds it through the run's RunView (runs/view.py, the one fold) and projects that view onto
the run's `runs` row in the same transaction, so listing runs needs no replay. Reading gives the events as they
were logged, or their fold. (The command queue, commands.py, adds to each append: an ending first answers the
commands still queued for the run.)
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import zlib
from typing import Any, Callable, Iterable

from ...engine.config import ConfigError, TrainConfig
from ...engine.events import EvaluationEnded, Event, RunStarted, RunState, ending_message, event_from_dict
from ..view import RunView, view_of
from .connection import RunDamaged, StoreError
from .ids import Ids, RunNotFound
from .processes import process_token
from .records import status_of, stored_config
from .schema import pack, unpack

VIEWS_KEPT = 16  # runs whose latest view a process keeps, so that appending to a log never folds it again


class Log(Ids):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._views: dict[str, tuple[int, RunView]] = {}  # run id -> (seq, its view up to that seq), see _view_before
        super().__init__(*args, **kwargs)

    def _rolled_back(self) -> None:
        self._views.clear()  # they may hold events that the rollback took back
        super()._rolled_back()

    # -- appending ----------------------------------------------------------------
    def append(self, run_id: str, event: Event) -> int:
        """Append one event to the run's log (its full id) and project it onto the runs row; returns its seq."""
        now = time.time()
        with self.transaction() as db:
            return self._append(db, run_id, event, now)

    def append_all(self, run_id: str, events: list[Event], wait_s: float | None = None) -> list[int]:
        """Append several events in order, in one transaction (all or none); `wait_s` bounds the wait for
        the write lock (StoreBusy after it). Returns their seqs."""
        now = time.time()
        with self.transaction(wait_s) as db:
            return [self._append(db, run_id, event, now) for event in events]

    def end_run(self, run_id: str, event: Event) -> None:
        """End a run whose loop cannot say so itself (a child that never started, a second Ctrl-C)."""
        self.append(run_id, event)

    def _append(self, db: sqlite3.Connection, run_id: str, event: Event, now: float) -> int:
        seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM run_events WHERE run_id = ?", (run_id,)).fetchone()[0]
        view = self._view_before(db, run_id, seq)
        view.apply(event, now)
        if isinstance(event, RunStarted):
            self._project_start(db, run_id, event)
        self._project(db, run_id, view, now)
        db.execute("INSERT INTO run_events (run_id, seq, name, data, at) VALUES (?, ?, ?, ?, ?)",
                   (run_id, seq, event.event_name, pack(event.to_dict()), now))
        self._views[run_id] = (seq, view)
        return seq

    def _view_before(self, db: sqlite3.Connection, run_id: str, seq: int) -> RunView:
        """The run's view up to (not with) `seq`: the one this process folded last, or the log folded again
        where another process has written since (or this one never read it)."""
        cached = self._views.get(run_id)
        if cached is not None and cached[0] == seq - 1:
            return cached[1]
        if len(self._views) >= VIEWS_KEPT:
            self._views.clear()
        rows = db.execute("SELECT seq, name, at, data FROM run_events WHERE run_id = ? AND seq < ? ORDER BY seq",
                          (run_id, seq))
        return _view_of(run_id, rows)

    def _project(self, db: sqlite3.Connection, run_id: str, view: RunView, now: float) -> None:
        """The runs row's summary, from the run's view: listing runs needs no fold. Any sign of life after an
        ending revives the row (a liveness check wrongly gave the run up), as it revives the view."""
        state = view.state
        cursor = db.execute(
            "UPDATE runs SET status = ?, state = ?, paused = ?, message = ?, ended_at = ?, epochs_done = ?, "
            "best_val_acc = ?, test_acc = ?, run_seconds = ?, active_since = ?, segment = ?, "
            "sweep_id = coalesce(?, sweep_id), sweep_name = coalesce(?, sweep_name), "
            "parent_id = coalesce(?, parent_id), parent_epoch = coalesce(?, parent_epoch), "
            "last_checkpoint = nullif(?, ''), best_checkpoint = nullif(?, ''), updated_at = ? WHERE id = ?",
            (status_of(state), state.value, state == RunState.PAUSED, ending_message(view.ended) if state.ended else "",
             view.ended_at if state.ended else None, view.epochs_done, view.best_val_acc,
             view.evaluation.test_acc if view.evaluation else None, view.seconds, view.seconds_at,
             view.segments, view.queued.sweep_id if view.queued else None,
             view.queued.sweep_name if view.queued else None, view.forked.parent_id if view.forked else None,
             view.forked.epoch if view.forked else None, self._stored_path(view.last_checkpoint),
             self._stored_path(view.best_checkpoint), now, run_id))
        if cursor.rowcount == 0:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")

    def _project_start(self, db: sqlite3.Connection, run_id: str, event: RunStarted) -> None:
        """What a segment's start says of where and with what it trains."""
        torch = sys.modules.get("torch")  # loaded by whoever trains; never imported here
        pid = os.getpid()
        config = event.config
        db.execute(
            "UPDATE runs SET config = ?, model = ?, dataset = ?, epochs = ?, device = ?, device_name = ?, "
            "torch_version = ?, pid = ?, pid_token = ?, host = ?, started = ? WHERE id = ?",
            (json.dumps(config.to_dict()), config.model, config.dataset, config.epochs, event.device,
             event.device_name, getattr(torch, "__version__", ""), pid, process_token(pid), self.host,
             json.dumps(event.to_dict()), run_id),
        )

    # -- reading ------------------------------------------------------------------
    def events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[tuple[int, Event]]:
        """(seq, event) of the run's log with seq > `after`, in order: replay from 0, tail from the last seq."""
        run_id = self.resolve(run_id)
        rows = self.query("SELECT seq, name, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                          (run_id, after, limit))
        return [(seq, _read(run_id, seq, name, data, _event)) for seq, name, data in rows]

    def view(self, run_id: str, only: tuple[str, ...] = ()) -> RunView:
        """The run's log folded into its view; `only`: just the events of these names, for a reader that needs
        no more (a table of epochs needs no progress reports, nor the evaluation's images)."""
        run_id = self.resolve(run_id)
        names = f" AND name IN ({', '.join('?' * len(only))})" if only else ""
        rows = self.query(f"SELECT seq, name, at, data FROM run_events WHERE run_id = ?{names} ORDER BY seq",
                          (run_id, *only))
        return _view_of(run_id, rows)

    def logged(self, run_id: str, *names: str) -> list[dict[str, Any]]:
        """The run's events of these names, in log order, as `to_dict()` gives them."""
        run_id = self.resolve(run_id)
        marks = ", ".join("?" * len(names))
        return [_read(run_id, seq, name, data, lambda _, d: d) for seq, name, data in self.query(
            f"SELECT seq, name, data FROM run_events WHERE run_id = ? AND name IN ({marks}) ORDER BY seq",
            (run_id, *names))]

    def last_seq(self, run_id: str) -> int:
        return self.query("SELECT coalesce(max(seq), 0) FROM run_events WHERE run_id = ?", (run_id,))[0][0]

    def epochs(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The run's epochs as `EpochEnded.to_dict()` gives them, with epoch > `after`; a resume replaces
        what it trained again."""
        view = self.view(run_id, only=("run_started", "epoch_end"))
        return [e.to_dict() for e in view.epochs if e.epoch > after]

    def steps(self, run_id: str, after: int = 0) -> list[tuple[int, float]]:
        """(step, running loss of its epoch) of the progress reports with step > `after`, in order."""
        steps = self.view(run_id, only=("run_started", "batch_progress")).steps
        return sorted((s, loss) for s, loss in steps.items() if s > after)

    def evaluation(self, run_id: str) -> EvaluationEnded | None:
        """The evaluation of the run's latest segment (samples with images), or None."""
        return self.view(run_id, only=("run_started", "eval_end")).evaluation


def _read(run_id: str, seq: int, name: str, blob: bytes, as_read: Callable[[str, dict[str, Any]], Any]) -> Any:
    """One logged event, unpacked and read by `as_read(run_id, data)`; RunDamaged, naming the run and the event,
    where its blob is not what was written (a torn or tampered row): the run is refused, the store goes on."""
    try:
        data = unpack(blob)
        if not isinstance(data, dict):
            raise ValueError("not an event")
        return as_read(run_id, data)
    except (ConfigError, StoreError):  # a config of another version, said as such
        raise
    except (zlib.error, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise RunDamaged(f"run {run_id} is damaged: event {seq} ({str(name)[:40]}) of its log cannot be read "
                         f"({detail}); the other runs are unaffected; `scratch-tui runs delete {run_id}` removes "
                         f"it") from None


def _view_of(run_id: str, rows: Iterable[tuple[int, str, float, bytes]]) -> RunView:
    """The fold of (seq, name, at, data) rows of the run's log."""
    return view_of((at, _read(run_id, seq, name, data, lambda _, d: _folded(d))) for seq, name, at, data in rows)


def _folded(data: dict[str, Any]) -> Event:
    """A logged event as the fold reads it. A run of another version (a model or setting this one does not
    know) still has epochs, times and an ending to show: its RunStarted keeps the numbers the fold reads."""
    try:
        return event_from_dict(data)
    except ConfigError:
        config = data["config"]
        numbers = {k: config[k] for k in ("epochs", "lr", "batch_size", "monitor", "schedule") if k in config}
        try:
            readable = TrainConfig.from_dict(numbers)
        except (ConfigError, TypeError, ValueError):
            readable = TrainConfig()
        return event_from_dict({**data, "config": readable.to_dict()})


def _event(run_id: str, data: dict[str, Any]) -> Event:
    """A logged event; a RunStarted whose config this version cannot read is the run's one-line ConfigError."""
    if data.get("event") == RunStarted.event_name and isinstance(data.get("config"), dict):
        stored_config(run_id, data["config"])
    return event_from_dict(data)
