"""The names of a run's checkpoint files, in a module without torch, so that listing and pruning them
(`scratch-tui runs show`, `runs prune`) stays quick."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

LAST, BEST = "last.pt", "best.pt"
PREVIOUS = "last.prev.pt"  # the last checkpoint before the newest: what a resume falls back on if that is damaged
EPOCH_PATTERN = re.compile(r"epoch-(\d{4,})\.pt")  # one per epoch end, a hard link of that epoch's last.pt
# one per checkpoint asked for (`c`, `runs control ID checkpoint`), a hard link of that moment's last.pt: the next
# save replaces last.pt, and this keeps the moment for a fork (`--fork RUN@step-150`). Unpadded, so the name is
# what the user types after the @.
STEP_PATTERN = re.compile(r"step-(\d+)\.pt")


def epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


def step_file(step: int) -> str:
    return f"step-{step}.pt"


# A checkpoint is written to `.<name>.<pid>.<random>.tmp` beside it, then renamed over it: a process killed
# mid-write leaves that file, the size of a checkpoint. The pid tells a write in progress from a dead one's.
TEMPORARY = re.compile(r"\.(.+)\.(\d+)\.[^.]+\.tmp")
UNTAGGED_STALE_S = 3600.0  # a temporary file without a pid (an older release's): another's write lasts no longer


def temporary_prefix(name: str) -> str:
    """How this process's temporary file for the checkpoint `name` begins."""
    return f".{name}.{os.getpid()}."


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` of checkpoint writes whose process is gone (killed mid-write);
    a live process's write in progress is left alone. Returns what was deleted."""
    deleted = []
    try:
        found = list(folder.glob(".*.tmp"))
    except OSError:
        return deleted
    for path in found:
        m = TEMPORARY.fullmatch(path.name)
        try:
            if m is not None and _alive(int(m.group(2))):
                continue
            if m is None and time.time() - path.stat().st_mtime < UNTAGGED_STALE_S:
                continue
            path.unlink()
        except OSError:  # gone meanwhile, or a read-only folder: tried again at the next look
            continue
        deleted.append(path)
    return deleted


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's live process, or a pid that cannot be asked about: not ours to delete
    return True
