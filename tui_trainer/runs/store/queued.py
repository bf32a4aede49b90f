"""The run queue as the store keeps it: a queued run is a row (status `queued`) placed by `queue_order`, its log
starting with RunQueued; the runner that works through the queue has one row, its heartbeat. What the queue does
with these (device slots, starts, packs) is runs/queue.py's."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any, Callable, NamedTuple

from ...engine.config import TrainConfig
from ...engine.events import RunQueued
from .processes import process_alive, process_token
from .records import config_column
from .rows import Rows

RUNNER_STALE_S = 60.0  # a runner on another host that has not beaten for this long is gone


class QueuedRow(NamedTuple):
    """A run of the queue, waiting or started by its runner."""

    id: str
    name: str
    status: str
    paused: bool
    config: dict[str, Any]
    sweep_id: str
    sweep_name: str


_QUEUED_COLUMNS = "id, name, status, paused, config, sweep_id, sweep_name"
_WAITING_ORDER = "ORDER BY queue_order, created_at, id"


def _queued_row(row: tuple) -> QueuedRow:
    run_id, name, status, paused, config, sweep_id, sweep_name = row
    return QueuedRow(run_id, name, status, bool(paused), config_column(config), sweep_id, sweep_name)


def _queue_end(db: sqlite3.Connection) -> tuple[int, int]:
    """How many runs wait, and the queue_order after which new ones go."""
    waiting = db.execute("SELECT count(*) FROM runs WHERE status = 'queued'").fetchone()[0]
    return waiting, db.execute("SELECT coalesce(max(queue_order), 0) FROM runs").fetchone()[0]


class Queued(Rows):
    def create_queued(self, entries: list[tuple[TrainConfig, str]], sweep_id: str = "",
                      sweep_name: str = "") -> list[str]:
        """New queued runs, one per (config, name), at the end of the queue in that order, all in one
        transaction (all or none); each log starts with RunQueued. Returns their ids."""
        now = time.time()
        ids: list[str] = []
        with self.transaction() as db:
            waiting, last = _queue_end(db)
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

    def queue_created(self, run_ids: list[str], sweep_id: str = "", sweep_name: str = "") -> None:
        """Put runs made already (forks: their logs start with ForkedFrom) at the end of the queue in that order,
        all in one transaction; each log then says RunQueued at its place, as a run queued new does."""
        now = time.time()
        with self.transaction() as db:
            waiting, last = _queue_end(db)
            for i, run_id in enumerate(run_ids, 1):
                db.execute("UPDATE runs SET queue_order = ? WHERE id = ?", (last + i, run_id))
                self._append(db, run_id, RunQueued(position=waiting + i, sweep_id=sweep_id, sweep_name=sweep_name),
                             now)

    def waiting(self) -> list[QueuedRow]:
        """The runs waiting in the queue, in queue order."""
        return [_queued_row(r) for r in self.query(
            f"SELECT {_QUEUED_COLUMNS} FROM runs WHERE status = 'queued' {_WAITING_ORDER}")]

    def started_from_queue(self) -> list[QueuedRow]:
        """The queue's runs that a process trains now, in queue order."""
        return [_queued_row(r) for r in self.query(
            f"SELECT {_QUEUED_COLUMNS} FROM runs WHERE status = 'running' AND queue_order IS NOT NULL "
            f"ORDER BY queue_order, id")]

    def waiting_count(self) -> int:
        return self.query("SELECT count(*) FROM runs WHERE status = 'queued'")[0][0]

    def move_queued(self, run_id: str, place: Callable[[int, int], int]) -> int | None:
        """Move a waiting run (its full id) within the queue, in one transaction: `place(here, waiting)` gives its
        new 1-based place from its place now and the number of runs waiting (it may raise, to refuse). Returns
        that place; None where the run waits no more."""
        with self.transaction() as db:
            order = [r[0] for r in db.execute(f"SELECT id FROM runs WHERE status = 'queued' {_WAITING_ORDER}")]
            if run_id not in order:
                return None
            target = place(order.index(run_id) + 1, len(order))
            order.remove(run_id)
            order.insert(target - 1, run_id)
            base = db.execute("SELECT coalesce(min(queue_order), 1) FROM runs WHERE status = 'queued'").fetchone()[0]
            db.executemany("UPDATE runs SET queue_order = ? WHERE id = ?",
                           [(base + i, queued_id) for i, queued_id in enumerate(order)])
        return target

    def remove_queued(self, run_id: str) -> bool:
        """Delete a waiting run (its full id), log and all, in one transaction with the check that it still
        waits; False, and nothing deleted, once a runner has started it."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ? AND status = 'queued'", (run_id,)).fetchone() is None:
                return False
            self._forget(db, run_id)
        return True

    # -- the runner's row -----------------------------------------------------------
    def queue_runner(self) -> int | None:
        """The pid of the runner that works through the queue; None when none does."""
        rows = self.query("SELECT pid, pid_token, host, beat_at FROM queue_runner")
        return rows[0][0] if rows and self._runner_alive(*rows[0]) else None

    def claim_queue_runner(self, pid: int) -> bool:
        """Make `pid` the queue's one runner: False while another runner lives."""
        with self.transaction() as db:
            row = db.execute("SELECT pid, pid_token, host, beat_at FROM queue_runner").fetchone()
            if row and (row[0], row[2]) != (pid, self.host) and self._runner_alive(*row):
                return False
            db.execute("INSERT OR REPLACE INTO queue_runner (id, pid, pid_token, host, beat_at) VALUES (1, ?, ?, ?, ?)",
                       (pid, process_token(pid), self.host, time.time()))
        return True

    def beat_queue_runner(self, pid: int) -> None:
        """The runner's heartbeat: how another host tells that it lives."""
        with self.transaction() as db:
            db.execute("UPDATE queue_runner SET beat_at = ? WHERE pid = ? AND host = ?", (time.time(), pid, self.host))

    def release_queue_runner(self, pid: int) -> None:
        with self.transaction() as db:
            self._release_runner(db, pid)

    def release_idle_queue_runner(self, pid: int, paused: str) -> bool:
        """Release the runner, in one transaction with the check that nothing is left for it, so that a run queued
        meanwhile sees this runner or none. Something is left while a run waits and the setting `paused` is not
        set. False, and the runner kept, while something is."""
        with self.transaction() as db:
            is_paused = db.execute("SELECT 1 FROM settings WHERE key = ?", (paused,)).fetchone()
            waiting = db.execute("SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1").fetchone()
            if waiting and not is_paused:
                return False
            self._release_runner(db, pid)
        return True

    def _release_runner(self, db: sqlite3.Connection, pid: int) -> None:
        db.execute("DELETE FROM queue_runner WHERE pid = ? AND host = ?", (pid, self.host))

    def _runner_alive(self, pid: int, token: str | None, host: str, beat_at: float) -> bool:
        if host == self.host:
            return process_alive(pid, token)
        return time.time() - beat_at < RUNNER_STALE_S  # no way to ask another host's kernel: its heartbeat
