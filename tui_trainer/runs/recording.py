"""Recording a run: the one wrapper the CLI and the app share, so every run lands in the store alike.

    run = TrainingRun(config)              # or build_run(store, run_id) (runs/worker.py)
    for event in recorded(run, store):     # run.events(), plus CheckpointSaved
        ...

It creates the store row (so `run.run_id` is known before the first event), appends
each event to the run's log, writes checkpoints (every epoch end, on stop, on request),
and applies the commands queued in the store (by the app, `scratch-tui runs control`)
to `run.control`, logging each as CommandReceived.

A store that another process keeps locked never fails the run: events wait in memory, in
order, with one warning, and are written once the lock is free (see `_Journal`).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any, Callable, Iterator

from ..engine.checkpoint_files import BEST, LAST, PREVIOUS, epoch_file, step_file
from ..engine.checkpoints import CheckpointNotWritten, keep_as_best, save_checkpoint
from ..engine.control import TrainingControl
from ..engine.commands import apply
from ..engine.events import (BatchProgress, CheckpointSaved, CommandIgnored, CommandReceived, EpochEnded, Event,
                             RunFailed, RunInterrupted, RunStarted, RunStopped, TERMINAL_EVENTS)
from ..engine.loop import TrainingRun
from ..engine.monitor import Monitor
from .advice import resume_advice
from .retention import prune
from .store import RunStore, StoreBusy, StoreError, StoreFull

COMMAND_POLL_S = 0.02  # how often the store is asked for queued commands: the key-to-loop budget is 50 ms
RETRY_EVERY_S = 1.0  # while the store is locked, how often the waiting events are offered again
RETRY_WAIT_S = 0.05  # and how long each offer waits for the lock: training must not stall on it
ENDING_WAIT_S = 60.0  # how long a run's ending waits for a held lock before its events are kept in a file


def warn_on_stderr(message: str) -> None:
    """A warning for whoever watches the run: the terminal, or a detached run's log."""
    clear = "\r\033[K" if sys.stderr.isatty() else ""  # over a live progress line, not after it
    print(f"{clear}scratch-tui: warning: {message}", file=sys.stderr, flush=True)


