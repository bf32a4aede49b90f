"""Checkpoints: a run's whole state in one file, written atomically, read without running code.

A checkpoint is `torch.save` of plain containers and tensors only:

    {"format": 1, "meta": "<JSON: config, run id, epoch, step, base lr, ...>",
     "model": state_dict, "optimizer": state_dict, "rng": {...}, "position": {...}}

`position` is there only when saved part-way through an epoch. Loading uses
`torch.load(weights_only=True)`, which refuses any pickled class or function, so a
crafted file cannot run code; config and metadata travel as a JSON string for the same reason.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import torch

from .config import ConfigError, TrainConfig

FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, foreign or unsafe; the message names the file."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: TrainConfig
    run_id: str | None
    epoch: int  # epochs completed
    step: int
    mid_epoch: bool  # saved part-way through epoch `epoch + 1`
    meta: dict[str, Any]
    state: dict[str, Any]  # what TrainingRun.restore takes


def save_checkpoint(path: str | Path, run: Any, reason: str = "epoch") -> Path:
    """Write `run.snapshot()` to `path` atomically: the old file stays whole until the new one is."""
    path = Path(path)
    state = run.snapshot()
    progress = state.pop("progress")
    meta = {"format": FORMAT, "run_id": run.run_id, "config": run.config.to_dict(), **progress,
            "reason": reason, "saved_at": time.time(), "torch": torch.__version__}
    payload = {"format": FORMAT, "meta": json.dumps(meta), **state}
    write_atomically(path, lambda fh: torch.save(payload, fh))
    return path


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f".{path.name}.*.tmp"):  # from a process killed mid-write
        leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def keep_as_best(last: Path, best: Path) -> None:
    """Make `best` the same bytes as `last`: a hard link when the filesystem has them (no copy), atomically."""
    tmp = best.with_name(f".{best.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(last, tmp)
    except OSError:
        shutil.copyfile(last, tmp)
    os.replace(tmp, best)
    _fsync_dir(best.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS can open a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about old pickle protocols before refusing them
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} holds pickled objects other than tensors and plain data; refused to load it "
                              f"because that could run code. Load only checkpoints scratch-tui wrote") from None
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, ValueError, ...
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({_first_line(exc)}); resume from another "
                              f"checkpoint or start the run again") from None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("meta"), str)):
        raise CheckpointError(f"{path} is not a scratch-tui checkpoint (format {FORMAT})")
    try:
        meta = json.loads(data["meta"])
        config = TrainConfig.from_dict(meta["config"])
        progress = {k: meta[k] for k in ("epoch", "step", "base_lr", "seconds", "device_type")}
        if "position" in data:
            progress["batches_done"] = int(meta["batches_done"])
        state = {k: data[k] for k in ("model", "optimizer", "rng")}
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is not a usable scratch-tui checkpoint ({_first_line(exc)})") from None
    state["progress"] = progress
    if "position" in data:
        state["position"] = data["position"]
    return Checkpoint(path=path, config=config, run_id=meta.get("run_id"), epoch=int(progress["epoch"]),
                      step=int(progress["step"]), mid_epoch="position" in data, meta=meta, state=state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
