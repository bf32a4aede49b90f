"""Recording a run: the one wrapper the CLI and the app share, so every run lands in the store alike.

    run = TrainingRun(config)              # or resume_run(store, run_id)
    for event in recorded(run, store):     # run.events(), plus CheckpointSaved
        ...

It creates the store row (so `run.run_id` is known before the first event), stores
each event, writes checkpoints (every epoch end, on stop, on request), and passes
requests queued in the store (`scratch-tui runs control`) on to `run.control`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from ..engine.checkpoints import BEST, LAST, CheckpointError, keep_as_best, load_checkpoint, save_checkpoint
from ..engine.config import ConfigError
from ..engine.control import TrainingControl
from ..engine.events import BatchProgress, CheckpointSaved, EpochEnded, Event, RunStarted, RunStopped, TERMINAL_EVENTS
from ..engine.loop import TrainingRun
from .store import RunStore, StoreError

CONTROL_POLL_S = 0.5  # how often the store is asked for queued controls
STEP_EVERY_S = 0.2  # per-step loss is stored at most this often (progress events come ~4/s anyway)


class Recording:
    """An iterator over the run's events that records them; `recorded()` makes one."""

    def __init__(self, run: TrainingRun, store: RunStore, checkpoints: bool = True,
                 control_poll_s: float = CONTROL_POLL_S):
        self.run, self.store, self.checkpoints = run, store, checkpoints
        self.control_poll_s = control_poll_s
        if run.run_id is None:
            run.run_id = store.create_run(run.config)
        self.run_id: str = run.run_id
        self._checkpoint_requested = False
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

    def request_checkpoint(self) -> None:
        """Save a checkpoint at the next progress event (within about a second while training)."""
        self._checkpoint_requested = True

    def _record(self) -> Iterator[Event]:
        run, store, run_id = self.run, self.store, self.run_id
        # Started once RunStarted is stored, which clears requests left from before a restart.
        poller = _ControlPoller(store, run_id, run.control, self, self.control_poll_s)
        events = run.events()
        last_step_write = 0.0
        try:
            for event in events:
                if isinstance(event, BatchProgress):
                    now = time.monotonic()
                    if now - last_step_write >= STEP_EVERY_S:
                        last_step_write = now
                        store.record(run_id, event)
                    if self._checkpoint_requested:
                        self._checkpoint_requested = False
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
                self._save("closed")
                store.record(run_id, RunStopped(epochs_done=run.epoch, seconds=run._elapsed(),
                                                reason="training stopped when its events stopped being read"))
            raise
        except KeyboardInterrupt:
            if not self._ended:
                self._ended = True
                _quietly(store.set_status, run_id, "interrupted", "stopped at once (a second Ctrl-C); "
                         f"`scratch-tui train --resume {run_id}` continues from its last checkpoint")
            raise
        except BaseException as exc:
            # Setup failures (no dataset, bad device) and store or disk errors end up here.
            if not self._ended:
                self._ended = True
                _quietly(store.set_status, run_id, "failed", str(exc) or type(exc).__name__)
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
               **kwargs: Any) -> TrainingRun:
    """The run `run_id` continued from its last checkpoint (same id; record it with `recorded`).

    Raises RunNotFound, CheckpointError (no usable checkpoint), ConfigError (epochs) or
    StoreError (the run is still running).
    """
    store.mark_interrupted()
    record = store.get_run(run_id)
    if record.status == "running":
        where = f"pid {record.pid}" + (f" on {record.host}" if record.host != store.host else "")
        raise StoreError(f"run {record.id} is still running ({where}); stop it first with "
                         f"`scratch-tui runs control {record.id} stop`")
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
    return run


class _ControlPoller(threading.Thread):
    """Polls the store for queued controls; a thread, because a paused loop yields no events."""

    def __init__(self, store: RunStore, run_id: str, control: TrainingControl, recording: Recording,
                 every_s: float):
        super().__init__(name=f"controls-{run_id}", daemon=True)
        self.store, self.run_id, self.control, self.recording = store, run_id, control, recording
        self.every_s = every_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            try:
                requests = self.store.take_controls(self.run_id)
            except StoreError:
                continue  # a store busy elsewhere must not stop training; ask again next time
            for action, value in requests:
                if action == "pause":
                    self.control.pause()
                elif action == "resume":
                    self.control.resume()
                elif action == "stop":
                    self.control.stop()
                elif action == "set_lr" and value is not None:
                    _quietly(self.control.set_lr, value)
                elif action == "checkpoint":
                    self.recording.request_checkpoint()

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
