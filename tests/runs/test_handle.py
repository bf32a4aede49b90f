"""StoredRun: every viewer of a run sees the same log, live or late, and steers it through the store."""

import subprocess
import sys
import threading
import time

import pytest
import torch

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.data import prepare
from tui_trainer.engine.events import (BatchProgress, CommandReceived, RunFinished, RunPaused, RunUnpaused,
                                       RunState, RunStopped)
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.handle import RunLauncher, RunNotRunning, StoredRun
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.store import RunNotFound, RunStore

CONFIG = TrainConfig(epochs=3, device="cpu", max_train_samples=600, batch_size=16)


@pytest.fixture(scope="module")
def tiny_data(mini_raw):
    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=600)


def wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def logged(store, run_id):
    return [e for _, e in store.events(run_id)]


def received(log):
    """The commands the log says reached the run (each also carries the step it arrived at)."""
    return [e.command if isinstance(e, CommandReceived) else None for e in log]


def followed(handle, timeout=20.0):
    """All a handle's events, failing (not hanging) if they do not end by themselves."""
    halt = threading.Event()
    timer = threading.Timer(timeout, halt.set)
    timer.start()
    try:
        events = list(handle.events(stop=halt))
    finally:
        timer.cancel()
    assert not halt.is_set(), "the run's events did not end by themselves"
    return events


def test_viewers_live_and_late_see_one_log_and_commands_steer_the_run(tiny_data, tmp_path):
    trainer_store = RunStore(tmp_path)  # the training process's
    run = TrainingRun(CONFIG, data=tiny_data, progress_seconds=0)
    recording = recorded(run, trainer_store)
    handle = StoredRun(RunStore(tmp_path), run.run_id[:6])  # a viewer's, e.g. `scratch-tui attach`
    assert (handle.run_id, handle.started_here, handle.state()) == (run.run_id, False, RunState.STARTING)

    live, live_done = [], threading.Event()

    def watch():
        try:
            live.extend(followed(StoredRun(RunStore(tmp_path), run.run_id)))
        finally:
            live_done.set()

    # The trainer's consumer stops at two points until the test lets it go on, so the run is at a
    # known place (the loop cannot step while its consumer holds an event) whatever the machine's speed.
    first_progress, after_resume = threading.Event(), threading.Event()
    yielded = []

    def train():
        held_progress = held_resume = False
        for event in recording:
            yielded.append(event)
            if isinstance(event, BatchProgress) and not held_progress:
                held_progress = first_progress.wait(30)
            if isinstance(event, RunUnpaused) and not held_resume:
                held_resume = after_resume.wait(30)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.1)  # the live viewer is polling an empty log before the first event
    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        wait_for(lambda: any(isinstance(e, BatchProgress) for e in logged(handle.store, run.run_id)), "progress")
        assert handle.state() == RunState.RUNNING
        handle.send(Command("pause"))
        wait_for(lambda: "pause" in received(logged(handle.store, run.run_id)), "the pause to arrive")
        first_progress.set()
        wait_for(lambda: handle.state() == RunState.PAUSED, "the run to pause")
        log = logged(handle.store, run.run_id)
        said = received(log).index("pause")
        assert log[said].step == max(e.step for e in log[:said] if isinstance(e, BatchProgress))
        paused = next(i for i, e in enumerate(log) if isinstance(e, RunPaused))
        assert said < paused and all(isinstance(e, BatchProgress) for e in log[said + 1:paused])

        handle.send(Command("resume"))
        wait_for(lambda: handle.state() == RunState.RUNNING, "the run to resume")
        assert [type(e) for e in logged(handle.store, run.run_id)[-2:]] == [CommandReceived, RunUnpaused]
        handle.send(Command("stop"))
        wait_for(lambda: "stop" in received(logged(handle.store, run.run_id)), "the stop to arrive")
        after_resume.set()
        trainer.join(30)
        assert handle.state() == RunState.STOPPED
    finally:
        first_progress.set()
        after_resume.set()
        run.control.stop()
        trainer.join(30)
    assert live_done.wait(20), "the live viewer did not see the run end"
    watcher.join(5)

    late = followed(StoredRun(RunStore(tmp_path), run.run_id))  # attaches after the run ended
    stored = logged(trainer_store, run.run_id)
    assert [e.to_dict() for e in live] == [e.to_dict() for e in late] == [e.to_dict() for e in stored]
    assert isinstance(stored[-1], RunStopped) and stored[-1].epochs_done < CONFIG.epochs
    assert [e for e in stored if not isinstance(e, CommandReceived)] == yielded  # the log adds only commands
    assert [e.command for e in stored if isinstance(e, CommandReceived)] == ["pause", "resume", "stop"]

    with pytest.raises(RunNotRunning, match=rf"^run {run.run_id} is stopped; only a running run takes commands "
                                            rf"\(`scratch-tui train --resume {run.run_id}` continues from its last checkpoint\)$"):
        handle.send(Command("pause"))
    assert trainer_store.take_commands(run.run_id) == []  # refused, so nothing waits for a next process


def test_a_run_no_process_trains_refuses_commands_and_says_how_to_go_on(tmp_path):
    store = RunStore(tmp_path)
    launcher = RunLauncher(store)

    finished = store.create_run(CONFIG)
    store.end_run(finished, RunFinished(epochs_done=3, seconds=1.0))
    handle = launcher.open(finished[:5])
    assert (handle.run_id, handle.started_here, handle.state()) == (finished, False, RunState.FINISHED)
    with pytest.raises(RunNotRunning, match=rf"^run {finished} has finished; nothing to change$"):
        handle.send(Command("stop"))

    # its process died without an ending: the handle finds out, rather than queue a command nobody reads
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    orphan = store.create_run(CONFIG)
    store.set_process(orphan, gone.pid)
    handle = launcher.open(orphan)
    with pytest.raises(RunNotRunning, match=rf"run {orphan} is interrupted; .*it saved no checkpoint to resume "
                                            rf"from; `scratch-tui runs show {orphan}` gives the command"):
        # no --resume offered: there is nothing to resume from
        handle.send(Command("pause"))
    assert handle.state() == RunState.INTERRUPTED and store.take_commands(orphan) == []
    assert [e.event_name for e in followed(handle)] == ["process_started", "run_interrupted"]

    with pytest.raises(RunNotFound):
        launcher.open("ffffffff")
