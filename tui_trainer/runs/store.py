"""The run store: every run and its event log, in one SQLite file.

A run's truth is its log: every event the training process emitted (and the store's own
RunInterrupted), in order, numbered by `seq`. The `runs` row is a projection of that log,
updated in the same transaction as each append, so listing runs needs no replay.

One file (`<runs dir>/runs.sqlite3`) shared by every process that trains or looks:
WAL lets readers go on while a run writes, every write is one short IMMEDIATE
transaction, and the busy timeout makes concurrent writers wait their turn instead
of failing. This module does not import torch, so listing runs stays quick.

Looking never needs to write: a runs dir that is read-only (a read-only mount, another user's
folder) is opened read-only, and a full disk or a store locked by another process only stops
what writes. Checkpoint paths are kept relative to the runs dir, so a moved runs dir still works.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..engine.commands import Command
from ..engine.config import SETTINGS, ConfigError, TrainConfig
from ..engine.events import (ENDING_STATE, CommandIgnored, EvaluationEnded, Event, ProcessStarted, RunInterrupted,
                             RunQueued, RunStarted, RunState, ending_message, event_from_dict)
from .processes import process_alive, process_token
from .schema import MIGRATIONS, pack, unpack
from .view import RunView, view_of

STORE_FILE = "runs.sqlite3"
BUSY_TIMEOUT_S = 10.0
MARK_WAIT_S = 0.5  # how long marking dead runs waits for the write lock before leaving it to the next look
VIEWS_KEPT = 16  # runs whose latest view a process keeps, so that appending to a log never folds it again


def status_of(state: RunState) -> str:
    """The status column: queued until the queue's runner starts it, running while a process owns the run
    (starting, training or paused: the liveness check watches it), else how its log ended."""
    return RunState.RUNNING.value if state.active else state.value


STATUSES = tuple(dict.fromkeys(status_of(state) for state in RunState))
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # ids become folder names



class StoreError(RuntimeError):
    """The database cannot be opened or written; the message names the file and what to do."""


class StoreBusy(StoreError):
    """Another process has held the store's write lock for longer than the busy timeout: try again later."""


class StoreFull(StoreError):
    """The disk holding the store is full."""


