"""The command queue: commands for the process that trains a run, which its recorder takes (and applies) within
~20 ms. A command still queued when the run ends will never reach it: the ending answers it in the log."""

from __future__ import annotations

import sqlite3
import time

from ...engine.commands import Command
from ...engine.events import ENDING_STATE, CommandIgnored, Event
from .log import Log


class Commands(Log):
    def send(self, run_id: str, command: Command) -> None:
        """Queue a command for the process training the run; its recorder applies it within ~20 ms."""
        run_id = self.resolve(run_id)
        with self.transaction() as db:
            db.execute("INSERT INTO commands (run_id, name, value, created_at) VALUES (?, ?, ?, ?)",
                       (run_id, command.name, command.value, time.time()))

    def take_commands(self, run_id: str) -> list[Command]:
        """The queued commands for the run (its full id), oldest first, removed from the queue."""
        # A plain read first: polled fifty times a second, it must not take the write lock for nothing.
        if not self.query("SELECT 1 FROM commands WHERE run_id = ? LIMIT 1", (run_id,)):
            return []
        # A short wait: the poller asks again in 20 ms, and must not hold up the run's own writes meanwhile.
        with self.transaction(wait_s=min(1.0, self.busy_timeout_s)) as db:
            rows = db.execute("SELECT name, value FROM commands WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
            db.execute("DELETE FROM commands WHERE run_id = ?", (run_id,))
        commands = []
        for name, value in rows:
            try:
                commands.append(Command(name, value))
            except ValueError:
                continue  # written by hand or by a newer release: not ours to act on
        return commands

    def _append(self, db: sqlite3.Connection, run_id: str, event: Event, now: float) -> int:
        """An ending, before it is appended, answers the commands still queued for the run."""
        if type(event) in ENDING_STATE:
            self._answer_queued(db, run_id, event, now)
        return super()._append(db, run_id, event, now)

    def _answer_queued(self, db: sqlite3.Connection, run_id: str, ending: Event, now: float) -> None:
        """Commands still queued when the run ends will never reach it: each is answered in the log, just
        before the ending (followers stop at the ending), instead of vanishing."""
        queued = db.execute("SELECT name, value FROM commands WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        db.execute("DELETE FROM commands WHERE run_id = ?", (run_id,))
        state = ENDING_STATE[type(ending)].value
        for name, value in queued:
            self._append(db, run_id, CommandIgnored(name, value, f"the run had {state} before it arrived"), now)
