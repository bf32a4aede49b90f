"""The runs table: one row per run, holding what its log says of it (log.py projects each event onto it), so
that listing runs needs no fold. Creating a run, listing runs, reading one, renaming and deleting."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from typing import Any

from ...engine.config import TrainConfig
from .ids import RunNotFound
from .liveness import Liveness
from .processes import process_token
from .records import DamagedConfig, RunRecord, RunSummary, config_column, row_damage, started_column

# whether the row's JSON columns read as objects: SQLite's strict check passes most rows cheaply, and Python
# (records.py) reads the rest, to tell the damaged from what only SQLite refuses (Python's NaN)
_SOUND = ("(CASE WHEN json_valid(config) THEN json_type(config) = 'object' ELSE 0 END AND (coalesce(started, '') = '' "
          "OR CASE WHEN json_valid(started) THEN json_type(started) = 'object' ELSE 0 END))")
_SUMMARY_COLUMNS = ("id, name, model, dataset, status, epochs_done, epochs, best_val_acc, test_acc, run_seconds, "
                    f"active_since, created_at, ended_at, paused, sweep_id, sweep_name, state, {_SOUND}")
_RECORD_COLUMNS = (_SUMMARY_COLUMNS + ", config, message, device, device_name, torch_version, pid, host, "
                   "last_checkpoint, best_checkpoint, started, updated_at, segment, parent_id, parent_epoch")


_SUMMARY_WIDTH = 18  # columns of _SUMMARY_COLUMNS


# the number columns of _SUMMARY_COLUMNS, by position: their names, and whether they may be empty. A row edited by
# hand or by another program can hold text in any of them (SQLite keeps what it is given)
_NUMBER_COLUMNS = {5: ("epochs_done", False), 6: ("epochs", False), 7: ("best_val_acc", True), 8: ("test_acc", True),
                   9: ("run_seconds", False), 10: ("active_since", True), 11: ("created_at", False),
                   12: ("ended_at", True), 13: ("paused", False)}


def _numbers(row: tuple) -> tuple[tuple, list[str]]:
    """The row with each number column that holds no number read as empty (0 where it may not be), and a fault
    naming each such column."""
    row, faults = list(row), []
    for at, (column, may_be_empty) in _NUMBER_COLUMNS.items():
        value = row[at]
        if value is None and may_be_empty or isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        faults.append(f"its {column} column holds {str(value)[:20]!r}, not a number")
        row[at] = None if may_be_empty else 0
    return tuple(row), faults


def _summary_values(row: tuple, now: float, damaged: str = "") -> tuple[list[Any], dict[str, str]]:
    """The positional and keyword arguments of RunSummary from a row of _SUMMARY_COLUMNS; `damaged`: what is
    wrong with it, where the caller has read its JSON columns."""
    row, faults = _numbers(row)
    (run_id, name, model, dataset, status, epochs_done, epochs, best, test, run_seconds, active_since, created,
     ended, paused, sweep_id, sweep_name, folded, _) = row[:_SUMMARY_WIDTH]
    duration = run_seconds + (max(0.0, now - active_since) if status == "running" and active_since else 0.0)
    if faults:  # added to what the caller found
        damaged = f"{damaged}; {'; '.join(faults)}" if damaged else row_damage(status, *faults)
    return ([run_id, name, model, dataset, status, epochs_done, epochs, best, test, duration, created, ended,
             bool(paused)], {"sweep_id": sweep_id, "sweep_name": sweep_name, "folded": folded,
                             "damaged": damaged or row_damage(status)})


def _damage(config: Any, started: Any) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """A row's config and start as read, and what is wrong with them."""
    read = config_column(config)
    start, start_fault = started_column(started)
    return read, start, [read.why if isinstance(read, DamagedConfig) else "", start_fault]


class Rows(Liveness):
    def create_run(self, config: TrainConfig, name: str = "") -> str:
        """A new run row, status running, owned by this process until a recorder takes it over."""
        now, pid = time.time(), os.getpid()
        with self.transaction() as db:
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

    # -- reading ------------------------------------------------------------------
    def list_runs(self, sweep: str | None = None) -> list[RunSummary]:
        """Every run, newest first; with `sweep`, those of the sweep whose id is or starts with it."""
        self.mark_interrupted()
        now = time.time()
        where, args = ("WHERE sweep_id != '' AND substr(sweep_id, 1, ?) = ?", (len(sweep), sweep.strip().lower())) \
            if sweep else ("", ())
        rows = self.query(f"SELECT {_SUMMARY_COLUMNS} FROM runs {where} ORDER BY created_at DESC, id", args)
        summaries = []
        for row in rows:
            damaged = ""
            if not row[_SUMMARY_WIDTH - 1]:  # SQLite doubts its JSON: read it as the record would
                columns = self.query("SELECT config, started FROM runs WHERE id = ?", (row[0],))
                damaged = row_damage(row[4], *_damage(*columns[0])[2]) if columns else ""
            values, keywords = _summary_values(self._as_seen(row), now, damaged)
            summaries.append(RunSummary(*values, **keywords))
        return summaries

    def get_run(self, run_id: str) -> RunRecord:
        run_id = self.resolve(run_id)
        rows = self.query(f"SELECT {_RECORD_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
        row = self._as_seen(rows[0])
        (config, message, device, device_name, torch_version, pid, host, last, best, started, updated,
         segment, parent_id, parent_epoch) = row[_SUMMARY_WIDTH:]
        message = self._gone_unrecorded.get(run_id, message) if row[4] == "interrupted" else message
        config, started, faults = _damage(config, started)
        values, keywords = _summary_values(row, time.time(), row_damage(row[4], *faults))
        return RunRecord(*values, config, message, device, device_name, torch_version, pid, host,
                         self._found_path(run_id, last), self._found_path(run_id, best),
                         started, updated, segment, parent_id=parent_id, parent_epoch=parent_epoch, **keywords)

    def status(self, run_id: str) -> str:
        """The run's status column (its full id), as it was last written."""
        rows = self.query("SELECT status FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
        return rows[0][0]

    def latest_running(self) -> str | None:
        self.mark_interrupted()
        rows = self.query("SELECT id FROM runs WHERE status = 'running' ORDER BY created_at DESC LIMIT 1")
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
        with self.transaction() as db:
            self._forget(db, run_id)
        shutil.rmtree(folder, ignore_errors=True)
        log.unlink(missing_ok=True)

    def _forget(self, db: sqlite3.Connection, run_id: str) -> None:
        """The run's rows go: its log, its queued commands, its summary."""
        for table, column in (("run_events", "run_id"), ("commands", "run_id"), ("runs", "id")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))

    def _update(self, run_id: str, assignments: str, args: tuple) -> None:
        with self.transaction() as db:
            cursor = db.execute(f"UPDATE runs SET {assignments}, updated_at = ? WHERE id = ?",
                                (*args, time.time(), run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
