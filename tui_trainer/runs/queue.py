"""The queue of runs, kept in the run store, and the runner that works through it.

A queued run is an ordinary recorded run: its row exists from the moment it is queued (status
`queued`, its log starting with RunQueued), so every list shows it, and it trains through the same
run worker (runs/worker.py) as any background run. The queue's runner is a process of its own
(`start_runner`, `python -m tui_trainer.runs.queue --store PATH`): no terminal owns it, only one works on a store at a
time, it starts queued runs in order while a device has a free slot, and it exits once the queue is
empty or paused (`ensure_runner` starts it again). Pausing the queue starts nothing new; the runs
already training go on. A queued run this version cannot read (queued by another version, or naming a
model it has not got) is listed, and the runner ends it as failed, saying why, instead of waiting on it.

The API the app and the CLI use (ids may be unique prefixes):

    enqueue(store, configs, sweep_id=None, sweep_name="", names=None) -> list[str]   run ids, in queue order
    new_sweep_id() -> str
    queued(store, include_running=False) -> list[QueuedRun]   waiting runs in order (then those it started)
    move(store, run_id, to=None, by=None) -> int              to a 1-based position, or by +/-n; the new one
    cancel(store, run_id) -> None                             a queued run is deleted: it never trained
    pause_queue(store) / unpause_queue(store) -> int | None    resume starts the runner; its pid if it did
    set_per_device(store, n) -> None                          runs at a time per device (default 1)
    set_pack_size(store, n) -> None                           runs of one shape trained as one pack (default 8)
    ensure_runner(store) -> int | None                        start the runner when there is work for it
    runner_status(store) -> QueueStatus
    run_queue(store, poll_s) -> int                           the runner's loop (its process: `main`)

Sweeps in the store (a sweep is the runs queued together under one sweep id):

    resolve_sweep(store, sweep_id) -> str                     the full id of an id or unique prefix
    sweep_records(store, sweep_id) -> list[RunRecord]         its runs, in queue order
    sweep_results(store, sweep_id) -> list[RunResult]         the same, as the sweep table takes them (but those
                                                              this version cannot read: see RunRecord.unreadable)
    sweep_packs(store, run_ids) -> dict[str, str]             run id -> the pack it trained in, for those that did
    list_sweeps(store) -> list[SweepSummary]                  newest first

Bad input raises QueueError (a ValueError) whose message names the field and how to fix it.

Packs: queued runs of one shape (the same model and settings, data, batch size, epochs and device; engine/pack.py
says which fields may differ) start together as one pack, in one process that takes one slot, at most `pack_size`
runs a pack (`--pack N`; 1 trains each alone) and, on a GPU, no more than its free memory holds (engine/fits.py
estimates a pack's). Each is still its own run: its log, checkpoints and commands.

Device slots: a run takes the device its config names, `auto` resolved as training resolves it
(cuda when present). With several GPUs, an `auto` or `cuda` run is pinned to the first GPU with a free
slot. Every run training on this host counts against its device's slots, not only the queue's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

from ..engine.config import ConfigError, TrainConfig
from ..engine.events import RunFailed, RunState
from ..engine.user_text import shown
from ..engine.wording import counted
from .spawn import RUNNER_LOG, SpawnError, start_pack, start_queued, start_runner
from .store.processes import process_alive
from .store import QueuedRow, RunDamaged, RunNotFound, RunRecord, RunStore, stored_config, why_unreadable
from .sweep import RunResult

PAUSED = "queue.paused"
PER_DEVICE = "queue.per_device"
DEFAULT_PER_DEVICE = 1
MOST_PER_DEVICE = 32  # runs sharing one device: past a few, each waits on the others and memory runs out
PACK = "queue.pack"
# At most this many queued runs of one shape train together as one pack (engine/pack.py); 1: each alone. Measured
# on a 2-core CPU (bench/packs.py, bench/results/cpu-packs.txt): 8 mini-dataset runs end in well under half the
# wall time of one process each, and more members only lengthen the wait for the first result.
DEFAULT_PACK = 8
POLL_S = 0.5  # how often the runner looks for free slots
RETRIED = "sweep.retried."  # + a run id: the run `sweep retry` queued in its place (runs/sweep_life.py)


class QueueError(ValueError):
    """Bad input for the queue; the message names the field and how to fix it."""


@dataclass(frozen=True)
class QueuedRun:
    position: int | None  # 1-based place among the waiting runs; None once started
    id: str
    name: str
    state: RunState
    config: TrainConfig | None  # None where this version cannot read it: `unreadable` says why
    sweep_id: str
    sweep_name: str
    unreadable: str = ""


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
    found = [_queued_run(i, row) for i, row in enumerate(store.waiting(), 1)]
    if include_running:
        found += [_queued_run(None, row) for row in store.started_from_queue()]
    return found


def _queued_run(position: int | None, row: QueuedRow) -> QueuedRun:
    state = RunState.PAUSED if row.paused and row.status == RunState.RUNNING else RunState(row.status)
    try:
        return QueuedRun(position, row.id, row.name, state, stored_config(row.id, row.config), row.sweep_id,
                         row.sweep_name)
    except ConfigError:
        return QueuedRun(position, row.id, row.name, state, None, row.sweep_id, row.sweep_name,
                         unreadable=why_unreadable(row.config))


def _waiting_id(store: RunStore, run_id: str) -> str:
    full = store.resolve(run_id)
    status = store.status(full)
    if status != RunState.QUEUED:
        how = (f"stop it with `scratch-tui runs control {full} stop`" if status == RunState.RUNNING
               else "`scratch-tui queue ls` lists the queued runs")
        raise QueueError(f"run {full} is not queued (it is {status}); {how}")
    return full


def move(store: RunStore, run_id: str, to: int | None = None, by: int | None = None) -> int:
    """Move a queued run to the 1-based position `to`, or `by` places (negative: towards the front);
    returns its new position."""
    if (to is None) == (by is None):
        raise QueueError("move: give either a position or a number of places")
    full = _waiting_id(store, run_id)

    def place(here: int, waiting: int) -> int:
        if to is not None and not 1 <= to <= waiting:
            raise QueueError(f"position: got {to}; the queue has positions 1 to {waiting}")
        return min(max(to if to is not None else here + by, 1), waiting)  # moving past either end stops there

    target = store.move_queued(full, place)
    if target is None:
        raise QueueError(f"run {full} is not queued any more; `scratch-tui queue ls` lists the queued runs")
    return target


def cancel(store: RunStore, run_id: str) -> None:
    """Take a run off the queue. It never trained, so it is deleted, log and all: what `rm` means."""
    full = _waiting_id(store, run_id)
    # only while still queued: a runner that started it a moment ago wins, and it is not deleted
    if not store.remove_queued(full):
        raise QueueError(f"run {full} has just started; stop it with `scratch-tui runs control {full} stop`")


def pause_queue(store: RunStore) -> None:
    store.set_setting(PAUSED, "1")


def unpause_queue(store: RunStore) -> int | None:
    store.set_setting(PAUSED, None)
    return ensure_runner(store)


def set_per_device(store: RunStore, n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MOST_PER_DEVICE:
        raise QueueError(f"per-device: got {shown(n)}; must be a whole number of runs from 1 to {MOST_PER_DEVICE}")
    store.set_setting(PER_DEVICE, str(n))


def _count_setting(store: RunStore, key: str, default: int) -> int:
    try:
        return max(1, int(store.setting(key) or default))
    except ValueError:  # written by hand: the default rather than a runner that cannot start
        return default


def _per_device(store: RunStore) -> int:
    return _count_setting(store, PER_DEVICE, DEFAULT_PER_DEVICE)


def check_pack_size(n: int) -> None:
    """QueueError for what cannot be a pack's size, before anything is written."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise QueueError(f"pack: got {shown(n)}; must be a whole number of runs, 1 or more (1 trains each alone)")


