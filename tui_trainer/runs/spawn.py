"""The one way to start a training process: the run worker, in a session of its own, logging to a file.

    start_run(store, config) / start_created(store, run_id)     a new run (a fork's, a replay's made already)
    resume_in_background(store, run_id, epochs)                 a stopped run, from its last checkpoint
    start_queued(store, run_id, device)                         a queued run (the queue's runner)
    start_pack(store, run_ids, device)                          queued runs of one shape, as one pack (the runner)
    start_runner(store)                                         the queue's runner itself

Each starts `python -m tui_trainer.runs.worker RUN_ID --store PATH` (runs/worker.py builds the run from its log),
under torchrun, one process per GPU, for a run on several GPUs; the runner is `python -m tui_trainer.runs.queue`.
No terminal owns the process, so closing the terminal, losing SSH or killing whoever started it leaves the run
training; only a stop command (or a signal sent to it) ends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..engine.config import ConfigError, TrainConfig
from .store import RunStore
from .worker import MODULE as WORKER, claim, fail, worker_args


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
    """Start training a run whose row (and first events: a fork's, a replay's, a queue's) already exists and is
    this process's (it made or took it): the worker it starts is handed the run."""
    try:
        spawned = _spawn(store, run_id)
    except SpawnError as exc:
        fail(store, run_id, str(exc))
        raise
    store.set_process(run_id, spawned.pid)  # from now on the child's life is the run's
    return spawned


def resume_in_background(store: RunStore, run_id: str, epochs: int | None = None) -> Spawned:
    """Continue a stopped run from its last checkpoint, in the background (to `epochs` in all).

    The run is claimed here, once, for the worker this starts, which takes it over without claiming it again: so
    a refused resume starts no process, and a viewer opening the run at once sees it starting, not as it ended.
    Whether it can resume (its checkpoint, the epochs asked) is the worker's to find out; one that cannot ends
    with RunFailed in its log saying why. Raises StoreError while another process trains the run (or it waits in
    the queue), SpawnError when no process could start."""
    claim(store, run_id)
    try:
        spawned = _spawn(store, run_id, epochs)
    except SpawnError as exc:  # claimed, but nobody will train it: say so, keeping what it had done
        fail(store, run_id, str(exc))
        raise
    store.set_process(run_id, spawned.pid, resuming=True)
    return spawned


def start_queued(store: RunStore, run_id: str, device: str | None = None) -> Spawned | None:
    """Start training a queued run (its full id) in the background, pinned to `device` when given; None when
    it is no longer queued (cancelled, or started by someone else)."""
    if not store.take_queued(run_id, os.getpid(), device):
        return None
    return start_created(store, run_id)


def start_pack(store: RunStore, run_ids: list[str], device: str | None = None) -> Spawned | None:
    """Start queued runs of one shape (engine/pack.py) as one pack: one worker process trains them together, each
    recorded as its own run. The runs no longer queued are left out; one left alone starts as `start_queued` does.
    None when none was still queued."""
    taken = [run_id for run_id in run_ids if store.take_queued(run_id, os.getpid(), device)]
    if len(taken) <= 1:
        return start_created(store, taken[0]) if taken else None
    args = worker_args(store, taken[0])
    command = [sys.executable, "-m", WORKER, *args[:1], *taken[1:], *args[1:]]
    log = store.root / "logs" / f"pack-{taken[0]}.log"  # the process's own; each run's lines go to its own log
    try:
        pid = _detached(command, log)
    except SpawnError as exc:
        for run_id in taken:
            fail(store, run_id, str(exc))
        raise
    for run_id in taken:
        store.set_process(run_id, pid)
    return Spawned(taken[0], pid, log)


RUNNER_LOG = "queue-runner.log"


def start_runner(store: RunStore) -> int:
    """Start the queue's runner in the background; returns its pid. A runner that finds another already working
    exits at once, so starting one too many is harmless."""
    log = store.root / "logs" / RUNNER_LOG
    return _detached([sys.executable, "-m", "tui_trainer.runs.queue", "--store", str(store.db_path.resolve())], log)


def _spawn(store: RunStore, run_id: str, epochs: int | None = None) -> Spawned:
    log = store.log_path(run_id)
    args = worker_args(store, run_id, epochs)
    try:
        gpus = store.get_run(run_id).train_config().gpus
    except ConfigError:
        gpus = 1  # the worker reads the config too, and fails the run saying what is wrong with it
    if gpus > 1:  # torchrun starts a worker per GPU; each builds the run from the store, rank 0 records it
        from ..engine.distributed import gpus_missing, ranks_command

        if (missing := gpus_missing(gpus)) is not None:
            raise SpawnError(missing)
        command = ranks_command(gpus, WORKER, args)
    else:
        command = [sys.executable, "-m", WORKER, *args]
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
