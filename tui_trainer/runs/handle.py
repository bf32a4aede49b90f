"""RunHandle: everything a viewer needs of a run, whoever started it and wherever it trains.

    handle = StoredRun(store, run_id)             # or RunLauncher(store).start(config)
    for event in handle.events(stop=stop):        # the whole log replayed, then live, until it ends
        ...
    handle.send(Command("pause"))                 # reaches the training process within ~20 ms
    handle.state()                                # RunState, from the store's projection of the log

The app, `scratch-tui attach` and `scratch-tui runs control` use this interface only; tests
give the app a scripted handle instead.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Iterator

from ..engine.commands import Command
from ..engine.config import TrainConfig
from ..engine.events import Event, RunState
from .advice import resume_advice
from .follow import follow
from .spawn import resume_in_background, start_created, start_run
from .store import RunStore


class RunNotRunning(RuntimeError):
    """A command was sent to a run that no process trains; the message says how to continue it."""


class RunHandle(ABC):
    run_id: str
    started_here: bool  # this process launched the run, rather than attaching to it

    @abstractmethod
    def events(self, stop: threading.Event | None = None) -> Iterator[Event]:
        """The run's events from its first, then live ones as they come, until it ends or `stop` is set."""

    @abstractmethod
    def send(self, command: Command) -> None:
        """Ask the training process to act; RunNotRunning if there is none."""

    @abstractmethod
    def state(self) -> RunState:
        ...


class StoredRun(RunHandle):
    """A run in the run store: its log is what it shows, its command queue is how it is steered."""

    def __init__(self, store: RunStore, run_id: str, started_here: bool = False) -> None:
        self.store, self.run_id, self.started_here = store, store.resolve(run_id), started_here

    def events(self, stop: threading.Event | None = None) -> Iterator[Event]:
        return follow(self.store, self.run_id, stop=stop)

    def send(self, command: Command) -> None:
        self.store.mark_interrupted()
        record = self.store.get_run(self.run_id)
        if record.state == RunState.FINISHED:
            raise RunNotRunning(f"run {record.id} has finished; nothing to change")
        if record.state == RunState.QUEUED:
            raise RunNotRunning(f"run {record.id} is queued; it takes commands once the queue starts it "
                                f"(`scratch-tui queue ls`)")
        if not record.state.active:
            # what it left decides: resume from a checkpoint, or start again (the advice never offers a
            # --resume that has nothing to resume from)
            raise RunNotRunning(f"run {record.id} is {record.status}; only a running run takes commands "
                                f"({resume_advice(record.id, self.store.left_behind(record.id))})")
        self.store.send(self.run_id, command)

    def state(self) -> RunState:
        self.store.mark_interrupted()
        return self.store.get_run(self.run_id).state


class RunLauncher:
    """Starts, resumes and opens runs of one store, each as a StoredRun."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def start(self, config: TrainConfig) -> StoredRun:
        return StoredRun(self.store, start_run(self.store, config).run_id, started_here=True)

    def resume(self, run_id: str, epochs: int | None = None) -> StoredRun:
        run_id = self.store.resolve(run_id)
        resume_in_background(self.store, run_id, epochs)
        return StoredRun(self.store, run_id, started_here=True)

    def open(self, run_id: str) -> StoredRun:
        return StoredRun(self.store, run_id)

    def fork(self, parent_id: str, epoch: int | str | None, changes: dict[str, Any]) -> StoredRun:
        """Start a fork of `parent_id` from its checkpoint of `epoch` ("step-N": the one asked for at step N; its
        last when None) with `changes` (setting -> value), in the background. Raises RunNotFound, ForkRefused (one
        line: a missing epoch names those there are), ConfigError or CheckpointError; nothing is created when it
        does."""
        from .fork import fork_run

        run = fork_run(self.store, parent_id, epoch, changes)
        return StoredRun(self.store, start_created(self.store, run.run_id).run_id, started_here=True)