def set_pack_size(store: RunStore, n: int) -> None:
    check_pack_size(n)
    store.set_setting(PACK, str(n))


def pack_size(store: RunStore) -> int:
    return _count_setting(store, PACK, DEFAULT_PACK)


def runner_status(store: RunStore) -> QueueStatus:
    return QueueStatus(store.queue_runner(), store.setting(PAUSED) is not None, _per_device(store),
                       store.waiting_count())


def ensure_runner(store: RunStore, study: bool = False) -> int | None:
    """Start the runner if the queue has waiting runs (or, with `study`, a study to draw them from), is not paused
    and has no runner; its pid, or None."""
    status = runner_status(store)
    if status.running or status.paused or not (status.waiting or study):
        return None
    return start_runner(store)


RUNNER_RESTARTS = 3  # a runner that dies this often while runs wait is left for the user to look at


def revive_runner(store: RunStore, started: int | None, restarts: int) -> int | None:
    """For a command that waits on queued runs: start the runner again where it is gone (killed, crashed) while
    runs wait and the queue is not paused; its pid, or None where nothing had to be done. `started`: the runner
    this command started last, which may not have claimed the queue yet. SpawnError, saying where the runner's
    output is, once it has been started again `RUNNER_RESTARTS` times."""
    status = runner_status(store)
    if status.running or status.paused or not status.waiting or process_alive(started):
        return None
    if restarts >= RUNNER_RESTARTS:
        raise SpawnError(f"the queue's runner keeps ending while {counted(status.waiting, 'run')} waited (started again "
                         f"{restarts} times); see {store.root / 'logs' / RUNNER_LOG}, then `scratch-tui queue start` "
                         f"starts it again")
    return start_runner(store)


