"""Which of a run's checkpoints stay on disk: the last `keep_checkpoints` epochs and the best, always, and the
last `keep_checkpoints` checkpoints asked for.

At each epoch end the recorder saves `last.pt` and links it (a hard link: no copy, no extra space) as
`epoch-NNNN.pt`, and as `best.pt` when the epoch is the best by the run's monitor; a checkpoint asked for
(`c`, `runs control ID checkpoint`) is linked as `step-N.pt`. `prune` then deletes the epoch files older than
the newest `keep`, never the best's (the same file as best.pt) and never the newest, and the step files older
than the newest `keep`. A fork can start from any epoch or step file left (`fork_checkpoint`). This module does
not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..engine.checkpoint_files import (BEST, EPOCH_PATTERN as _EPOCH, LAST, PREVIOUS, STEP_PATTERN as _STEP,
                                       epoch_file, remove_stale_temporaries, step_file)
from .store import RunStore

__all__ = ["epoch_file", "step_file", "epoch_files", "step_files", "prune", "KeptCheckpoint", "kept_checkpoints",
           "disk_use", "parse_fork_point", "fork_checkpoint", "epoch_checkpoint", "stable_name", "prune_checkpoints"]


def epoch_files(folder: Path) -> dict[int, Path]:
    """The epoch checkpoints in the folder, by epoch, oldest first."""
    return _numbered(folder, _EPOCH)


def step_files(folder: Path) -> dict[int, Path]:
    """The checkpoints asked for in the folder, by step, oldest first."""
    return _numbered(folder, _STEP)


def _numbered(folder: Path, pattern) -> dict[int, Path]:
    try:
        found = {int(m.group(1)): path for path in folder.iterdir() if (m := pattern.fullmatch(path.name))}
    except OSError:
        return {}
    return dict(sorted(found.items()))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the epoch checkpoints older than the newest `keep` (at least one stays), except the best's, the
    checkpoints asked for older than the newest `keep`, and what a write killed midway left; returns what was
    deleted."""
    deleted = remove_stale_temporaries(folder)
    for files in (epoch_files(folder), step_files(folder)):
        for path in list(files.values())[:-max(1, keep)]:
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
    name: str  # its file name: epoch-0003.pt, step-150.pt, best.pt, last.pt, last.prev.pt
    epoch: int | None  # epochs done when it was saved, where known
    bytes: int
    path: Path
    step: int | None = None  # steps done when it was saved, where known
    mid_epoch: bool = False  # saved part-way through epoch `epoch + 1`
    fork_at: str | None = None  # what follows `--fork RUN` to start from it ("@3", "@step-150", "" for the last)


def kept_checkpoints(store: RunStore, run_id: str) -> list[KeptCheckpoint]:
    """The run's checkpoint files: epoch checkpoints by epoch, those asked for by step, then best, last and the
    others, each with the epoch and step it was saved at where the run's log says, and how a fork names it."""
    folder = store.checkpoint_dir(store.resolve(run_id))
    if not folder.is_dir():
        return []
    numbered = {**{f.name: (f, f"@{e}") for e, f in epoch_files(folder).items()},
                **{f.name: (f, f"@step-{s}") for s, f in step_files(folder).items()}}
    saved = store.logged(run_id, "checkpoint_saved")
    when = _saved_when(saved)
    known = {LAST: saved[-1] if saved else None,
             BEST: next((e for e in reversed(saved) if e.get("best_path")), None)}
    kept = []
    for path in sorted(folder.glob("*.pt"), key=lambda p: (_order(p.name), p.name)):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        # best.pt and last.prev.pt are links of an epoch or step file when that is still there: the same moment
        twin = path.name if path.name in numbered else next((n for n, (f, _) in numbered.items() if _same(f, path)),
                                                              None)
        event = (when.get(twin) or _from_name(twin)) if twin else known.get(path.name) or {}
        fork_at = "" if path.name == LAST else numbered[twin][1] if twin else None
        kept.append(KeptCheckpoint(path.name, event.get("epoch"), size, path, event.get("step"),
                                   bool(event.get("mid_epoch")), fork_at))
    return kept


def _order(name: str) -> int:
    """Epoch files first (their names sort by epoch), then step files by step, then the rest by name."""
    if _EPOCH.fullmatch(name):
        return 0
    if m := _STEP.fullmatch(name):
        return 1 + int(m.group(1))
    return 1 << 62


def _saved_when(saved: list[dict]) -> dict[str, dict]:
    """The newest CheckpointSaved of each epoch and step file name, by the file it kept (or, in logs from before
    it said so, an epoch end's epoch)."""
    when: dict[str, dict] = {}
    for event in saved:
        if event.get("kept_path"):
            when[Path(event["kept_path"]).name] = event
        elif event.get("reason") == "epoch":
            when[epoch_file(event["epoch"])] = event
    return when


def _from_name(name: str) -> dict:
    """What a file's name alone says: an epoch file its epoch (at the end), a step file its step (part-way)."""
    if m := _EPOCH.fullmatch(name):
        return {"epoch": int(m.group(1))}
    return {"step": int(_STEP.fullmatch(name).group(1)), "mid_epoch": True}


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


def parse_fork_point(text: str) -> int | str:
    """What follows the @ of `--fork RUN@...`: an epoch ("3", or its file's name "epoch-0003") as a number, or a
    checkpoint asked for by its file's name ("step-150", ".pt" optional) as that name. ValueError says what fits."""
    text = text.strip().removesuffix(".pt")
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if m := _EPOCH.fullmatch(text + ".pt"):
        return int(m.group(1))
    if _STEP.fullmatch(text + ".pt"):
        return f"step-{int(text[5:])}"
    raise ValueError("the epoch after @ must be a whole number of 1 or more, or name a checkpoint written on "
                     "demand as step-N (`scratch-tui runs show` lists a run's checkpoints)")


def fork_checkpoint(store: RunStore, run_id: str, at: int | str | None) -> Path:
    """The checkpoint a fork of the run starts from: its checkpoint of epoch `at` (a number), the one asked for
    at a step (`at` "step-150", from `parse_fork_point`), or its last one (None). LookupError says which there
    are."""
    if not isinstance(at, str):
        return epoch_checkpoint(store, run_id, at)
    run_id = store.resolve(run_id)
    files = step_files(store.checkpoint_dir(run_id))
    step = int(at.removeprefix("step-"))
    if step in files:
        return files[step]
    have = ", ".join(f"step-{s}" for s in files) or "none (`c` in the app or `scratch-tui runs control RUN " \
                                                     "checkpoint` saves one)"
    raise LookupError(f"run {run_id} has no checkpoint {step_file(step)}; on-demand checkpoints: {have}")


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


def stable_name(path: Path) -> str:
    """The name of the file that keeps `path`'s state for good: last.pt changes at every save, the epoch or step
    file linked to it does not (last.pt itself when none is: a stop's checkpoint part-way through an epoch)."""
    if path.name != LAST:
        return path.name
    folder = path.parent
    twins = [*epoch_files(folder).values(), *step_files(folder).values()]
    return next((f.name for f in twins if _same(f, path)), path.name)


def prune_checkpoints(store: RunStore, run_id: str, keep: int = 1) -> list[Path]:
    """Delete a stopped or finished run's old checkpoints: all but the newest `keep` epoch checkpoints and the
    best, all but the newest `keep` checkpoints asked for, and the previous-last fallback, which only a running
    run needs; returns what was deleted. ValueError for a run that is training (it prunes its own as it saves)."""
    record = store.get_run(run_id)
    if record.state.active:
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
