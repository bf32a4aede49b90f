"""The queue of runs, kept in the run store, and the runner that works through it.

A queued run is an ordinary recorded run: its row exists from the moment it is queued (status
`queued`, its log starting with RunQueued), so every list shows it, and it trains through the same
`scratch-tui train --run-id` process as any background run. The queue's runner is a process of its
own (`start_runner`, `scratch-tui queue _runner`): no terminal owns it, only one works on a store at a
time, it starts queued runs in order while a device has a free slot, and it exits once the queue is
empty or paused (`ensure_runner` starts it again). Pausing the queue starts nothing new; the runs
already training go on.

The API the app and the CLI use (ids may be unique prefixes):

    enqueue(store, configs, sweep_id=None, sweep_name="", names=None) -> list[str]   run ids, in queue order
    new_sweep_id() -> str
    queued(store, include_running=False) -> list[QueuedRun]   waiting runs in order (then those it started)
    move(store, run_id, to=None, by=None) -> int              to a 1-based position, or by +/-n; the new one
    cancel(store, run_id) -> None                             a queued run is deleted: it never trained
    pause_queue(store) / resume_queue(store) -> int | None    resume starts the runner; its pid if it did
    set_per_device(store, n) -> None                          runs at a time per device (default 1)
    ensure_runner(store) -> int | None                        start the runner when there is work for it
    runner_status(store) -> QueueStatus
    run_queue(store, poll_s) -> int                           the runner's loop (the hidden CLI calls it)

Bad input raises QueueError (a ValueError) whose message names the field and how to fix it.

Device slots: a run takes the device its config names, `auto` resolved as training resolves it
(cuda when present). With several GPUs, an `auto` or `cuda` run is pinned to the first GPU with a free
slot. Every run training on this host counts against its device's slots, not only the queue's.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from ..engine.config import TrainConfig
from ..engine.events import RunState
from .spawn import SpawnError, start_queued, start_runner
from .store import RunNotFound, RunStore, process_alive, process_token

PAUSED = "queue.paused"
PER_DEVICE = "queue.per_device"
DEFAULT_PER_DEVICE = 1
POLL_S = 0.5  # how often the runner looks for free slots
RUNNER_STALE_S = 60.0  # a runner on another host that has not beaten for this long is gone


class QueueError(ValueError):
    """Bad input for the queue; the message names the field and how to fix it."""


@dataclass(frozen=True)
class QueuedRun:
    position: int | None  # 1-based place among the waiting runs; None once started
    id: str
    name: str
    state: RunState
    config: TrainConfig
    sweep_id: str
    sweep_name: str


@dataclass(frozen=True)
class QueueStatus:
    runner_pid: int | None  # the runner working through the queue, None when none is
    paused: bool
    per_device: int
    waiting: int  # runs queued and not yet started

    @property
    def running(self) -> bool:
        return self.runner_pid is not None


def new_sweep_id() -> str:
    return secrets.token_hex(4)


def enqueue(store: RunStore, configs: Iterable[TrainConfig], sweep_id: str | None = None, sweep_name: str = "",
            names: Iterable[str] | None = None) -> list[str]:
    """Queue one run per config, at the end of the queue, all or none. Does not start the runner."""
    configs = list(configs)
    names = list(names) if names is not None else [""] * len(configs)
    if not configs:
        raise QueueError("nothing to queue: give at least one config")
    if len(names) != len(configs):
        raise QueueError(f"names: got {len(names)} for {len(configs)} configs; give one name per config")
    return store.create_queued(list(zip(configs, names)), sweep_id or "", sweep_name)


def queued(store: RunStore, include_running: bool = False) -> list[QueuedRun]:
    """The waiting runs in queue order; with include_running, then the queue's runs still training."""
    store.mark_interrupted()
    rows = store.query("SELECT id, name, status, paused, config, sweep_id, sweep_name FROM runs "
                       "WHERE status = 'queued' ORDER BY queue_order, created_at, id")
    found = [_queued_run(i, row) for i, row in enumerate(rows, 1)]
    if include_running:
        rows = store.query("SELECT id, name, status, paused, config, sweep_id, sweep_name FROM runs "
                           "WHERE status = 'running' AND queue_order IS NOT NULL ORDER BY queue_order, id")
        found += [_queued_run(None, row) for row in rows]
    return found