class Recording:
    """An iterator over the run's events that records them; `recorded()` makes one."""

    def __init__(self, run: TrainingRun, store: RunStore, checkpoints: bool = True,
                 command_poll_s: float = COMMAND_POLL_S, warn: Callable[[str], None] = warn_on_stderr):
        self.run, self.store, self.checkpoints = run, store, checkpoints
        self.command_poll_s = command_poll_s
        if run.run_id is None:
            run.run_id = store.create_run(run.config)
        self.run_id: str = run.run_id
        self.journal = _Journal(store, self.run_id, warn)
        # which epoch is best (kept as best.pt) by the run's own monitor: lower val_loss or higher val_acc
        self._monitor = Monitor(run.config.monitor)
        self._ended = False
        self._poller = _CommandPoller(store, self.journal, run.control, command_poll_s, lambda: run.step)
        self._events = self._record()

    def take_commands(self) -> None:
        """Apply the commands queued for the run now, not at the next poll: one sent from this process (a study's
        pruner, runs/trial_report.py) acts before the run takes another step."""
        self._poller.poll()

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
        journal = self.journal
        poller = self._poller
        events = run.events()
        try:
            for event in events:
                if isinstance(event, BatchProgress):
                    journal.write(event)
                    if run.control.take_checkpoint_request():
                        saved = self._save("request")
                        yield event
                        if saved:
                            yield saved
                        continue
                    yield event
                elif isinstance(event, EpochEnded):
                    journal.write(event)
                    saved = self._save("epoch", event)
                    yield event
                    if saved:
                        yield saved
                elif isinstance(event, TERMINAL_EVENTS):
                    # No command may be logged after the ending: followers stop at the ending they see last.
                    poller.halt()
                    if isinstance(event, RunStopped):
                        event = dataclasses.replace(event, step=run.step)  # the loop's stop does not say it
                        saved = self._save("stop")
                        if saved:
                            yield saved
                    journal.write(event, wait=True)  # the ending waits for the lock: nothing may be lost
                    self._ended = True
                    yield event
                else:
                    journal.write(event)
                    if isinstance(event, RunStarted):
                        # a resume's best so far is in the log, as every view reads it
                        kept = store.view(run_id, only=("run_started", "epoch_end")).monitor
                        self._monitor = kept or Monitor(run.config.monitor)
                        poller.start()
                    yield event
        except GeneratorExit:
            # The consumer stopped reading (the app closed): the loop waits at a yield, so its
            # state is whole; keep it and say what happened.
            if not self._ended:
                self._ended = True
                poller.halt()
                self._save("closed")
                journal.write(RunStopped(epochs_done=run.epoch, seconds=run.elapsed(), step=run.step,
                                         reason="training stopped when its events stopped being read"), wait=True)
            raise
        except KeyboardInterrupt:
            if not self._ended:
                self._ended = True
                poller.halt()
                advice = resume_advice(run_id, _quietly(store.left_behind, run_id))
                _quietly(journal.end, RunInterrupted(message=f"stopped at once (a second Ctrl-C); {advice}",
                                                     epochs_done=run.epoch, seconds=run.elapsed()))
            raise
        except BaseException as exc:
            # Setup failures (no dataset, bad device) and store or disk errors end up here.
            if not self._ended:
                self._ended = True
                poller.halt()
                _quietly(journal.end, RunFailed(message=str(exc) or type(exc).__name__, epochs_done=run.epoch,
                                                seconds=run.elapsed()))
            raise
        finally:
            poller.halt()
            events.close()

    def _save(self, reason: str, ended: EpochEnded | None = None) -> CheckpointSaved | None:
        if not self.checkpoints or self.run.model is None:
            return None
        folder = self.store.checkpoint_dir(self.run_id)
        # the runs folder moved or deleted: the run stops (StoreMoved: its RunFailed says why, in the store it
        # still has open) rather than make a new folder at the old path for its checkpoints
        self.store.check_in_place()
        try:
            if (folder / LAST).exists():  # a hard link, no copy: what a resume falls back on if the new one rots
                keep_as_best(folder / LAST, folder / PREVIOUS)
            last = save_checkpoint(folder / LAST, self.run, reason)
            best, kept = "", None
            if reason == "request":  # its own name (a hard link): the next save replaces last.pt, a fork needs it
                kept = folder / step_file(self.run.step)
                keep_as_best(last, kept)
                prune(folder, self.run.config.keep_checkpoints)
            if ended is not None:
                kept = folder / epoch_file(ended.epoch)
                keep_as_best(last, kept)  # a hard link: what a fork at this epoch uses
                # Without validation every epoch end is the best we know of.
                if self._monitor.update(ended.epoch, ended.val_loss, ended.val_acc) or ended.val_loss is None:
                    keep_as_best(last, folder / BEST)
                    best = str(folder / BEST)
                prune(folder, self.run.config.keep_checkpoints)
        except CheckpointNotWritten as exc:
            # The run's recorded reason and the one line the user sees: what is wrong and how to go on.
            raise CheckpointNotWritten(f"{exc}: {exc.remedy}, then {self._how_to_go_on()}", exc.remedy) from None
        event = CheckpointSaved(path=str(last), epoch=self.run.epoch, step=self.run.step, reason=reason,
                                best_path=best, kept_path=str(kept or ""), mid_epoch=self.run.mid_epoch)
        self.journal.write(event)
        return event

    def _how_to_go_on(self) -> str:
        if (self.store.checkpoint_dir(self.run_id) / LAST).exists():
            return f"resume with `scratch-tui train --resume {self.run_id}`"
        return f"start it again (it has no checkpoint yet; `scratch-tui runs show {self.run_id}` gives its command)"


def recorded(run: TrainingRun, store: RunStore, checkpoints: bool = True) -> Recording:
    """Iterate this to train `run` and record it in `store`; see the module docstring."""
    return Recording(run, store, checkpoints)


