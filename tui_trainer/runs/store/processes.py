"""Is a run's process alive? Its pid, checked against the start time /proc gives it, so a pid the
system has since handed to another process is not taken for the run's."""

from __future__ import annotations

import os
from pathlib import Path


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