# -- sweeps -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSummary:
    id: str
    name: str
    total: int
    done: int  # finished
    active: int  # queued or training
    best_test_acc: float | None  # of its best run
    created_at: float


def resolve_sweep(store: RunStore, sweep_id: str) -> str:
    prefix = sweep_id.strip().lower()
    found = store.sweep_ids(prefix)
    if not prefix or not found:
        raise QueueError(f"no sweep {shown(sweep_id)}; `scratch-tui sweep ls` lists them")
    if len(found) > 1:
        raise QueueError(f"sweep {shown(sweep_id)} is ambiguous ({', '.join(found)}); give more of its id")
    return found[0]


def sweep_records(store: RunStore, sweep_id: str) -> list[RunRecord]:
    """The sweep's runs (an id or unique prefix) in queue order: the order its file or setup made them."""
    full = resolve_sweep(store, sweep_id)
    store.mark_interrupted()
    records = []
    for run_id in store.sweep_run_ids(full):
        try:
            records.append(store.get_run(run_id))
        except RunNotFound:  # removed meanwhile
            continue
    return records


def sweep_results(store: RunStore, sweep_id: str) -> list[RunResult]:
    """The sweep's runs but those this version cannot read (without a config they belong to no row) and those
    queued again by `sweep retry` (their retries count instead)."""
    again = retried(store)
    return [RunResult.from_record(r) for r in sweep_records(store, sweep_id) if not r.unreadable and r.id not in again]


def retried(store: RunStore) -> set[str]:
    """The runs `sweep retry` queued again."""
    return {key[len(RETRIED):] for key, _ in store.settings_under(RETRIED)}


def sweep_packs(store: RunStore, run_ids: Iterable[str]) -> dict[str, str]:
    """Which of these runs trained together: run id -> the name of the pack it trained in (engine/pack.py), for
    those that did."""
    found = {}
    for run_id in run_ids:
        try:
            logged = store.logged(run_id, "run_started")
        except RunDamaged:  # its log cannot be read: said elsewhere; here it is one run not known to have packed
            continue
        for started in logged:
            if started.get("pack"):
                found[run_id] = started["pack"]
    return found


def list_sweeps(store: RunStore) -> list[SweepSummary]:
    store.mark_interrupted()
    return [SweepSummary(*row) for row in store.sweep_totals()]


