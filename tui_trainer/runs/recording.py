"""Recording a run: the one wrapper the CLI and the app share, so every run lands in the store alike.

    run = TrainingRun(config)              # or resume_run(store, run_id)
    for event in recorded(run, store):     # run.events(), plus CheckpointSaved
        ...

It creates the store row (so `run.run_id` is known before the first event), appends
each event to the run's log, writes checkpoints (every epoch end, on stop, on request),
and applies the commands queued in the store (by the app, `scratch-tui runs control`)
to `run.control`, logging each as CommandReceived.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator

from ..engine.checkpoints import BEST, LAST, CheckpointError, keep_as_best, load_checkpoint, save_checkpoint
from ..engine.config import ConfigError
from ..engine.control import TrainingControl
from ..engine.commands import apply
from ..engine.events import (BatchProgress, CheckpointSaved, CommandReceived, EpochEnded, Event, RunFailed,
                             RunInterrupted, RunStarted, RunStopped, TERMINAL_EVENTS)
from ..engine.loop import TrainingRun
from .store import RunStore, StoreError, still_running

COMMAND_POLL_S = 0.02  # how often the store is asked for queued commands: the key-to-loop budget is 50 ms


class Recording:
    """An iterator over the run's events that records them; `recorded()` makes one."""

    def __init__(self, run: TrainingRun, store: RunStore, checkpoints: bool = True,
                 command_poll_s: float = COMMAND_POLL_S):
        self.run, self.store, self.checkpoints = run, store, checkpoints
        self.command_poll_s = command_poll_s
        if run.run_id is None:
            run.run_id = store.create_run(run.config)
        self.run_id: str = run.run_id
        self._best_val_acc: float | None = None
        self._ended = False
        self._events = self._record()

    def __iter__(self) -> "Recording":
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stop reading events early: the run is checkpointed and recorded as stopped."""
        self._events.close()

    def _record(self) -> Iterator[Event]:
        run, store, run_id = self.run, self.store, self.run_id
        # Started at RunStarted: commands wait in the store until this process trains.
        poller = _CommandPoller(store, run_id, run.control, self.command_poll_s)
        events = run.events()
        try:
            for event in events:
                if isinstance(event, BatchProgress):
                    store.record(run_id, event)
                    if run.control.take_checkpoint_request():
                        saved = self._save("request")
                        yield event
                        if saved:
                            yield saved
                        continue
                    yield event
                elif isinstance(event, EpochEnded):
                    store.record(run_id, event)
                    saved = self._save("epoch", event.val_acc)
                    yield event
                    if saved:
                        yield saved
                elif isinstance(event, TERMINAL_EVENTS):
                    # No command may be logged after the ending: followers stop at the ending they see last.
                    poller.halt()
                    if isinstance(event, RunStopped):
                        saved = self._save("stop")
                        if saved:
                            yield saved
                    store.record(run_id, event)
                    self._ended = True
                    yield event
                else:
                    store.record(run_id, event)
                    if isinstance(event, RunStarted):
                        self._best_val_acc = store.get_run(run_id).best_val_acc
                        poller.start()
                    yield event
        except GeneratorExit:
            # The consumer stopped reading (the app closed): the loop waits at a yield, so its
            # state is whole; keep it and say what happened.
            if not self._ended:
                self._ended = True
                poller.halt()
                self._save("closed")
                store.record(run_id, RunStopped(epochs_done=run.epoch, seconds=run.elapsed(),
                                                reason="training stopped when its events stopped being read"))
            raise
        except KeyboardInterrupt:
            if not self._ended:
                self._ended = True
                poller.halt()
                _quietly(store.end_run, run_id, RunInterrupted(
                    message=f"stopped at once (a second Ctrl-C); `scratch-tui train --resume {run_id}` continues "
                            "from its last checkpoint", epochs_done=run.epoch, seconds=run.elapsed()))
            raise
        except BaseException as exc:
            # Setup failures (no dataset, bad device) and store or disk errors end up here.
            if not self._ended:
                self._ended = True
                poller.halt()
                _quietly(store.end_run, run_id, RunFailed(message=str(exc) or type(exc).__name__,
                                                          epochs_done=run.epoch, seconds=run.elapsed()))
            raise
        finally:
            poller.halt()
            events.close()

    def _save(self, reason: str, val_acc: float | None = None) -> CheckpointSaved | None:
        if not self.checkpoints or self.run.model is None:
            return None
        folder = self.store.checkpoint_dir(self.run_id)
        last = save_checkpoint(folder / LAST, self.run, reason)
        best = ""
        # Without validation every epoch end is the best we know of.
        if reason == "epoch" and (val_acc is None or self._best_val_acc is None or val_acc > self._best_val_acc):
            self._best_val_acc = val_acc if val_acc is not None else self._best_val_acc
            keep_as_best(last, folder / BEST)
            best = str(folder / BEST)
        event = CheckpointSaved(path=str(last), epoch=self.run.epoch, step=self.run.step, reason=reason,
                                best_path=best)
        self.store.record(self.run_id, event)
        return event


def recorded(run: TrainingRun, store: RunStore, checkpoints: bool = True) -> Recording:
    """Iterate this to train `run` and record it in `store`; see the module docstring."""
    return Recording(run, store, checkpoints)


def resume_run(store: RunStore, run_id: str, epochs: int | None = None, control: TrainingControl | None = None,
               claim: bool = True, **kwargs: Any) -> TrainingRun:
    """The run `run_id` continued from its last checkpoint (same id; record it with `recorded`).

    With `claim`, this process becomes the run's one trainer (atomically: two resumes of one run
    cannot both go on); without, it only checks that the run can be resumed.
    Raises RunNotFound, CheckpointError (no usable checkpoint), ConfigError (epochs) or
    StoreError (the run is still running).
    """
    store.mark_interrupted()
    record = store.get_run(run_id)
    me, parent = os.getpid(), os.getppid()  # a background resume's parent claimed the run for us
    if record.status == "running" and record.pid not in (me, parent):
        raise still_running(store, record)
    path = record.last_checkpoint or str(store.checkpoint_dir(record.id) / LAST)
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"run {record.id} cannot be resumed: {exc}") from None
    if epochs is None and checkpoint.epoch >= checkpoint.config.epochs and not checkpoint.mid_epoch:
        raise ConfigError({"epochs": f"epochs: run {record.id} has already trained all {checkpoint.epoch} epochs; "
                                     f"ask for more epochs to train it further"})
    run = TrainingRun.from_checkpoint(checkpoint, control, epochs=epochs, **kwargs)
    run.run_id = record.id
    if claim:
        if not store.claim(record.id, me, also=parent):
            raise still_running(store, store.get_run(record.id))
        if record.pid != me:
            store.set_process(record.id, me, resuming=True)  # viewers see it starting, not as it ended
    return run


class _CommandPoller(threading.Thread):
    """Takes queued commands from the store and applies them; a thread, because a paused loop yields
    no events. Each is logged as CommandReceived before it acts, so the log says why the run changed."""

    def __init__(self, store: RunStore, run_id: str, control: TrainingControl, every_s: float):
        super().__init__(name=f"commands-{run_id}", daemon=True)
        self.store, self.run_id, self.control, self.every_s = store, run_id, control, every_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            try:
                commands = self.store.take_commands(self.run_id)
            except StoreError:
                continue  # a store busy elsewhere must not stop training; ask again next time
            for command in commands:
                if not self._halt.is_set():  # the run has ended: nothing may follow its ending in the log
                    try:
                        self.store.record(self.run_id, CommandReceived(command.name, command.value))
                    except StoreError:
                        pass  # taken from the queue already: act on it even if the log missed it
                apply(command, self.control)

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)


def _quietly(fn: Any, *args: Any) -> None:
    """For bookkeeping on the way out, which must not hide the error that got us there."""
    try:
        fn(*args)
    except (StoreError, ValueError, LookupError):
        pass
