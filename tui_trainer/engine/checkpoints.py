"""Checkpoints: a run's whole state in one file, written atomically, read without running code.

A checkpoint is `torch.save` of plain containers and tensors only:

    {"format": 1, "meta": "<JSON: config, run id, epoch, step, base lr, ...>", "checksum": "<sha256>",
     "model": state_dict, "optimizer": state_dict, "rng": {...}, "position": {...}}

`position` is there only when saved part-way through an epoch. `checksum` covers the meta and
every tensor and number of the state, so flipped bytes are refused instead of resumed; a file
without one (its key deleted) is refused too, as it cannot be told from a tampered one. The meta
names the run, its settings (so its model) and the shape of every parameter: a reader that says
whose checkpoint it expects (`load_checkpoint(path, run_id=..., config=...)`) refuses another
run's file, or one whose model is not the run's (CheckpointForeign). Loading uses
`torch.load(weights_only=True)`, which refuses any pickled class or function, so a
crafted file cannot run code; config and metadata travel as a JSON string for the same reason.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
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

from .config import ConfigError, TrainConfig, applies

from .checkpoint_files import remove_stale_temporaries, temporary_prefix

FORMAT = 1
_HEADER = ("format", "meta", "checksum")  # a checkpoint's keys that are not the run's state
# the settings a checkpoint's weights are made of: a run's own checkpoints all have its values
MODEL_SETTINGS = ("dataset", "model", "hidden", "model_args", "model_source")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, foreign or unsafe; the message names the file."""


class CheckpointDamaged(CheckpointError):
    """The file is there but its bytes are not what was saved (cut short, flipped): another may be whole."""


class CheckpointForeign(CheckpointError):
    """A whole checkpoint, but not of the run that asked for it (another run's file, another model): refused,
    never resumed or evaluated in the run's name."""


class CheckpointNotWritten(CheckpointError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is kept whole.

    `remedy` says what the user must do before the run can go on ("free some space")."""

    def __init__(self, message: str, remedy: str):
        super().__init__(message)
        self.remedy = remedy


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
    meta = {"format": FORMAT, "run_id": run.run_id, "config": run.config.to_dict(), "threads": run.threads,
            "shapes": _shapes(state["model"]), **progress,
            "reason": reason, "saved_at": time.time(), "torch": torch.__version__}
    meta_text = json.dumps(meta)
    payload = {"format": FORMAT, "meta": meta_text, "checksum": _checksum(meta_text, state), **state}
    try:
        write_atomically(path, lambda fh: torch.save(payload, fh))
    except Exception as exc:
        cause = _os_error(exc)
        if cause is None:
            raise
        # torch reports a failed write as "[enforce fail at inline_container.cc:...]", with the
        # OSError that says why only in its chain: name the reason and the folder instead
        raise CheckpointNotWritten(*_why_not_written(cause, path.parent)) from None
    return path


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (itself, or in its chain of causes), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _why_not_written(error: OSError, folder: Path) -> tuple[str, str]:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk holding {folder}", "free some space"
    if error.errno == errno.EROFS:
        return f"{folder} is on a read-only disk", "make it writable"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {folder}", "make it writable"
    return f"cannot write a checkpoint in {folder} ({error.strerror or error})", "fix that"


def _shapes(weights: Any) -> dict[str, list[int]]:
    """The shape of each parameter and buffer of a model's state_dict, as the meta keeps them."""
    if not isinstance(weights, dict):
        return {}
    return {str(name): list(t.shape) for name, t in weights.items() if isinstance(t, torch.Tensor)}


def _checksum(meta: str, state: dict[str, Any]) -> str:
    """sha256 of the meta and of every value of the state, tensors by dtype, shape and bytes."""
    digest = hashlib.sha256(meta.encode())
    _feed(digest, {k: v for k, v in state.items() if k not in _HEADER})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(b"D%d" % len(value))
        for key in sorted(value, key=repr):  # keys are names or parameter numbers
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(b"L%d" % len(value))
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)  # from a process killed mid-write
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temporary_prefix(path.name), suffix=".tmp")
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
    tmp = best.with_name(f"{temporary_prefix(best.name)}{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(last, tmp)
        except OSError:
            shutil.copyfile(last, tmp)
        os.replace(tmp, best)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a copy cut short by a full disk must not stay behind
        raise CheckpointNotWritten(*_why_not_written(exc, best.parent)) from None
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, run_id: str | None = None,
                    config: TrainConfig | None = None) -> Checkpoint:
    """The checkpoint at `path`, checked whole (its checksum, its shapes); with `run_id` (and `config`, the
    run's settings), CheckpointForeign unless it is that run's, of that run's model."""
    checkpoint = _load(Path(path), map_location)
    if run_id is not None:
        _check_owner(checkpoint, run_id, config)
    return checkpoint