# -- the runner ------------------------------------------------------------------------------------------------
def run_queue(store: RunStore, poll_s: float = POLL_S) -> int:
    """Work through the queue until it is empty or paused; returns how many runs this runner started
    (0 at once when another runner already works on this store)."""
    if not store.claim_queue_runner(os.getpid()):
        return 0
    children: set[int] = set()
    started = 0
    try:
        while True:
            _reap(children)
            store.mark_interrupted()
            studies = _draw_from_studies(store)
            if not studies and _release_if_done(store):
                break
            pids = _start_what_fits(store)
            children.update(pids)
            started += len(pids)
            store.beat_queue_runner(os.getpid())
            time.sleep(poll_s)
    finally:
        store.release_queue_runner(os.getpid())
    return started


def main(argv: list[str] | None = None) -> int:
    """The runner's process (spawn's `start_runner` starts it): works through the queue of one store, then says so."""
    parser = argparse.ArgumentParser(prog="python -m tui_trainer.runs.queue",
                                     description="Start the queued runs of a run store in order, while a device has "
                                                 "a free slot, until the queue is empty or paused.")
    parser.add_argument("--store", required=True, metavar="PATH", help="the run store (its folder or database)")
    args = parser.parse_args(argv)
    with RunStore(args.store) as store:
        started = run_queue(store)
        print(f"queue runner {store.host}:{os.getpid()}: started {counted(started, 'run')}; the queue is empty or paused",
              flush=True)
    return 0


def _release_if_done(store: RunStore) -> bool:
    """The runner leaves once nothing waits (or the queue is paused), in one transaction with that check, so a run
    queued meanwhile either sees this runner or none."""
    return store.release_idle_queue_runner(os.getpid(), paused=PAUSED)


def _busy_slots(store: RunStore) -> Counter[str]:
    """How many runs train on each device slot of this host now."""
    busy: Counter[str] = Counter()
    for asked, device in store.training_here():
        gpus = asked.get("gpus", 1)
        busy.update(_rank_slots(gpus) if gpus > 1 else [_slot(device or asked.get("device", "auto"))])
    return busy


# -- studies: when a slot frees, ask the study for a trial (runs/study.py) ------------------------------------------
def _draw_from_studies(store: RunStore) -> bool:
    """Queue a trial of each study this store draws from while a slot is free for it and nothing waits; keep its
    trials here beating. Whether a study may still give this box work (the runner stays for it)."""
    from .study import LINK, beat_trials, draw_trials, studies_open

    if not store.settings_under(LINK):
        return False  # no study: Optuna is never imported

    def has_slot(config: TrainConfig) -> bool:
        busy = _busy_slots(store)
        return not store.waiting_count() and any(busy[s] < _per_device(store) for s in _candidates(config.device))

    draw_trials(store, has_slot, pack_size(store))  # a slot's worth: a pack of same-shaped trials
    beat_trials(store)
    return studies_open(store)


def _start_what_fits(store: RunStore) -> list[int]:
    """Start the waiting runs, in order, that a device has a free slot for; their pids, one per run (a pack's runs
    share theirs)."""
    limit = _per_device(store)
    busy = _busy_slots(store)
    started = []
    waiting = queued(store)
    packs = form_packs(waiting, pack_size(store), lambda device: _free_memory(device, busy, limit))
    taken: set[str] = set()  # started already, in a pack
    for run in waiting:
        if run.id in taken:
            continue
        if run.config is None:
            _fail_unreadable(store, run)
            continue
        if run.config.gpus > 1:  # its ranks take cuda:0 .. cuda:N-1 (LOCAL_RANK), so it waits for all of them
            slots = _rank_slots(run.config.gpus)
            pin = None
        else:
            slot = next((s for s in _candidates(run.config.device) if busy[s] < limit), None)
            slots = [slot] if slot else []
            # pinned only where there is a choice to make, so a run's config says what was asked elsewhere
            pin = slot if len(_candidates(run.config.device)) > 1 else None
        if not slots or any(busy[s] >= limit for s in slots):
            continue
        try:
            members = packs.get(run.id)
            spawned = start_pack(store, members, pin) if members else start_queued(store, run.id, pin)
            taken.update(members or ())
        except (SpawnError, RunNotFound) as exc:
            print(f"run {run.id} could not start: {exc}", flush=True)
            continue
        if spawned is not None:
            what = f"pack {' '.join(members)}" if members else f"run {run.id}"
            print(f"started {what} on {', '.join(slots)} (pid {spawned.pid})", flush=True)
            busy.update(slots)
            started += [spawned.pid] * len(members or [run.id])  # a pid per run started: a pack's is its runs' 
    return started


