"""Which of a run's checkpoints stay on disk: the last `keep_checkpoints` epochs and the best, always.

At each epoch end the recorder saves `last.pt` and links it (a hard link: no copy, no extra space) as
`epoch-NNNN.pt`, and as `best.pt` when the epoch is the best by the run's monitor. `prune` then deletes the
epoch files older than the newest `keep`, never the best's (the same file as best.pt) and never the newest.
A fork can start from any epoch file left (`epoch_checkpoint`). This module does not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..engine.checkpoint_files import BEST, EPOCH_PATTERN as _EPOCH, LAST, PREVIOUS, epoch_file
from .store import RunStore

__all__ = ["epoch_file", "epoch_files", "prune", "KeptCheckpoint", "kept_checkpoints", "disk_use",
           "epoch_checkpoint", "prune_checkpoints"]

def epoch_files(folder: Path) -> dict[int, Path]:
    """The epoch checkpoints in the folder, by epoch, oldest first."""
    try:
        found = {int(m.group(1)): path for path in folder.iterdir() if (m := _EPOCH.fullmatch(path.name))}
    except OSError:
        return {}
    return dict(sorted(found.items()))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the epoch checkpoints older than the newest `keep` (at least one stays), except the best's;
    returns what was deleted."""
    files = epoch_files(folder)
    old = list(files.values())[:-max(1, keep)]
    deleted = []
    for path in old:
        if _same(path, folder / BEST):
            continue  # the best stays: it is what `eval` and --restore-best forks start from
        try:
            path.unlink()
        except OSError:
            continue  # a read-only folder: kept, and tried again at the next save
        deleted.append(path)
    return deleted


@dataclass(frozen=True)
class KeptCheckpoint:
    name: str  # its file name: epoch-0003.pt, best.pt, last.pt, last.prev.pt
    epoch: int | None  # epochs done when it was saved, where known
    bytes: int
    path: Path


def kept_checkpoints(store: RunStore, run_id: str) -> list[KeptCheckpoint]:
    """The run's checkpoint files: epoch checkpoints by epoch, then best, last and the others."""
    folder = store.checkpoint_dir(store.resolve(run_id))
    if not folder.is_dir():
        return []
    epochs = epoch_files(folder)
    saved = store.logged(run_id, "checkpoint_saved")
    last_epoch = saved[-1]["epoch"] if saved else None
    best_epoch = next((e["epoch"] for e in reversed(saved) if e.get("best_path")), None)
    known = {LAST: last_epoch, BEST: best_epoch}
    kept = []
    for path in sorted(folder.glob("*.pt"), key=lambda p: (p.name not in (f.name for f in epochs.values()), p.name)):
        match = _EPOCH.fullmatch(path.name)
        epoch = int(match.group(1)) if match else next((e for e, f in epochs.items() if _same(f, path)),
                                                       known.get(path.name))
        try:
            size = path.stat().st_size
        except OSError:
            continue
        kept.append(KeptCheckpoint(path.name, epoch, size, path))
    return kept


def disk_use(store: RunStore, run_id: str) -> int:
    """Bytes the run's checkpoints and log take on disk, each hard-linked file counted once."""
    run_id = store.resolve(run_id)
    seen: set[tuple[int, int]] = set()
    total = 0
    paths = list(store.checkpoint_dir(run_id).glob("*")) + [store.log_path(run_id)]
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) not in seen and path.is_file():
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def epoch_checkpoint(store: RunStore, run_id: str, epoch: int | None) -> Path:
    """The checkpoint a fork of the run at `epoch` starts from (its last one when None). LookupError says which
    epochs have one."""
    run_id = store.resolve(run_id)
    folder = store.checkpoint_dir(run_id)
    if epoch is None:
        last = folder / LAST
        if last.is_file():
            return last
        raise LookupError(f"run {run_id} has no checkpoint to fork from (it saves one at each epoch end)")
    files = epoch_files(folder)
    if epoch in files:
        return files[epoch]
    have = ", ".join(str(e) for e in files) or "none"
    raise LookupError(f"run {run_id} has no checkpoint of epoch {epoch}; epochs with one: {have}")


def prune_checkpoints(store: RunStore, run_id: str, keep: int = 1) -> list[Path]:
    """Delete a stopped or finished run's old checkpoints: all but the newest `keep` epoch checkpoints and the
    best (and the previous-last fallback, which only a running run needs); returns what was deleted.
    ValueError for a run that is training (it prunes its own as it saves)."""
    record = store.get_run(run_id)
    if record.status == "running":
        raise ValueError(f"run {record.id} is running; it keeps its last {record.config.get('keep_checkpoints', 3)} "
                         f"epoch checkpoints itself. Prune it once it has stopped")
    if keep < 1:
        raise ValueError(f"--keep: got {keep}; must be a whole number of 1 or more")
    folder = store.checkpoint_dir(record.id)
    deleted = prune(folder, keep)
    previous = folder / PREVIOUS
    if previous.is_file() and (folder / LAST).is_file():
        previous.unlink()
        deleted.append(previous)
    return deleted