def _queued_run(position: int | None, row: tuple) -> QueuedRun:
    run_id, name, status, paused, config, sweep_id, sweep_name = row
    state = RunState.PAUSED if paused and status == "running" else RunState(status)
    return QueuedRun(position, run_id, name, state, TrainConfig.from_dict(json.loads(config)), sweep_id, sweep_name)


def _waiting_id(store: RunStore, run_id: str) -> str:
    full = store.resolve(run_id)
    status = store.query("SELECT status FROM runs WHERE id = ?", (full,))[0][0]
    if status != RunState.QUEUED:
        how = (f"stop it with `scratch-tui runs control {full} stop`" if status == "running"
               else "`scratch-tui queue ls` lists the queued runs")
        raise QueueError(f"run {full} is not queued (it is {status}); {how}")
    return full


def move(store: RunStore, run_id: str, to: int | None = None, by: int | None = None) -> int:
    """Move a queued run to the 1-based position `to`, or `by` places (negative: towards the front);
    returns its new position."""
    if (to is None) == (by is None):
        raise QueueError("move: give either a position or a number of places")
    full = _waiting_id(store, run_id)
    with store.transaction() as db:
        order = [r[0] for r in db.execute("SELECT id FROM runs WHERE status = 'queued' "
                                          "ORDER BY queue_order, created_at, id")]
        if full not in order:
            raise QueueError(f"run {full} is not queued any more; `scratch-tui queue ls` lists the queued runs")
        here = order.index(full) + 1
        target = to if to is not None else here + by
        if to is not None and not 1 <= to <= len(order):
            raise QueueError(f"position: got {to}; the queue has positions 1 to {len(order)}")
        target = min(max(target, 1), len(order))  # moving past either end stops there
        order.remove(full)
        order.insert(target - 1, full)
        base = db.execute("SELECT coalesce(min(queue_order), 1) FROM runs WHERE status = 'queued'").fetchone()[0]
        db.executemany("UPDATE runs SET queue_order = ? WHERE id = ?",
                       [(base + i, queued_id) for i, queued_id in enumerate(order)])
    return target


def cancel(store: RunStore, run_id: str) -> None:
    """Take a run off the queue. It never trained, so it is deleted, log and all: what `rm` means."""
    full = _waiting_id(store, run_id)
    with store.transaction() as db:
        # only while still queued: a runner that started it a moment ago wins, and it is not deleted
        if db.execute("SELECT 1 FROM runs WHERE id = ? AND status = 'queued'", (full,)).fetchone() is None:
            raise QueueError(f"run {full} has just started; stop it with `scratch-tui runs control {full} stop`")
        for table, column in (("run_events", "run_id"), ("commands", "run_id"), ("runs", "id")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (full,))


def pause_queue(store: RunStore) -> None:
    store.set_setting(PAUSED, "1")


def resume_queue(store: RunStore) -> int | None:
    store.set_setting(PAUSED, None)
    return ensure_runner(store)


