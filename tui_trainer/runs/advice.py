"""What to do next with a run, said to its user: the sentences that name scratch-tui's commands, built from the
facts the store gives (what a run left, which process trains it). The store holds no such sentence; these are
shown by the CLI, by a RunHandle's refusals, and in the endings written when a run's process is gone or stopped
at once (so every later view of the run says the same)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.events import RunState

if TYPE_CHECKING:  # names for the annotations only: the store itself writes this advice into its endings
    from .store.records import RunLeft, RunRecord


def resume_advice(run_id: str, left: RunLeft | None) -> str:
    """What to do with a run that ended early, by what it left (`RunStore.left_behind`; None where the store
    could not say): resume it from its checkpoint, finish it (its epochs are done but it was never evaluated), or
    start it again (it has no checkpoint)."""
    if left is None:
        return f"`scratch-tui runs show {run_id}` says what it left"
    if not left.checkpoint:
        return (f"it saved no checkpoint to resume from; `scratch-tui runs show {run_id}` gives the command "
                f"that starts it again")
    if left.unevaluated:
        return (f"it trained all {left.epochs} epochs but was not evaluated; `scratch-tui train --resume {run_id}` "
                f"evaluates it and marks it finished")
    return f"`scratch-tui train --resume {run_id}` continues from its last checkpoint"


def still_running(record: RunRecord, host: str) -> str:
    """Why the run cannot be resumed now: a process trains it (named, with how to stop it; `host` is this
    process's), or it waits in the queue."""
    if record.status == RunState.QUEUED:
        return (f"run {record.id} is queued, not stopped: the queue's runner starts it (`scratch-tui queue ls`); "
                f"`scratch-tui queue rm {record.id}` takes it off the queue")
    where = f"pid {record.pid}" + (f" on {record.host}" if record.host != host else "")
    return f"run {record.id} is still running ({where}); stop it first with `scratch-tui runs control {record.id} stop`"
