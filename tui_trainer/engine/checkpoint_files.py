"""The names of a run's checkpoint files, in a module without torch, so that listing and pruning them
(`scratch-tui runs show`, `runs prune`) stays quick."""

from __future__ import annotations

import re

LAST, BEST = "last.pt", "best.pt"
PREVIOUS = "last.prev.pt"  # the last checkpoint before the newest: what a resume falls back on if that is damaged
EPOCH_PATTERN = re.compile(r"epoch-(\d{4,})\.pt")  # one per epoch end, a hard link of that epoch's last.pt


def epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"