def set_per_device(store: RunStore, n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise QueueError(f"per-device: got {n!r}; must be a whole number of runs, 1 or more")
    store.set_setting(PER_DEVICE, str(n))


def _per_device(store: RunStore) -> int:
    try:
        return max(1, int(store.setting(PER_DEVICE) or DEFAULT_PER_DEVICE))
    except ValueError:  # written by hand: the default rather than a runner that cannot start
        return DEFAULT_PER_DEVICE


def runner_status(store: RunStore) -> QueueStatus:
    rows = store.query("SELECT pid, pid_token, host, beat_at FROM queue_runner")
    pid = rows[0][0] if rows and _alive(store, *rows[0]) else None
    waiting = store.query("SELECT count(*) FROM runs WHERE status = 'queued'")[0][0]
    return QueueStatus(pid, store.setting(PAUSED) is not None, _per_device(store), waiting)


def _alive(store: RunStore, pid: int, token: str | None, host: str, beat_at: float) -> bool:
    if host == store.host:
        return process_alive(pid, token)
    return time.time() - beat_at < RUNNER_STALE_S  # no way to ask another host's kernel: its heartbeat


def ensure_runner(store: RunStore) -> int | None:
    """Start the runner if the queue has waiting runs, is not paused and has no runner; its pid, or None."""
    status = runner_status(store)
    if status.running or status.paused or not status.waiting:
        return None
    return start_runner(store)


# -- the runner ------------------------------------------------------------------------------------------------
def run_queue(store: RunStore, poll_s: float = POLL_S) -> int:
    """Work through the queue until it is empty or paused; returns how many runs this runner started
    (0 at once when another runner already works on this store)."""
    if not _claim_runner(store):
        return 0
    children: set[int] = set()
    started = 0
    try:
        while True:
            _reap(children)
            store.mark_interrupted()
            if _release_if_done(store):
                break
            pids = _start_what_fits(store)
            children.update(pids)
            started += len(pids)
            with store.transaction() as db:
                db.execute("UPDATE queue_runner SET beat_at = ? WHERE pid = ? AND host = ?",
                           (time.time(), os.getpid(), store.host))
            time.sleep(poll_s)
    finally:
        with store.transaction() as db:
            db.execute("DELETE FROM queue_runner WHERE pid = ? AND host = ?", (os.getpid(), store.host))
    return started


def _claim_runner(store: RunStore) -> bool:
    pid = os.getpid()
    with store.transaction() as db:
        row = db.execute("SELECT pid, pid_token, host, beat_at FROM queue_runner").fetchone()
        if row and (row[0], row[2]) != (pid, store.host) and _alive(store, *row):
            return False
        db.execute("INSERT OR REPLACE INTO queue_runner (id, pid, pid_token, host, beat_at) VALUES (1, ?, ?, ?, ?)",
                   (pid, process_token(pid), store.host, time.time()))
    return True


def _release_if_done(store: RunStore) -> bool:
    """In one transaction with the check, so a run queued meanwhile either sees this runner or none."""
    with store.transaction() as db:
        paused = db.execute("SELECT 1 FROM settings WHERE key = ?", (PAUSED,)).fetchone()
        waiting = db.execute("SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1").fetchone()
        if waiting and not paused:
            return False
        db.execute("DELETE FROM queue_runner WHERE pid = ? AND host = ?", (os.getpid(), store.host))
    return True


def _start_what_fits(store: RunStore) -> list[int]:
    """Start the waiting runs, in order, that a device has a free slot for; their pids."""
    limit = _per_device(store)
    busy: Counter[str] = Counter()
    for config, device in store.query("SELECT config, device FROM runs WHERE status = 'running' AND host = ?",
                                      (store.host,)):
        busy[_slot(device or json.loads(config).get("device", "auto"))] += 1
    started = []
    for run in queued(store):
        slot = next((s for s in _candidates(run.config.device) if busy[s] < limit), None)
        if slot is None:
            continue
        # pinned only where there is a choice to make, so a run's config says what was asked elsewhere
        pin = slot if len(_candidates(run.config.device)) > 1 else None
        try:
            spawned = start_queued(store, run.id, pin)
        except (SpawnError, RunNotFound) as exc:
            print(f"run {run.id} could not start: {exc}", flush=True)
            continue
        if spawned is not None:
            print(f"started run {run.id} on {slot} (pid {spawned.pid})", flush=True)
            busy[slot] += 1
            started.append(spawned.pid)
    return started


def _candidates(device: str) -> list[str]:
    """The slots a run asking for `device` may take, in order of preference."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [_slot(device)]


def _slot(device: str) -> str:
    """The device a name trains on, as one slot key ('cuda' and 'auto' on a GPU box are cuda:0)."""
    from ..engine.devices import DeviceError, resolve_device

    try:
        resolved = resolve_device(device)
    except DeviceError:
        return device  # the run fails with the engine's message when it starts; it still takes a turn
    return f"cuda:{resolved.index or 0}" if resolved.type == "cuda" else resolved.type


def _reap(children: set[int]) -> None:
    """Collect the runs this runner started that have ended, so they do not linger as zombies."""
    for pid in list(children):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
        except ChildProcessError:
            children.discard(pid)
