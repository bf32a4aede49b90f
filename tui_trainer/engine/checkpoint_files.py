"""The names of a run's checkpoint files, in a module without torch, so that listing and pruning them
(`scratch-tui runs show`, `runs prune`) stays quick."""

from __future__ import annotations

import re

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
