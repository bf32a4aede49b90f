"""The run store: every run, its metrics, evaluation and checkpoints, in one SQLite file.

One file (`<runs dir>/runs.sqlite3`) shared by every process that trains or looks:
WAL lets readers go on while a run writes, every write is one short IMMEDIATE
transaction, and the busy timeout makes concurrent writers wait their turn instead
of failing. This module does not import torch, so listing runs stays quick.
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
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..engine.config import TrainConfig
from ..engine.control import check_lr
from ..engine.events import (BatchProgress, CheckpointSaved, EpochEnded, EvaluationEnded, Event, RunFailed, RunFinished,
                     RunPaused, RunResumed, RunStarted, RunStopped)

STORE_FILE = "runs.sqlite3"
BUSY_TIMEOUT_S = 10.0
STATUSES = ("running", "finished", "stopped", "failed", "interrupted")
CONTROL_ACTIONS = ("pause", "resume", "stop", "set_lr", "checkpoint")
_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # ids become folder names

# Each entry upgrades the schema by one version (PRAGMA user_version counts them): append,
# never edit, so a database written by an older release is brought forward step by step.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL,
            model TEXT NOT NULL,
            dataset TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            paused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            active_since REAL,
            run_seconds REAL NOT NULL DEFAULT 0,
            epochs INTEGER NOT NULL,
            epochs_done INTEGER NOT NULL DEFAULT 0,
            best_val_acc REAL,
            test_acc REAL,
            device TEXT NOT NULL DEFAULT '',
            device_name TEXT NOT NULL DEFAULT '',
            torch_version TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            pid_token TEXT,
            host TEXT NOT NULL DEFAULT '',
            segment INTEGER NOT NULL DEFAULT 0,
            started TEXT,
            last_checkpoint TEXT,
            best_checkpoint TEXT
        )""",
        "CREATE INDEX runs_by_status ON runs (status, host)",
        """CREATE TABLE epochs (
            run_id TEXT NOT NULL, epoch INTEGER NOT NULL, step INTEGER NOT NULL, val_acc REAL, data TEXT NOT NULL,
            PRIMARY KEY (run_id, epoch)
        ) WITHOUT ROWID""",
        """CREATE TABLE steps (
            run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
            batches INTEGER NOT NULL, loss REAL NOT NULL, acc REAL NOT NULL, lr REAL NOT NULL,
            samples_per_s REAL NOT NULL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID""",
        # zlib-compressed JSON: the sample images make an evaluation about a megabyte of text
        "CREATE TABLE evaluations (run_id TEXT PRIMARY KEY, data BLOB NOT NULL)",
        """CREATE TABLE controls (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, action TEXT NOT NULL, value REAL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX controls_by_run ON controls (run_id)",
    ),
    (  # CUDA memory of each progress report, so a viewer attached to a run sees it too
        "ALTER TABLE steps ADD COLUMN memory_mib REAL",
        "ALTER TABLE steps ADD COLUMN peak_memory_mib REAL",
    ),
]


class StoreError(RuntimeError):
    """The database cannot be opened or written; the message names the file and what to do."""


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

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)


_SUMMARY_COLUMNS = ("id, name, model, dataset, status, epochs_done, epochs, best_val_acc, test_acc, run_seconds, "
                    "active_since, created_at, ended_at, paused")
_RECORD_COLUMNS = (_SUMMARY_COLUMNS + ", config, message, device, device_name, torch_version, pid, host, "
                   "last_checkpoint, best_checkpoint, started, updated_at, segment")


def _summary_values(row: tuple, now: float) -> list[Any]:
    (run_id, name, model, dataset, status, epochs_done, epochs, best, test, run_seconds, active_since, created,
     ended, paused) = row[:14]
    duration = run_seconds + (max(0.0, now - active_since) if status == "running" and active_since else 0.0)
    return [run_id, name, model, dataset, status, epochs_done, epochs, best, test, duration, created, ended,
            bool(paused)]


def _safe(run_id: str) -> str:
    # A tampered database must not turn `delete` into removing folders outside the runs dir.
    if not _SAFE_ID.fullmatch(run_id):
        raise RunNotFound(f"run id {run_id!r} is not a valid id; `scratch-tui runs` lists them")
    return run_id


def process_token(pid: int) -> str | None:
    """The process's start time from /proc (Linux), so a recycled pid is not mistaken for our run."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_alive(pid: int | None, token: str | None = None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, but someone else's
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc here: the signal check is all we have
    state, started = stat
    if state in ("Z", "X"):
        return False  # finished; its parent has just not reaped it yet
    return token is None or token == started


