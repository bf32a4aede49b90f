"""The run store: every run and its event log, in one SQLite file shared by every process that trains or looks.

A run's truth is its log: every event the training process emitted (and the store's own RunInterrupted), in
order. The `runs` row is a projection of that log, updated in the same transaction as each append, so listing
runs needs no replay. This package does not import torch, so listing runs stays quick.

RunStore is the one object callers use. Its jobs are modules of their own, each a part of it:

    connection  the file: opening (read-only where it must be), transactions, StoreError and its kinds (a
                run whose log is damaged among them),
                bringing an older store forward (schema: the migrations, and how an event is packed)
    ids         a run's full id from a prefix; its checkpoint folder and log file under the runs dir
    log         append, read, and the fold (RunView) that projects each run's summary row
    commands    the command queue to the process that trains a run; an ending answers what is left in it
    liveness    which process trains a run (processes: whether a pid still lives), and the runs whose process
                is gone, each ended as interrupted with what it left
    rows        the runs table: create a run, list, read one, rename, delete
    queued      the run queue's rows and its runner's heartbeat row
    sweeps      the runs queued together as a sweep
    settings    values every process using the store shares
    records     what the store gives back: RunSummary, RunRecord, RunLeft
"""

from __future__ import annotations

from .commands import Commands
from .connection import RunDamaged, StoreBusy, StoreError, StoreFull, StoreMoved, default_runs_dir, store_paths
from .ids import RunNotFound
from .queued import Queued, QueuedRow
from .records import RunLeft, RunRecord, RunSummary, stored_config, why_unreadable
from .settings import Settings
from .sweeps import Sweeps

__all__ = ["RunStore", "RunNotFound", "RunDamaged", "StoreError", "StoreBusy", "StoreFull", "StoreMoved", "RunSummary",
           "RunRecord", "RunLeft", "QueuedRow", "stored_config", "why_unreadable", "default_runs_dir",
           "store_paths"]


class RunStore(Commands, Queued, Sweeps, Settings):
    """Runs on disk (a runs dir, or its database file). Thread-safe: one connection, one lock; every process
    opens its own store. Opening it ends the runs of this host whose process is gone (liveness)."""