def _check_owner(checkpoint: Checkpoint, run_id: str, config: TrainConfig | None) -> None:
    def model_of(c: TrainConfig) -> str:
        return c.model + (f" {','.join(map(str, c.hidden))}" if applies("hidden", c) else "")

    path, theirs = checkpoint.path, checkpoint.run_id
    if theirs != run_id:
        whose = f"run {theirs}'s" if theirs else "an unrecorded run's"
        raise CheckpointForeign(f"{path} is {whose} checkpoint ({model_of(checkpoint.config)}), not run {run_id}'s: "
                                f"refused; put the run's own file back, or fork run {theirs or 'it'} instead")
    differ = [name for name in MODEL_SETTINGS if config is not None and
              getattr(checkpoint.config, name) != getattr(config, name)]
    if differ:
        raise CheckpointForeign(f"{path} holds a {model_of(checkpoint.config)} model, but run {run_id} trains a "
                                f"{model_of(config)} ({', '.join(differ)} differ): refused; start the run again")


def _load(path: Path, map_location: str | torch.device) -> Checkpoint:
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
        raise CheckpointDamaged(f"{path} is damaged or not a checkpoint ({_first_line(exc)}); resume from another "
                                f"checkpoint or start the run again") from None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("meta"), str)):
        raise CheckpointError(f"{path} is not a scratch-tui checkpoint (format {FORMAT})")
    if not isinstance(data.get("checksum"), str):
        raise CheckpointError(f"{path} carries no checksum, so it cannot be told from a tampered file: refused; "
                              f"resume from another checkpoint or start the run again")
    if data["checksum"] != _checksum(data["meta"], data):
        raise CheckpointDamaged(f"{path} is damaged: its contents no longer match the checksum saved with them; "
                                f"resume from another checkpoint or start the run again")
    try:
        meta = json.loads(data["meta"])
        config = TrainConfig.from_dict(meta["config"])
        progress = {k: meta[k] for k in ("epoch", "step", "base_lr", "seconds", "device_type")}
        if "position" in data:
            progress["batches_done"] = int(meta["batches_done"])
        state = {k: data[k] for k in ("model", "optimizer", "rng")}
        shapes = meta.get("shapes")  # files of this version before shapes were kept: the checksum vouches alone
    except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{path} is not a usable scratch-tui checkpoint ({_first_line(exc)})") from None
    if shapes is not None and shapes != _shapes(state["model"]):
        raise CheckpointDamaged(f"{path} is damaged: its weights are not of the shapes it names; resume from another "
                                f"checkpoint or start the run again")
    state["progress"] = progress
    # best_weights: kept for early stopping's restore of the best epoch; ema: the weights' moving average
    for key in ("position", "best_weights", "ema"):
        if key in data:
            state[key] = data[key]
    return Checkpoint(path=path, config=config, run_id=meta.get("run_id"), epoch=int(progress["epoch"]),
                      step=int(progress["step"]), mid_epoch="position" in data, meta=meta, state=state)


def without_steering(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint with its early-stopping, plateau and best-epoch state left out: a run built from it (a fork)
    watches its own epochs from scratch, with fresh patience, a fresh plateau count and no best epoch yet.

    That state is the monitor's plain numbers (in the meta, and in the progress once `from_checkpoint` has read
    them) and the best epoch's weights kept for restore_best; the weights, optimizer, schedule and RNGs stay."""
    meta = {k: v for k, v in checkpoint.meta.items() if k != "monitor"}
    state = {k: v for k, v in checkpoint.state.items() if k != "best_weights"}
    state["progress"] = {k: v for k, v in state["progress"].items() if k != "monitor"}
    return dataclasses.replace(checkpoint, meta=meta, state=state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