class RunNotFound(LookupError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such run"


def default_runs_dir() -> Path:
    """Where runs live: $SCRATCH_TUI_HOME, else the user data dir (~/.local/share/scratch-tui on Linux)."""
    env = os.environ.get("SCRATCH_TUI_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("scratch-tui"))


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


_SUMMARY_COLUMNS = ("id, name, model, dataset, status, epochs_done, epochs, best_val_acc, test_acc, run_seconds, "
                    "active_since, created_at, ended_at, paused, sweep_id, sweep_name, state")
_RECORD_COLUMNS = (_SUMMARY_COLUMNS + ", config, message, device, device_name, torch_version, pid, host, "
                   "last_checkpoint, best_checkpoint, started, updated_at, segment, parent_id, parent_epoch")


_SUMMARY_WIDTH = 17  # columns of _SUMMARY_COLUMNS


def _summary_values(row: tuple, now: float) -> tuple[list[Any], dict[str, str]]:
    """The positional and keyword arguments of RunSummary from a row of _SUMMARY_COLUMNS."""
    (run_id, name, model, dataset, status, epochs_done, epochs, best, test, run_seconds, active_since, created,
     ended, paused, sweep_id, sweep_name, folded) = row[:_SUMMARY_WIDTH]
    duration = run_seconds + (max(0.0, now - active_since) if status == "running" and active_since else 0.0)
    return ([run_id, name, model, dataset, status, epochs_done, epochs, best, test, duration, created, ended,
             bool(paused)], {"sweep_id": sweep_id, "sweep_name": sweep_name, "folded": folded})


def _safe(run_id: str) -> str:
    # A tampered database must not turn `delete` into removing folders outside the runs dir.
    if not _SAFE_ID.fullmatch(run_id):
        raise RunNotFound(f"run id {run_id!r} is not a valid id; `scratch-tui runs` lists them")
    return run_id


def _disk_full(folder: Path) -> bool:
    # SQLite reports some failed writes as a plain I/O error; an empty disk is then the reason
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


class RunStore:
    """Runs on disk. Thread-safe: one connection, one lock; every process opens its own store."""

    def __init__(self, path: str | Path | None = None, busy_timeout_s: float | None = None):
        path = Path(path).expanduser() if path is not None else default_runs_dir()
        path = Path(os.path.abspath(path))  # a relative --runs-dir means the same folder after a chdir
        if path.suffix == ".sqlite3":
            self.root, self.db_path = path.parent, path
        else:
            self.root, self.db_path = path, path / STORE_FILE
        self.busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._gone_unrecorded: dict[str, str] = {}  # runs found dead that could not be marked: id -> message
        self._views: dict[str, tuple[int, RunView]] = {}  # run id -> (seq, its view up to that seq), see _view_before
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not self.root.is_dir():
                raise StoreError(f"cannot create the runs folder {self.root} ({exc.strerror}); pass --runs-dir or "
                                 f"set SCRATCH_TUI_HOME to a writable folder") from None
        # Looking must work where writing cannot: a read-only mount, a folder of another user.
        self.read_only = not (os.access(self.root, os.W_OK) and
                              (not self.db_path.exists() or os.access(self.db_path, os.W_OK)))
        if self.read_only:
            self._db = self._open_read_only()
            self.mark_interrupted()  # shows the dead as interrupted, writing nothing
            return
        try:
            self._db = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._failure(exc, "open") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL syncs at checkpoints only: a power cut may lose the last writes but
            # never corrupts the file, and a run writes several times a second.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._failure(exc, "open") from None
        except StoreError:
            self._db.close()
            raise
        self.mark_interrupted()

    def _open_read_only(self) -> sqlite3.Connection:
        """The store opened for reading only; nothing (no marking, no upgrade) is written."""
        if not self.db_path.is_file():
            raise StoreError(f"{self.root} is read-only and holds no run store ({STORE_FILE}); pass --runs-dir or "
                             f"set SCRATCH_TUI_HOME to a folder with runs")
        uri = "file:" + urllib.request.pathname2url(str(self.db_path))
        db = None
        # mode=ro reads a WAL store alongside its writers; where its -shm file cannot be made (the
        # folder itself is read-only, so nobody can write it either) immutable=1 reads the file as it is.
        for options in ("?mode=ro", "?immutable=1"):
            try:
                db = sqlite3.connect(uri + options, uri=True, timeout=self.busy_timeout_s, isolation_level=None,
                                     check_same_thread=False)
                version = db.execute("PRAGMA user_version").fetchone()[0]
                break
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                    db = None
                failure = exc
        else:
            raise self._failure(failure, "open") from None
        target = len(MIGRATIONS)
        if version != target:
            db.close()
            if version > target:
                raise StoreError(f"{self.db_path} was written by a newer scratch-tui (schema {version}, this one "
                                 f"knows {target}); upgrade scratch-tui or pass another --runs-dir")
            raise StoreError(f"{self.db_path} was written by an older scratch-tui (schema {version}) and needs an "
                             f"upgrade to schema {target}, which its read-only folder does not allow; open it once "
                             f"where it is writable (or copy the folder)")
        return db

    def _failure(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """What went wrong with the store, said as what it is: locked, full, read-only or damaged."""
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary code of an extended one
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreBusy(f"the run store {self.db_path} is locked: another process has held its write lock for "
                             f"over {self.busy_timeout_s:g}s; try again once it lets go")
        if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(self.root)):
            return StoreFull(f"no space left on the disk holding {self.root}: free some space, then try again")
        if code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and self.read_only):
            return StoreError(f"the run store {self.db_path} is read-only ({exc}); runs can be listed and shown "
                              f"but not changed there; pass --runs-dir to record elsewhere")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return StoreError(f"{self.db_path} is not a usable run store ({exc}); move it aside or pass --runs-dir")
        return StoreError(f"cannot {doing} the run store {self.db_path} ({exc})")

    # -- plumbing ---------------------------------------------------------------
    def _migrate(self) -> None:
        target = len(MIGRATIONS)
        if self._db.execute("PRAGMA user_version").fetchone()[0] == target:
            return
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == target:  # another process made or upgraded the store while this one waited for the lock
                return
            if version > target:
                raise StoreError(f"{self.db_path} was written by a newer scratch-tui (schema {version}, this one "
                                 f"knows {target}); upgrade scratch-tui or pass another --runs-dir")
            if version:  # an older release's store: its tables change under any of its runs still training
                training = [(run_id, pid) for run_id, pid, token in db.execute(
                    "SELECT id, pid, pid_token FROM runs WHERE status = 'running' AND host = ?", (self.host,))
                    if process_alive(pid, token)]
                if training:
                    run_id, pid = training[0]
                    raise StoreError(f"run {run_id} is still training under an older scratch-tui (pid {pid}); "
                                     f"let it finish or stop it, then open {self.db_path} again")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    statement(db) if callable(statement) else db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def _write(self, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction; `wait_s` replaces the busy timeout for it (a retry that must not stall)."""
        with self._lock:
            if wait_s is not None:
                self._db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._views.clear()  # they may hold events that the rollback took back
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._views.clear()
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._failure(exc, "write") from None
            finally:
                if wait_s is not None:
                    self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._failure(exc, "read") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / _safe(run_id)

    def _stored_path(self, path: str) -> str:
        """How a checkpoint path is kept: relative to the runs dir when inside it, so the folder can move."""
        if not path:
            return path
        try:
            return Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return path

    def _found_path(self, run_id: str, stored: str | None) -> str | None:
        """Where a kept checkpoint path points now: relative ones are under the runs dir; an absolute one
        (kept by an older release) that is gone is looked for in the run's folder under this runs dir."""
        if not stored:
            return stored
        path = Path(stored)
        if not path.is_absolute():
            path = self.root / path
        if path.exists() or not _SAFE_ID.fullmatch(run_id):
            return str(path)
        moved = self.checkpoint_dir(run_id) / path.name
        return str(moved) if moved.exists() else str(path)

    def log_path(self, run_id: str) -> Path:
        """Where a detached run's output goes."""
        return self.root / "logs" / f"{_safe(run_id)}.log"

    # -- ids --------------------------------------------------------------------
    def resolve(self, run_id: str) -> str:
        """The full id for an id or a unique prefix of one; RunNotFound otherwise."""
        text = str(run_id).strip().lower()
        rows = [r[0] for r in self._query("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                                          (len(text), text))] if text else []
        if text in rows:
            return text
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
        raise RunNotFound(f"run id {run_id} is ambiguous ({', '.join(rows[:5])}{', ...' if len(rows) > 5 else ''}); "
                          f"type more of it")

    def create_run(self, config: TrainConfig, name: str = "") -> str:
        """A new run row, status running, owned by this process until a recorder takes it over."""
        now, pid = time.time(), os.getpid()
        with self._write() as db:
            run_id = secrets.token_hex(4)
            while db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                run_id = secrets.token_hex(4)
            db.execute(
                "INSERT INTO runs (id, name, config, model, dataset, status, state, created_at, updated_at, epochs, "
                "pid, pid_token, host) VALUES (?, ?, ?, ?, ?, 'running', 'starting', ?, ?, ?, ?, ?, ?)",
                (run_id, name or config.name, json.dumps(config.to_dict()), config.model, config.dataset, now, now,
                 config.epochs, pid, process_token(pid), self.host),
            )
        return run_id

    def create_queued(self, entries: list[tuple[TrainConfig, str]], sweep_id: str = "",
                      sweep_name: str = "") -> list[str]:
        """New queued runs, one per (config, name), at the end of the queue in that order, all in one
        transaction (all or none); each log starts with RunQueued. Returns their ids."""
        now = time.time()
        ids: list[str] = []
        with self._write() as db:
            waiting = db.execute("SELECT count(*) FROM runs WHERE status = 'queued'").fetchone()[0]
            last = db.execute("SELECT coalesce(max(queue_order), 0) FROM runs").fetchone()[0]
            for i, (config, name) in enumerate(entries, 1):
                run_id = secrets.token_hex(4)
                while db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() or run_id in ids:
                    run_id = secrets.token_hex(4)
                db.execute(
                    "INSERT INTO runs (id, name, config, model, dataset, status, created_at, updated_at, epochs, host, "
                    "queue_order) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (run_id, name or config.name, json.dumps(config.to_dict()), config.model, config.dataset, now, now,
                     config.epochs, self.host, last + i))
                self._append(db, run_id, RunQueued(position=waiting + i, sweep_id=sweep_id, sweep_name=sweep_name),
                             now)
                ids.append(run_id)
        return ids

    def transaction(self) -> Any:
        """One IMMEDIATE write transaction (a context manager giving the connection), for the parts of
        runs/ that keep state of their own in this file: the queue."""
        return self._write()

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._query(sql, args)

    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or with None, clear) a setting that every process using this store shares."""
        with self._write() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def claim(self, run_id: str, pid: int, also: int | None = None) -> bool:
        """Make `pid` the one process that trains the run, in one statement: False while another live
        process (other than `also`, the parent of a background resume) trains it, or while it waits in the
        queue (its runner starts it)."""
        self.mark_interrupted()
        with self._write() as db:
            cursor = db.execute("UPDATE runs SET status = 'running', message = '', ended_at = NULL, pid = ?, "
                                "pid_token = ?, host = ? WHERE id = ? AND status != 'queued' AND "
                                "(status != 'running' OR pid IN (?, ?))",
                                (pid, process_token(pid), self.host, run_id, pid, also if also is not None else pid))
        return cursor.rowcount == 1

    def take_queued(self, run_id: str, pid: int, device: str | None = None) -> bool:
        """Claim a queued run for the process that starts it (the queue's runner), in one statement: False
        once it is no longer queued (cancelled, or taken by another). `device` pins where it trains."""
        with self._write() as db:
            cursor = db.execute("UPDATE runs SET status = 'running', message = '', pid = ?, pid_token = ?, host = ?, "
                                "config = CASE WHEN ? IS NULL THEN config ELSE json_set(config, '$.device', ?) END "
                                "WHERE id = ? AND status = 'queued'",
                                (pid, process_token(pid), self.host, device, device, run_id))
        return cursor.rowcount == 1

    def set_process(self, run_id: str, pid: int, resuming: bool = False) -> None:
        """Hand a run to the process that trains it (a detached child), so liveness checks watch that
        one, and log ProcessStarted: from now on the run is running, even before its first event."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute("UPDATE runs SET pid = ?, pid_token = ?, host = ?, status = 'running', message = '', "
                                "ended_at = NULL WHERE id = ?", (pid, process_token(pid), self.host, run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
            self._append(db, run_id, ProcessStarted(pid=pid, resuming=resuming), now)

    def _update(self, run_id: str, assignments: str, args: tuple) -> None:
        with self._write() as db:
            cursor = db.execute(f"UPDATE runs SET {assignments}, updated_at = ? WHERE id = ?",
                                (*args, time.time(), run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")

    # -- the log ----------------------------------------------------------------
    def record(self, run_id: str, event: Event) -> int:
        """Append one event to the run's log (its full id) and project it onto the runs row; returns its seq."""
        now = time.time()
        with self._write() as db:
            return self._append(db, run_id, event, now)

    def record_all(self, run_id: str, events: list[Event], wait_s: float | None = None) -> list[int]:
        """Append several events in order, in one transaction (all or none); `wait_s` bounds the wait for
        the write lock (StoreBusy after it). Returns their seqs."""
        now = time.time()
        with self._write(wait_s) as db:
            return [self._append(db, run_id, event, now) for event in events]

    def _append(self, db: sqlite3.Connection, run_id: str, event: Event, now: float) -> int:
        if type(event) in ENDING_STATE:
            self._answer_queued(db, run_id, event, now)
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
        rows = db.execute("SELECT at, data FROM run_events WHERE run_id = ? AND seq < ? ORDER BY seq", (run_id, seq))
        return view_of((at, _folded(unpack(data))) for at, data in rows)

    def _project(self, db: sqlite3.Connection, run_id: str, view: RunView, now: float) -> None:
        """The runs row's summary, from the run's view: listing runs needs no fold. Any sign of life after an
        ending revives the row (a liveness check wrongly gave the run up), as it revives the view."""
        state = view.state
        cursor = db.execute(
            "UPDATE runs SET status = ?, state = ?, paused = ?, message = ?, ended_at = ?, epochs_done = ?, "
            "best_val_acc = ?, test_acc = ?, run_seconds = ?, active_since = ?, segment = ?, sweep_id = coalesce(?, sweep_id), "
            "sweep_name = coalesce(?, sweep_name), parent_id = coalesce(?, parent_id), "
            "parent_epoch = coalesce(?, parent_epoch), last_checkpoint = nullif(?, ''), "
            "best_checkpoint = nullif(?, ''), updated_at = ? WHERE id = ?",
            (status_of(state), state.value, state == RunState.PAUSED, ending_message(view.ended) if state.ended else "",
             view.ended_at if state.ended else None, view.epochs_done, view.best_val_acc,
             view.evaluation.test_acc if view.evaluation else None, view.seconds, view.seconds_at,
             view.segments, view.queued.sweep_id if view.queued else None,
             view.queued.sweep_name if view.queued else None, view.forked.parent_id if view.forked else None,
             view.forked.epoch if view.forked else None, self._stored_path(view.last_checkpoint),
             self._stored_path(view.best_checkpoint), now, run_id))
        if cursor.rowcount == 0:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")

    def _answer_queued(self, db: sqlite3.Connection, run_id: str, ending: Event, now: float) -> None:
        """Commands still queued when the run ends will never reach it: each is answered in the log, just
        before the ending (followers stop at the ending), instead of vanishing."""
        queued = db.execute("SELECT name, value FROM commands WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        db.execute("DELETE FROM commands WHERE run_id = ?", (run_id,))
        state = ENDING_STATE[type(ending)].value
        for name, value in queued:
            self._append(db, run_id, CommandIgnored(name, value, f"the run had {state} before it arrived"), now)

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

    def end_run(self, run_id: str, event: Event) -> None:
        """End a run whose loop cannot say so itself (a child that never started, a second Ctrl-C)."""
        self.record(run_id, event)

    def mark_interrupted(self) -> list[str]:
        """Runs of this host whose process is gone without finishing end with RunInterrupted; returns their ids.

        Best effort: where the store cannot be written (read-only, full, locked) they are only shown as
        interrupted, and recorded so by the next process that can write."""
        rows = self._query("SELECT id, pid, pid_token FROM runs WHERE status = 'running' AND host = ?", (self.host,))
        self._gone_unrecorded = {}
        gone = []
        for run_id, pid, token in rows:
            if process_alive(pid, token):
                continue
            message = f"the training process (pid {pid}) ended without finishing; {self.resume_advice(run_id)}"
            if self.read_only:
                self._gone_unrecorded[run_id] = message
                continue
            try:
                # a short wait: tidying up must not keep a listing waiting on another process's lock
                with self._write(wait_s=min(MARK_WAIT_S, self.busy_timeout_s)) as db:
                    row = db.execute("SELECT epochs_done, run_seconds + max(0, updated_at - coalesce(active_since, "
                                     "updated_at)), updated_at FROM runs WHERE id = ? AND status = 'running' AND "
                                     "pid IS ?", (run_id, pid)).fetchone()
                    if row is None:
                        continue  # another viewer got there first, or the run was resumed meanwhile
                    done, seconds, last_seen = row
                    self._append(db, run_id, RunInterrupted(message=message, epochs_done=done, seconds=seconds),
                                 last_seen)
            except StoreError:
                self._gone_unrecorded[run_id] = message  # a reader must not fail for what it could not tidy
                continue
            gone.append(run_id)
        return gone

    def resume_advice(self, run_id: str) -> str:
        """What to do with a run that ended early, by what it left: resume it from its checkpoint, finish
        it (its epochs are done but it was never evaluated), or start it again (it has no checkpoint)."""
        try:
            rows = self._query("SELECT last_checkpoint, epochs, test_acc FROM runs WHERE id = ?", (run_id,))
            saved = self._query("SELECT data FROM run_events WHERE run_id = ? AND name = 'checkpoint_saved' "
                                "ORDER BY seq DESC LIMIT 1", (run_id,))
        except StoreError:
            return f"`scratch-tui runs show {run_id}` says what it left"
        last = self._found_path(run_id, rows[0][0]) if rows else None
        if not last or not Path(last).exists():
            return (f"it saved no checkpoint to resume from; `scratch-tui runs show {run_id}` gives the command "
                    f"that starts it again")
        checkpoint = unpack(saved[0][0]) if saved else {}
        epochs, test_acc = rows[0][1], rows[0][2]
        if checkpoint.get("reason") == "epoch" and checkpoint.get("epoch", 0) >= epochs and test_acc is None:
            return (f"it trained all {epochs} epochs but was not evaluated; `scratch-tui train --resume {run_id}` "
                    f"evaluates it and marks it finished")
        return f"`scratch-tui train --resume {run_id}` continues from its last checkpoint"

    # -- reading ------------------------------------------------------------------
    def list_runs(self, sweep: str | None = None) -> list[RunSummary]:
        """Every run, newest first; with `sweep`, those of the sweep whose id is or starts with it."""
        self.mark_interrupted()
        now = time.time()
        where, args = ("WHERE sweep_id != '' AND substr(sweep_id, 1, ?) = ?", (len(sweep), sweep.strip().lower())) \
            if sweep else ("", ())
        rows = self._query(f"SELECT {_SUMMARY_COLUMNS} FROM runs {where} ORDER BY created_at DESC, id", args)
        summaries = []
        for row in rows:
            values, keywords = _summary_values(self._as_seen(row), now)
            summaries.append(RunSummary(*values, **keywords))
        return summaries

    def _as_seen(self, row: tuple) -> tuple:
        """A row with a run found dead but not yet marked (the store could not be written) shown as interrupted."""
        if row[0] not in self._gone_unrecorded or row[4] != "running":
            return row
        return (*row[:4], RunState.INTERRUPTED.value, *row[5:])

    def get_run(self, run_id: str) -> RunRecord:
        run_id = self.resolve(run_id)
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
        row = self._as_seen(rows[0])
        (config, message, device, device_name, torch_version, pid, host, last, best, started, updated,
         segment, parent_id, parent_epoch) = row[_SUMMARY_WIDTH:]
        message = self._gone_unrecorded.get(run_id, message) if row[4] == "interrupted" else message
        values, keywords = _summary_values(row, time.time())
        return RunRecord(*values, json.loads(config), message, device, device_name, torch_version, pid, host,
                         self._found_path(run_id, last), self._found_path(run_id, best),
                         json.loads(started) if started else None, updated, segment, parent_id=parent_id,
                         parent_epoch=parent_epoch, **keywords)

    def events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[tuple[int, Event]]:
        """(seq, event) of the run's log with seq > `after`, in order: replay from 0, tail from the last seq."""
        run_id = self.resolve(run_id)
        rows = self._query("SELECT seq, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                           (run_id, after, limit))
        return [(seq, _event(run_id, unpack(data))) for seq, data in rows]

    def view(self, run_id: str, only: tuple[str, ...] = ()) -> RunView:
        """The run's log folded into its view; `only`: just the events of these names, for a reader that needs
        no more (a table of epochs needs no progress reports, nor the evaluation's images)."""
        run_id = self.resolve(run_id)
        names = f" AND name IN ({', '.join('?' * len(only))})" if only else ""
        rows = self._query(f"SELECT at, data FROM run_events WHERE run_id = ?{names} ORDER BY seq", (run_id, *only))
        return view_of((at, _folded(unpack(data))) for at, data in rows)

    def logged(self, run_id: str, *names: str) -> list[dict[str, Any]]:
        """The run's events of these names, in log order, as `to_dict()` gives them."""
        run_id = self.resolve(run_id)
        marks = ", ".join("?" * len(names))
        return [unpack(r[0]) for r in self._query(
            f"SELECT data FROM run_events WHERE run_id = ? AND name IN ({marks}) ORDER BY seq", (run_id, *names))]

    def last_seq(self, run_id: str) -> int:
        return self._query("SELECT coalesce(max(seq), 0) FROM run_events WHERE run_id = ?", (run_id,))[0][0]

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

    def latest_running(self) -> str | None:
        self.mark_interrupted()
        rows = self._query("SELECT id FROM runs WHERE status = 'running' ORDER BY created_at DESC LIMIT 1")
        return rows[0][0] if rows else None

    # -- changing -----------------------------------------------------------------
    def rename(self, run_id: str, name: str) -> None:
        if not isinstance(name, str) or len(name) > 200:
            raise ValueError("name: must be text of at most 200 characters")
        self._update(self.resolve(run_id), "name = ?", (name,))

    def delete(self, run_id: str) -> None:
        """Forget the run and remove its checkpoints and log."""
        run_id = self.resolve(run_id)
        folder, log = self.checkpoint_dir(run_id), self.log_path(run_id)
        with self._write() as db:
            for table, column in (("run_events", "run_id"), ("commands", "run_id"), ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))
        shutil.rmtree(folder, ignore_errors=True)
        log.unlink(missing_ok=True)

    # -- commands for the process that trains a run --------------------------------
    def send(self, run_id: str, command: Command) -> None:
        """Queue a command for the process training the run; its recorder applies it within ~20 ms."""
        run_id = self.resolve(run_id)
        with self._write() as db:
            db.execute("INSERT INTO commands (run_id, name, value, created_at) VALUES (?, ?, ?, ?)",
                       (run_id, command.name, command.value, time.time()))

    def take_commands(self, run_id: str) -> list[Command]:
        """The queued commands for the run (its full id), oldest first, removed from the queue."""
        # A plain read first: polled fifty times a second, it must not take the write lock for nothing.
        if not self._query("SELECT 1 FROM commands WHERE run_id = ? LIMIT 1", (run_id,)):
            return []
        # A short wait: the poller asks again in 20 ms, and must not hold up the run's own writes meanwhile.
        with self._write(wait_s=min(1.0, self.busy_timeout_s)) as db:
            rows = db.execute("SELECT name, value FROM commands WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
            db.execute("DELETE FROM commands WHERE run_id = ?", (run_id,))
        commands = []
        for name, value in rows:
            try:
                commands.append(Command(name, value))
            except ValueError:
                continue  # written by hand or by a newer release: not ours to act on
        return commands


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


def still_running(store: RunStore, record: RunRecord) -> StoreError:
    """The refusal for resuming a run that a process trains (it names the process and how to stop it), or
    that waits in the queue."""
    if record.status == RunState.QUEUED:
        return StoreError(f"run {record.id} is queued, not stopped: the queue's runner starts it (`scratch-tui queue "
                          f"ls`); `scratch-tui queue rm {record.id}` takes it off the queue")
    where = f"pid {record.pid}" + (f" on {record.host}" if record.host != store.host else "")
    return StoreError(f"run {record.id} is still running ({where}); stop it first with "
                      f"`scratch-tui runs control {record.id} stop`")
