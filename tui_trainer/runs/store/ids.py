"""A run's id, and what it names under the runs dir: the run's checkpoint folder and its log file.

Checkpoint paths are kept relative to the runs dir, so a moved runs dir still works.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...engine.user_text import shown, shown_text
from .connection import Connection

_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # ids become folder names


class RunNotFound(LookupError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such run"


def _safe(run_id: str) -> str:
    # A tampered database must not turn `delete` into removing folders outside the runs dir.
    if not _SAFE_ID.fullmatch(run_id):
        raise RunNotFound(f"run id {shown(run_id)} is not a valid id; `scratch-tui runs` lists them")
    return run_id


class Ids(Connection):
    def resolve(self, run_id: str) -> str:
        """The full id for an id or a unique prefix of one; RunNotFound otherwise."""
        text = str(run_id).strip().lower()
        rows = [r[0] for r in self.query("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                                         (len(text), text))] if text else []
        if text in rows:
            return text
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise RunNotFound(f"no run {shown_text(run_id)}; `scratch-tui runs` lists them")
        raise RunNotFound(f"run id {shown_text(run_id)} is ambiguous ({', '.join(rows[:5])}"
                          f"{', ...' if len(rows) > 5 else ''}); "
                          f"type more of it")

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / _safe(run_id)

    def log_path(self, run_id: str) -> Path:
        """Where a detached run's output goes."""
        return self.root / "logs" / f"{_safe(run_id)}.log"

    def unrecorded_path(self, run_id: str) -> Path:
        """Where a run's last events wait when the store stayed locked at its end (liveness records them)."""
        return self.root / "logs" / f"{_safe(run_id)}.unrecorded.jsonl"

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