class _Journal:
    """The run's events on their way into the store, in order, from the loop and the command poller.

    While another process holds the store's write lock past its busy timeout (or its disk is full),
    events wait here, with one warning, and are offered again every RETRY_EVERY_S, each time waiting
    only RETRY_WAIT_S for the lock, so training goes on. Written late, they keep their order and seqs.
    The run's ending waits for the lock up to ENDING_WAIT_S; after that what waits goes to the run's file of
    unrecorded events (said in one line), which the next process to open the store records: nothing is lost,
    and no process waits for ever."""

    def __init__(self, store: RunStore, run_id: str, warn: Callable[[str], None]):
        self.store, self.run_id, self.warn = store, run_id, warn
        self._waiting: list[Event] = []
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._warned = False

    def write(self, event: Event, wait: bool = False) -> None:
        """Record `event` after those still waiting; with `wait`, do not return until all are written."""
        with self._lock:
            self._waiting.append(event)
            if len(self._waiting) == 1:
                self._offer(None)  # nothing waits: the ordinary write, with the ordinary busy timeout
            elif time.monotonic() >= self._next_try:
                self._offer(RETRY_WAIT_S)
            deadline = time.monotonic() + ENDING_WAIT_S
            while wait and self._waiting:
                if time.monotonic() >= deadline:
                    self._keep_aside()
                    return
                time.sleep(max(0.0, min(self._next_try, deadline) - time.monotonic()))
                self._offer(None)

    def end(self, event: Event) -> None:
        """The ending on the way out of an error: one ordinary try, so leaving is never held up for long."""
        with self._lock:
            self._waiting.append(event)
            self._offer(None)

    def _offer(self, wait_s: float | None) -> None:
        try:
            self.store.append_all(self.run_id, self._waiting, wait_s)
        except StoreBusy:
            self._held_back(f"the run store {self.store.db_path} is locked by another process")
            return
        except StoreFull:
            self._held_back(f"no space left on the disk holding {self.store.root}")
            return
        if self._warned:
            self.warn(f"the run store takes writes again: the {len(self._waiting)} events kept meanwhile are "
                      f"recorded")
            self._warned = False
        self._waiting.clear()

    def _keep_aside(self) -> None:
        """The store stayed locked past ENDING_WAIT_S: the waiting events go to the run's file, for the next
        process that opens the store to record."""
        count = len(self._waiting)
        try:
            self.store.keep_unrecorded(self.run_id, self._waiting)
        except OSError as exc:
            self.warn(f"the run store {self.store.db_path} stayed locked for {ENDING_WAIT_S:g}s and the last {count} "
                      f"events of run {self.run_id} could not be kept aside either ({exc.strerror or exc}); they are "
                      f"lost, the run's checkpoints are not")
        else:
            self.warn(f"the run store {self.store.db_path} stayed locked for {ENDING_WAIT_S:g}s; the last {count} "
                      f"events of run {self.run_id} are kept in {self.store.unrecorded_path(self.run_id)}, and the "
                      f"next scratch-tui to open the store records them")
        self._waiting.clear()

    def _held_back(self, why: str) -> None:
        self._next_try = time.monotonic() + RETRY_EVERY_S
        if not self._warned:
            self._warned = True
            self.warn(f"{why}; run {self.run_id} trains on and keeps its events in memory until they can be "
                      f"written")


class _CommandPoller(threading.Thread):
    """Takes queued commands from the store and applies them; a thread, because a paused loop yields
    no events. Each is logged as CommandReceived before it acts, so the log says why the run changed."""

    def __init__(self, store: RunStore, journal: _Journal, control: TrainingControl, every_s: float,
                 step: Callable[[], int]):
        super().__init__(name=f"commands-{journal.run_id}", daemon=True)
        self.store, self.journal, self.control, self.every_s, self.step = store, journal, control, every_s, step
        self._halt = threading.Event()
        self._taking = threading.Lock()  # commands act in the order sent, whoever polls

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        with self._taking:
            try:
                commands = self.store.take_commands(self.journal.run_id)
            except StoreError:
                return  # a store busy elsewhere must not stop training; ask again next time
            for command in commands:
                # Once halted the run is ending: the command is answered instead (the ending is written only
                # after this thread is joined, so the answer comes before it in the log).
                halted = self._halt.is_set()
                event = CommandIgnored(command.name, command.value, "the run was ending when it arrived") if halted \
                    else CommandReceived(command.name, command.value, self.step())
                try:
                    self.journal.write(event)
                except StoreError:
                    pass  # taken from the queue already: act on it even if the log missed it
                if not halted:
                    apply(command, self.control)

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)


def _quietly(fn: Any, *args: Any) -> Any:
    """For bookkeeping on the way out, which must not hide the error that got us there."""
    try:
        return fn(*args)
    except (StoreError, ValueError, LookupError):
        return None