class RunStore:
    """Runs on disk. Thread-safe: one connection, one lock; every process opens its own store."""

    def __init__(self, path: str | Path | None = None):
        path = Path(path).expanduser() if path is not None else default_runs_dir()
        if path.suffix == ".sqlite3":
            self.root, self.db_path = path.parent, path
        else:
            self.root, self.db_path = path, path / STORE_FILE
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the runs folder {self.root} ({exc.strerror}); pass --runs-dir or set "
                             f"SCRATCH_TUI_HOME to a writable folder") from None
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {self.db_path} ({exc}); pass --runs-dir or set "
                             f"SCRATCH_TUI_HOME to a writable folder") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL syncs at checkpoints only: a power cut may lose the last writes but
            # never corrupts the file, and a run writes several times a second.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.db_path} is not a usable run store ({exc}); move it aside or pass "
                             f"--runs-dir") from None
        except StoreError:
            self._db.close()
            raise
        self.mark_interrupted()

    # -- plumbing ---------------------------------------------------------------
    def _migrate(self) -> None:
        target = len(MIGRATIONS)
        if self._db.execute("PRAGMA user_version").fetchone()[0] == target:
            return
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > target:
                raise StoreError(f"{self.db_path} was written by a newer scratch-tui (schema {version}, this one "
                                 f"knows {target}); upgrade scratch-tui or pass another --runs-dir")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write the run store {self.db_path} ({exc})") from None

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the run store {self.db_path} ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / _safe(run_id)

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
                "INSERT INTO runs (id, name, config, model, dataset, status, created_at, updated_at, epochs, pid, "
                "pid_token, host) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (run_id, name or config.name, json.dumps(config.to_dict()), config.model, config.dataset, now, now,
                 config.epochs, pid, process_token(pid), self.host),
            )
        return run_id

    def set_process(self, run_id: str, pid: int) -> None:
        """Hand a run to another process (a detached child), so liveness checks watch that one."""
        self._update(run_id, "pid = ?, pid_token = ?, host = ?", (pid, process_token(pid), self.host))

    def set_status(self, run_id: str, status: str, message: str = "") -> None:
        """End a run without an engine event (a detached child that never started, a second Ctrl-C)."""
        if status not in STATUSES:
            raise ValueError(f"status: got {status!r}; choose one of {', '.join(STATUSES)}")
        if status == "running":
            self._update(run_id, "status = 'running', message = ?", (message,))
            return
        now = time.time()
        self._update(run_id, "status = ?, message = ?, ended_at = ?, paused = 0, active_since = NULL, "
                             "run_seconds = run_seconds + max(0, ? - coalesce(active_since, ?))",
                     (status, message, now, now, now))

    def _update(self, run_id: str, assignments: str, args: tuple) -> None:
        with self._write() as db:
            cursor = db.execute(f"UPDATE runs SET {assignments}, updated_at = ? WHERE id = ?",
                                (*args, time.time(), run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")

    # -- recording ----------------------------------------------------------------
    def record(self, run_id: str, event: Event) -> None:
        """Store one engine event for the run (its full id); terminal events set the status."""
        now = time.time()
        with self._write() as db:
            if isinstance(event, RunStarted):
                self._record_start(db, run_id, event, now)
            elif isinstance(event, BatchProgress):
                db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run_id, event.step, event.epoch, event.batch, event.batches, event.loss, event.acc,
                            event.lr, event.samples_per_s, event.memory_mib, event.peak_memory_mib))
            elif isinstance(event, EpochEnded):
                db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?)",
                           (run_id, event.epoch, event.step, event.val_acc, json.dumps(event.to_dict())))
                db.execute("UPDATE runs SET epochs_done = ?, best_val_acc = CASE WHEN ? IS NULL THEN best_val_acc "
                           "ELSE max(coalesce(best_val_acc, ?), ?) END WHERE id = ?",
                           (event.epoch, event.val_acc, event.val_acc, event.val_acc, run_id))
            elif isinstance(event, EvaluationEnded):
                blob = zlib.compress(json.dumps(event.to_dict()).encode(), 6)
                db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?)", (run_id, blob))
                db.execute("UPDATE runs SET test_acc = ? WHERE id = ?", (event.test_acc, run_id))
            elif isinstance(event, (RunPaused, RunResumed)):
                db.execute("UPDATE runs SET paused = ? WHERE id = ?", (isinstance(event, RunPaused), run_id))
            elif isinstance(event, CheckpointSaved):
                db.execute("UPDATE runs SET last_checkpoint = ?, best_checkpoint = coalesce(nullif(?, ''), "
                           "best_checkpoint) WHERE id = ?", (event.path, event.best_path, run_id))
            elif isinstance(event, (RunFinished, RunStopped, RunFailed)):
                status, message = {RunFinished: ("finished", ""), RunStopped: ("stopped", getattr(event, "reason", "")),
                                   RunFailed: ("failed", getattr(event, "message", ""))}[type(event)]
                db.execute("UPDATE runs SET status = ?, message = ?, ended_at = ?, run_seconds = ?, "
                           "active_since = NULL, paused = 0, epochs_done = ? WHERE id = ?",
                           (status, message, now, event.seconds, event.epochs_done, run_id))
            # Any sign of life revives a run that a liveness check wrongly gave up on.
            cursor = db.execute("UPDATE runs SET updated_at = ?, status = CASE WHEN status = 'interrupted' THEN "
                                "'running' ELSE status END WHERE id = ?", (now, run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")

    def _record_start(self, db: sqlite3.Connection, run_id: str, event: RunStarted, now: float) -> None:
        # A resumed run drops whatever was recorded after its checkpoint; a fresh start drops everything.
        db.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", (run_id, event.resumed_from_step))
        db.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, event.resumed_from_epoch))
        db.execute("DELETE FROM evaluations WHERE run_id = ?", (run_id,))
        # Requests queued before a restart were meant for the process that stopped; before the
        # first start they are fresh (`runs control ID pause` right after `--detach`) and stay.
        db.execute("DELETE FROM controls WHERE run_id = ? AND (SELECT segment FROM runs WHERE id = ?) > 0",
                   (run_id, run_id))
        torch = sys.modules.get("torch")  # loaded by whoever trains; never imported here
        pid = os.getpid()
        config = event.config
        db.execute(
            "UPDATE runs SET status = 'running', message = '', paused = 0, ended_at = NULL, active_since = ?, "
            "config = ?, model = ?, dataset = ?, epochs = ?, epochs_done = ?, test_acc = NULL, "
            "best_val_acc = (SELECT max(val_acc) FROM epochs WHERE run_id = ?), device = ?, device_name = ?, "
            "torch_version = ?, pid = ?, pid_token = ?, host = ?, segment = segment + 1, started = ? WHERE id = ?",
            (now, json.dumps(config), config.get("model", ""), config.get("dataset", ""), config.get("epochs", 0),
             event.resumed_from_epoch, run_id, event.device, event.device_name, getattr(torch, "__version__", ""),
             pid, process_token(pid), self.host, json.dumps(event.to_dict()), run_id),
        )

    def mark_interrupted(self) -> list[str]:
        """Runs of this host whose process is gone without finishing become `interrupted`; returns their ids."""
        rows = self._query("SELECT id, pid, pid_token FROM runs WHERE status = 'running' AND host = ?", (self.host,))
        gone = []
        for run_id, pid, token in rows:
            if process_alive(pid, token):
                continue
            message = (f"the training process (pid {pid}) ended without finishing; `scratch-tui train --resume "
                       f"{run_id}` continues from its last checkpoint")
            with self._write() as db:
                cursor = db.execute(
                    "UPDATE runs SET status = 'interrupted', message = ?, ended_at = updated_at, paused = 0, "
                    "run_seconds = run_seconds + max(0, updated_at - coalesce(active_since, updated_at)), "
                    "active_since = NULL WHERE id = ? AND status = 'running' AND pid IS ?", (message, run_id, pid))
            if cursor.rowcount:
                gone.append(run_id)
        return gone

    # -- reading ------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        """Every run, newest first."""
        self.mark_interrupted()
        now = time.time()
        rows = self._query(f"SELECT {_SUMMARY_COLUMNS} FROM runs ORDER BY created_at DESC, id")
        return [RunSummary(*_summary_values(row, now)) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        run_id = self.resolve(run_id)
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
        row = rows[0]
        config, message, device, device_name, torch_version, pid, host, last, best, started, updated, segment = row[14:]
        return RunRecord(*_summary_values(row, time.time()), json.loads(config), message, device, device_name,
                         torch_version, pid, host, last, best, json.loads(started) if started else None, updated,
                         segment)

    def epochs(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """EpochEnded events (as `to_dict()` gives them) with epoch > `after`, in order."""
        run_id = self.resolve(run_id)
        rows = self._query("SELECT data FROM epochs WHERE run_id = ? AND epoch > ? ORDER BY epoch", (run_id, after))
        return [json.loads(r[0]) for r in rows]

    def steps(self, run_id: str, after: int = 0) -> list[tuple[int, float]]:
        """(step, running loss of its epoch) recorded with step > `after`, in order."""
        run_id = self.resolve(run_id)
        return [(s, loss) for s, loss in self._query(
            "SELECT step, loss FROM steps WHERE run_id = ? AND step > ? ORDER BY step", (run_id, after))]

    def progress(self, run_id: str, after: int = 0) -> list[BatchProgress]:
        """The recorded BatchProgress events with step > `after`, in order."""
        run_id = self.resolve(run_id)
        rows = self._query("SELECT s.step, s.epoch, r.epochs, s.batch, s.batches, s.loss, s.acc, s.lr, s.samples_per_s, "
                           "s.memory_mib, s.peak_memory_mib FROM steps s JOIN runs r ON r.id = s.run_id "
                           "WHERE s.run_id = ? AND s.step > ? ORDER BY s.step", (run_id, after))
        return [BatchProgress(*row) for row in rows]

    def evaluation(self, run_id: str) -> dict[str, Any] | None:
        """The final EvaluationEnded event as `to_dict()` gives it (samples with images), or None."""
        run_id = self.resolve(run_id)
        rows = self._query("SELECT data FROM evaluations WHERE run_id = ?", (run_id,))
        return json.loads(zlib.decompress(rows[0][0])) if rows else None

    def latest_running(self) -> str | None:
        self.mark_interrupted()
        rows = self._query("SELECT id FROM runs WHERE status = 'running' ORDER BY created_at DESC LIMIT 1")
        return rows[0][0] if rows else None

    def follow(self, run_id: str, poll_s: float = 0.25,
               stop: threading.Event | None = None) -> Iterator[Event]:
        """Events of a run as they are recorded, from the start, until it ends; see follow.follow."""
        from .follow import follow

        return follow(self, run_id, poll_s=poll_s, stop=stop)

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
            for table, column in (("steps", "run_id"), ("epochs", "run_id"), ("evaluations", "run_id"),
                                  ("controls", "run_id"), ("runs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))
        shutil.rmtree(folder, ignore_errors=True)
        log.unlink(missing_ok=True)

    # -- controls for runs in other processes ---------------------------------------
    def send_control(self, run_id: str, action: str, value: float | None = None) -> None:
        """Queue pause, resume, stop, set_lr (with value) or checkpoint for the process training the run."""
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"control: unknown {action!r}; choose one of {', '.join(CONTROL_ACTIONS)}")
        value = check_lr(value) if action == "set_lr" else None
        run_id = self.resolve(run_id)
        with self._write() as db:
            db.execute("INSERT INTO controls (run_id, action, value, created_at) VALUES (?, ?, ?, ?)",
                       (run_id, action, value, time.time()))

    def take_controls(self, run_id: str) -> list[tuple[str, float | None]]:
        """The queued requests for the run (its full id), oldest first, removed from the queue."""
        # A plain read first: polled twice a second, it must not take the write lock for nothing.
        if not self._query("SELECT 1 FROM controls WHERE run_id = ? LIMIT 1", (run_id,)):
            return []
        with self._write() as db:
            rows = db.execute("SELECT id, action, value FROM controls WHERE run_id = ? ORDER BY id",
                              (run_id,)).fetchall()
            db.execute("DELETE FROM controls WHERE run_id = ?", (run_id,))
        return [(action, value) for _, action, value in rows]
