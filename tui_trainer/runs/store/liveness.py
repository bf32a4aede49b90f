"""Liveness: which process trains a run, and the runs whose process is gone.

A run is running while one process of its host owns it: `claim` (a run this process resumes), `take_queued`
(the queue's runner starts it), `set_process` (the detached child it is handed to). A run of this host whose
process is gone without an ending ends with RunInterrupted, saying what it left (`left_behind`); such runs are
looked for on every opening of the store and every listing (`mark_interrupted`). Whether a process still lives
is processes.py's.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

from ...engine.events import TERMINAL_EVENTS, Event, ProcessStarted, RunInterrupted, RunState, event_from_dict
from ..advice import resume_advice
from .connection import StoreError
from .ids import RunNotFound
from .log import Log
from .processes import process_alive, process_token
from .records import RunLeft, config_column
from .schema import unpack

MARK_WAIT_S = 0.5  # how long marking dead runs waits for the write lock before leaving it to the next look


class Liveness(Log):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gone_unrecorded: dict[str, str] = {}  # runs found dead that could not be marked: id -> message
        super().__init__(*args, **kwargs)
        self.mark_interrupted()  # a read-only store shows the dead as interrupted, writing nothing

    def mark_interrupted(self) -> list[str]:
        """Runs of this host whose process is gone without finishing end with RunInterrupted; returns their ids.

        Best effort: where the store cannot be written (read-only, full, locked) they are only shown as
        interrupted, and recorded so by the next process that can write."""
        rows = self.query("SELECT id, pid, pid_token FROM runs WHERE status = 'running' AND host = ?", (self.host,))
        self._gone_unrecorded = {}
        gone = []
        for run_id, pid, token in rows:
            if process_alive(pid, token):
                continue
            message = (f"the training process (pid {pid}) ended without finishing; "
                       f"{resume_advice(run_id, self.left_behind(run_id))}")
            if self.read_only:
                self._gone_unrecorded[run_id] = message
                continue
            try:
                # a short wait: tidying up must not keep a listing waiting on another process's lock
                with self.transaction(wait_s=min(MARK_WAIT_S, self.busy_timeout_s)) as db:
                    row = db.execute("SELECT epochs_done, run_seconds + max(0, updated_at - coalesce(active_since, "
                                     "updated_at)), updated_at FROM runs WHERE id = ? AND status = 'running' AND "
                                     "pid IS ?", (run_id, pid)).fetchone()
                    if row is None:
                        continue  # another viewer got there first, or the run was resumed meanwhile
                    done, seconds, last_seen = row
                    kept = self._kept_unrecorded(run_id)  # its ending among them, where the lock held it up
                    for event in kept:
                        self._append(db, run_id, event, last_seen)
                    if not any(isinstance(event, TERMINAL_EVENTS) for event in kept):
                        self._append(db, run_id, RunInterrupted(message=message, epochs_done=done, seconds=seconds),
                                     last_seen)
                try:
                    self.unrecorded_path(run_id).unlink(missing_ok=True)
                except OSError:  # recorded already: a file left behind is read by nobody (the run has ended)
                    pass
            except StoreError:
                self._gone_unrecorded[run_id] = message  # a reader must not fail for what it could not tidy
                continue
            gone.append(run_id)
        return gone

    def keep_unrecorded(self, run_id: str, events: list[Event]) -> None:
        """Keep events that could not be written (the store stayed locked at the run's end) in the run's file, in
        order, one JSON object a line; the next liveness check to find the run's process gone records them."""
        path = self.unrecorded_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(json.dumps(event.to_dict()) + "\n" for event in events)
            out.flush()
            os.fsync(out.fileno())

    def _kept_unrecorded(self, run_id: str) -> list[Event]:
        """The events kept in the run's file, in order; a line that cannot be read ends them (a torn write)."""
        try:
            lines = self.unrecorded_path(run_id).read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        kept = []
        for line in lines:
            try:
                kept.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                break
        return kept

    def _as_seen(self, row: tuple) -> tuple:
        """A row (id, name, model, dataset, status, ...) with a run found dead but not yet marked (the store
        could not be written) shown as interrupted."""
        if row[0] not in self._gone_unrecorded or row[4] != "running":
            return row
        return (*row[:4], RunState.INTERRUPTED.value, *row[5:])

    def left_behind(self, run_id: str) -> RunLeft | None:
        """What the run (its full id) left to go on from: whether its last checkpoint is on disk, and whether that
        is of its last epoch with no evaluation after it. None where the store cannot be read just now."""
        try:
            rows = self.query("SELECT last_checkpoint, epochs, test_acc FROM runs WHERE id = ?", (run_id,))
            saved = self.query("SELECT data FROM run_events WHERE run_id = ? AND name = 'checkpoint_saved' "
                               "ORDER BY seq DESC LIMIT 1", (run_id,))
        except StoreError:
            return None
        last = self._found_path(run_id, rows[0][0]) if rows else None
        if not last or not Path(last).exists():
            return RunLeft(checkpoint=False, epochs=rows[0][1] if rows else 0, unevaluated=False)
        try:
            checkpoint = unpack(saved[0][0]) if saved else {}
        except (zlib.error, ValueError):  # a damaged log: advice from the row alone
            checkpoint = {}
        epochs, test_acc = rows[0][1], rows[0][2]
        unevaluated = checkpoint.get("reason") == "epoch" and checkpoint.get("epoch", 0) >= epochs and test_acc is None
        return RunLeft(checkpoint=True, epochs=epochs, unevaluated=unevaluated)

    def training_here(self) -> list[tuple[dict[str, Any], str]]:
        """(config, device) of each run that a process of this host trains."""
        return [(config_column(config), device) for config, device in self.query(
            "SELECT config, device FROM runs WHERE status = 'running' AND host = ?", (self.host,))]

    def claim(self, run_id: str, pid: int, also: int | None = None) -> bool:
        """Make `pid` the one process that trains the run, in one statement: False while another live
        process (other than `also`, the parent of a background resume) trains it, or while it waits in the
        queue (its runner starts it)."""
        self.mark_interrupted()
        with self.transaction() as db:
            cursor = db.execute("UPDATE runs SET status = 'running', message = '', ended_at = NULL, pid = ?, "
                                "pid_token = ?, host = ? WHERE id = ? AND status != 'queued' AND "
                                "(status != 'running' OR pid IN (?, ?))",
                                (pid, process_token(pid), self.host, run_id, pid, also if also is not None else pid))
        return cursor.rowcount == 1

    def take_queued(self, run_id: str, pid: int, device: str | None = None) -> bool:
        """Claim a queued run for the process that starts it (the queue's runner), in one statement: False
        once it is no longer queued (cancelled, or taken by another). `device` pins where it trains."""
        with self.transaction() as db:
            cursor = db.execute("UPDATE runs SET status = 'running', message = '', pid = ?, pid_token = ?, host = ?, "
                                "config = CASE WHEN ? IS NULL THEN config ELSE json_set(config, '$.device', ?) END "
                                "WHERE id = ? AND status = 'queued'",
                                (pid, process_token(pid), self.host, device, device, run_id))
        return cursor.rowcount == 1

    def set_process(self, run_id: str, pid: int, resuming: bool = False) -> None:
        """Hand a run to the process that trains it (a detached child), so liveness checks watch that
        one, and log ProcessStarted: from now on the run is running, even before its first event."""
        now = time.time()
        with self.transaction() as db:
            cursor = db.execute("UPDATE runs SET pid = ?, pid_token = ?, host = ?, status = 'running', message = '', "
                                "ended_at = NULL WHERE id = ?", (pid, process_token(pid), self.host, run_id))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id}; `scratch-tui runs` lists them")
            self._append(db, run_id, ProcessStarted(pid=pid, resuming=resuming), now)
