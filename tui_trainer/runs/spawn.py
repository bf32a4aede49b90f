"""The one way to start `scratch-tui train` as a process: in a session of its own, recorded, logging to a file.

No terminal owns the process, so closing the terminal, losing SSH or killing whoever started
it leaves the run training; only a stop command (or a signal sent to it) ends it. The queue's
runner is started the same way (`start_runner`), and starts queued runs with `start_queued`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..engine.config import ConfigError, TrainConfig
from ..engine.events import RunFailed
from .store import RunStore, still_running


class SpawnError(RuntimeError):
    """The background process could not be started; the message says why."""


@dataclass(frozen=True)
class Spawned:
    run_id: str
    pid: int
    log: Path


def start_run(store: RunStore, config: TrainConfig) -> Spawned:
    """Create the run and start training it in the background."""
    return start_created(store, store.create_run(config))


def start_created(store: RunStore, run_id: str) -> Spawned:
    """Start training a run whose row (and first events: a fork's, a replay's, a queue's) already exists."""
    try:
        spawned = _spawn(store, run_id, ["--run-id", run_id])
    except SpawnError as exc:
        store.end_run(run_id, RunFailed(message=str(exc)))
        raise
    store.set_process(run_id, spawned.pid)  # from now on the child's life is the run's
    return spawned


def resume_in_background(store: RunStore, run_id: str, epochs: int | None = None) -> Spawned:
    """Continue a stopped run from its last checkpoint in the background (check it can be resumed first).

    Raises StoreError while another process trains the run."""
    if not store.claim(run_id, os.getpid()):  # ours until the child takes it: no second resume meanwhile
        raise still_running(store, store.get_run(run_id))
    try:
        spawned = _spawn(store, run_id, ["--resume", run_id, *(["--epochs", str(epochs)] if epochs is not None
                                                                  else [])])
    except SpawnError as exc:  # claimed, but nobody will train it: say so, keeping what it had done
        record = store.get_run(run_id)
        store.end_run(run_id, RunFailed(message=str(exc), epochs_done=record.epochs_done, seconds=record.duration_s))
        raise
    # Running from now, not from the child's first event seconds later: a viewer that opens the
    # run meanwhile waits for the new segment instead of seeing the old ending and leaving.
    store.set_process(run_id, spawned.pid, resuming=True)
    return spawned


def start_queued(store: RunStore, run_id: str, device: str | None = None) -> Spawned | None:
    """Start training a queued run (its full id) in the background, pinned to `device` when given; None when
    it is no longer queued (cancelled, or started by someone else)."""
    if not store.take_queued(run_id, os.getpid(), device):
        return None
    return start_created(store, run_id)


RUNNER_LOG = "queue-runner.log"


def start_runner(store: RunStore) -> int:
    """Start the queue's runner (`scratch-tui queue _runner`) in the background; returns its pid. A runner
    that finds another already working exits at once, so starting one too many is harmless."""
    log = store.root / "logs" / RUNNER_LOG
    return _detached([sys.executable, "-m", "tui_trainer", "queue", "_runner", "--runs-dir",
                      str(store.db_path.resolve())], log)


def _spawn(store: RunStore, run_id: str, args: list[str]) -> Spawned:
    log = store.log_path(run_id)
    train_args = ["--runs-dir", str(store.db_path.resolve()), *args, "--no-hangup"]
    try:
        gpus = store.get_run(run_id).train_config().gpus
    except ConfigError:
        gpus = 1  # the child reads the config too, and fails the run saying what is wrong with it
    if gpus > 1:  # torchrun starts a process per GPU; each reads the run from the store, rank 0 records it
        from ..engine.distributed import gpus_missing, ranks_command

        if (missing := gpus_missing(gpus)) is not None:
            raise SpawnError(missing)
        command = ranks_command(gpus, train_args)
    else:
        command = [sys.executable, "-m", "tui_trainer", "train", *train_args]
    return Spawned(run_id, _detached(command, log), log)


def _detached(command: list[str], log: Path) -> int:
    """Start `command` in a session of its own, immune to SIGHUP, its output appended to `log`; its pid."""
    # An ignored signal stays ignored across exec: the child is immune from its first instruction,
    # not only once it has imported torch and reached the training loop.
    hangup = getattr(signal, "SIGHUP", None)
    previous = signal.signal(hangup, signal.SIG_IGN) if hangup else None
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError as exc:
        raise SpawnError(f"the background process did not start ({exc})") from None
    finally:
        if hangup:
            signal.signal(hangup, previous)
    return child.pid