def form_packs(waiting: list[QueuedRun], size: int,
               free_memory: Callable[[str], int | None] = lambda device: None) -> dict[str, list[str]]:
    """Which waiting runs train together: runs of one shape (engine/pack.py's `pack_key`: model and its settings,
    data, batch size, epochs, device, ...), in queue order, at most `size` a pack, and on a GPU at most as many as
    fit in its free memory (`free_memory(device)`, in bytes; None where nothing but `size` caps a pack) by
    engine/fits.py's estimate: the runs left over form the next pack. By the id of each pack's first run, its
    runs' ids; a run with no partner forms none."""
    if size <= 1:
        return {}
    from ..engine.pack_shape import pack_key

    free: dict[str, int | None] = {}  # asked once a device
    open_packs: dict[str, list[QueuedRun]] = {}
    packs: dict[str, list[str]] = {}
    for run in waiting:
        key = pack_key(run.config) if run.config is not None and run.config.gpus == 1 else None
        if key is None:
            continue
        members = [*open_packs.get(key, []), run]
        if len(members) > 1:
            device = run.config.device
            if device not in free:
                free[device] = free_memory(device)
            if free[device] is not None:
                from ..engine.fits import pack_fits  # torch: asked only for a GPU, where the runner has it

                if not pack_fits([m.config for m in members], free[device]):
                    members = [run]  # the open pack is full: this run opens the next
        open_packs[key] = members
        if len(members) == size:
            del open_packs[key]
        if len(members) > 1:
            packs[members[0].id] = [m.id for m in members]
    return packs


def _free_memory(device: str, busy: Counter[str], limit: int) -> int | None:
    """The free bytes of the GPU a pack asking for `device` would take now (the first with a free slot); None on
    the CPU, where only `--pack` caps a pack. Other packs started in the same pass are not yet counted."""
    slot = next((s for s in _candidates(device) if busy[s] < limit), None)
    if slot is None or not slot.startswith("cuda"):
        return None
    from ..engine.devices import gpu_stats

    # through NVML (the `gpu` extra), not torch.cuda.mem_get_info: that would give the runner a CUDA context of its
    # own, about half a GiB of the card held for as long as the runner lives. Without NVML only `--pack` caps a
    # pack, and the pack's own out-of-memory message is the backstop
    index = int(slot.partition(":")[2] or 0)
    card = next((g for g in gpu_stats() if g.cuda_index == index), None)
    if card is None or card.memory_total_bytes is None or card.memory_used_bytes is None:
        return None
    return card.memory_total_bytes - card.memory_used_bytes


def _fail_unreadable(store: RunStore, run: QueuedRun) -> None:
    """A queued run this version cannot train ends failed, saying why: left queued, it would keep the runner
    waiting for ever. Only this runner starts queued runs, so it is still queued unless someone removed it."""
    message = f"this version of scratch-tui cannot train it: {run.unreadable}"
    try:
        store.append(run.id, RunFailed(message=message))
    except RunNotFound:
        return
    print(f"run {run.id} could not start: {run.unreadable}", flush=True)


def _rank_slots(gpus: int) -> list[str]:
    return [f"cuda:{i}" for i in range(gpus)]


def _no_gpu_here() -> bool:
    """No GPU device node on a Linux box: torch would find no CUDA device either, so the runner, which only
    starts other processes, need not import it (half a gigabyte and two seconds) to learn that."""
    return sys.platform.startswith("linux") and not any(
        os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))


def _candidates(device: str) -> list[str]:
    """The slots a run asking for `device` may take, in order of preference."""
    if device in ("auto", "cuda") and not (device == "auto" and _no_gpu_here()):
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [_slot(device)]


def _slot(device: str) -> str:
    """The device a name trains on, as one slot key ('cuda' and 'auto' on a GPU box are cuda:0)."""
    if device == "cpu" or device == "auto" and _no_gpu_here():
        return "cpu"
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


if __name__ == "__main__":
    sys.exit(main())
