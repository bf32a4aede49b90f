"""The recorder: every event appended to the run's log as it passes, checkpoints kept, commands from the
store obeyed and logged."""

import threading
import time

import pytest
import torch

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.data import DatasetUnavailable, prepare
from tui_trainer.engine.events import (BatchProgress, CheckpointSaved, CommandReceived, EpochEnded,
                                       LearningRateChanged, RunFinished, RunStarted, RunStopped)
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.follow import follow
from tui_trainer.runs.recording import Recording, recorded
from tui_trainer.runs.store import RunStore


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_run_id_is_known_before_the_first_event(small_data, tmp_path):
    store = RunStore(tmp_path)
    run = TrainingRun(TrainConfig(epochs=1, device="cpu", name="quick"), data=small_data)
    recording = recorded(run, store)
    assert run.run_id == recording.run_id and store.get_run(run.run_id).name == "quick"
    first = next(recording)
    assert isinstance(first, RunStarted) and first.run_id == run.run_id
    events = [first, *recording]
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [(e.reason, e.epoch) for e in saved] == [("epoch", 1)] and saved[0].best_path.endswith("best.pt")
    record = store.get_run(run.run_id)
    assert record.status == "finished" and record.last_checkpoint == saved[0].path
    assert record.best_checkpoint == saved[0].best_path and record.torch_version == torch.__version__


@pytest.fixture(scope="module")
def steered(small_data, tmp_path_factory):
    """A run steered from another store, as `scratch-tui runs control` does: pause, set_lr, checkpoint,
    resume, stop. Returns the events the recorder yielded, the run and the store's folder."""
    path = tmp_path_factory.mktemp("steered")
    config = TrainConfig(epochs=50, device="cpu", batch_size=16, schedule="constant")
    run = TrainingRun(config, data=small_data, progress_seconds=0)
    recording = Recording(run, RunStore(path), command_poll_s=0.02)
    events = []

    def consume():
        for event in recording:
            events.append(event)

    thread = threading.Thread(target=consume)
    thread.start()
    other = RunStore(path)  # another process would open its own
    try:
        wait_for(lambda: any(isinstance(e, BatchProgress) for e in events))
        other.send(run.run_id, Command("pause"))
        wait_for(lambda: other.get_run(run.run_id).paused)
        other.send(run.run_id, Command("set_lr", 0.0005))
        other.send(run.run_id, Command("checkpoint"))
        other.send(run.run_id, Command("resume"))
        wait_for(lambda: any(isinstance(e, CheckpointSaved) and e.reason == "request" for e in events))
        other.send(run.run_id, Command("stop"))
        thread.join(30)
    finally:
        run.control.stop()
        thread.join(30)
    assert not thread.is_alive()
    return events, run, path


def test_controls_sent_through_the_store_reach_the_run(steered):
    events, run, path = steered
    names = [e.event_name for e in events]
    assert names.index("run_paused") < names.index("lr_changed") < names.index("run_resumed")
    assert isinstance(events[-1], RunStopped) and run.lr == pytest.approx(0.0005)
    assert [e.lr for e in events if isinstance(e, LearningRateChanged)] == [0.0005]
    assert [e.reason for e in events if isinstance(e, CheckpointSaved)][-2:] == ["request", "stop"]
    with RunStore(path) as store:
        record = store.get_run(run.run_id)
        assert (record.status, record.message, record.paused) == ("stopped", "stopped by request", False)
        assert store.take_commands(run.run_id) == []  # every command was taken, none twice


def test_every_event_is_in_the_log_in_emit_order_with_each_command_before_its_effect(steered):
    events, run, path = steered
    with RunStore(path) as store:
        log = []
        while batch := store.events(run.run_id, after=log[-1][0] if log else 0):
            log += batch
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1))
    # everything the engine and the recorder emitted, exactly and in order; the log adds only the commands
    assert [e.to_dict() for _, e in log if not isinstance(e, CommandReceived)] == [e.to_dict() for e in events]
    received = [(e.command, e.value) for _, e in log if isinstance(e, CommandReceived)]
    assert received == [("pause", None), ("set_lr", 0.0005), ("checkpoint", None), ("resume", None), ("stop", None)]
    names = [e.event_name for _, e in log]
    kinds = {"run_paused", "lr_changed", "run_resumed", "run_stopped", "checkpoint_saved", "run_started",
             "batch_progress", "command_received", "layer_stats", "diagnosis"}
    assert set(names) == kinds and names[0] == "run_started" and names[-1] == "run_stopped"

    def first(name, after=0, **fields):
        return next(i for i, (_, e) in enumerate(log) if i >= after and e.event_name == name
                    and all(getattr(e, k) == v for k, v in fields.items()))

    for command, effect, fields in [("pause", "run_paused", {}), ("set_lr", "lr_changed", {"lr": 0.0005}),
                                    ("checkpoint", "checkpoint_saved", {"reason": "request"}),
                                    ("resume", "run_resumed", {}), ("stop", "run_stopped", {})]:
        said = first("command_received", command=command)
        assert said < first(effect, **fields), f"{command} was logged after its effect"
    # the paused stretch: nothing trained between the pause and the resume
    between = names[first("run_paused"):first("run_resumed")]
    assert "batch_progress" not in between


def test_a_command_arriving_as_the_run_ends_is_not_logged_after_its_ending(mini_raw, tmp_path):
    data = prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=300)
    run = TrainingRun(TrainConfig(epochs=1, device="cpu", max_train_samples=300), data=data)
    store, other = RunStore(tmp_path), RunStore(tmp_path)
    for event in recorded(run, store):
        if isinstance(event, RunFinished):
            # the consumer is still on the ending (printing it, say) while a viewer's pause lands
            other.send(run.run_id, Command("pause"))
            time.sleep(0.2)  # ten polls of the command queue
    log = [e for _, e in other.events(run.run_id)]
    assert isinstance(log[-1], RunFinished) and not any(isinstance(e, CommandReceived) for e in log)
    halt = threading.Event()
    timer = threading.Timer(10, halt.set)
    timer.start()
    followed = list(follow(other, run.run_id, stop=halt))
    timer.cancel()
    assert not halt.is_set() and followed[-1] == log[-1]  # a follower sees the ending last, and ends
    assert other.take_commands(run.run_id) == [Command("pause")]  # never taken: no process acted on it


def test_closing_the_events_early_stops_the_run_with_a_checkpoint(small_data, tmp_path):
    store = RunStore(tmp_path)
    run = TrainingRun(TrainConfig(epochs=5, device="cpu"), data=small_data)
    recording = recorded(run, store)
    for event in recording:
        if isinstance(event, EpochEnded):
            break
    recording.close()
    record = store.get_run(run.run_id)
    assert record.status == "stopped" and "stopped being read" in record.message
    assert record.epochs_done == 1 and record.last_checkpoint


def test_a_setup_failure_fails_the_recorded_run(small_data, tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run = TrainingRun(TrainConfig(epochs=1, device="cpu"), data=small_data)

    def no_data():
        raise DatasetUnavailable("mnist is not on this machine")

    monkeypatch.setattr(run, "setup", no_data)
    with pytest.raises(DatasetUnavailable):
        list(recorded(run, store))
    record = store.get_run(run.run_id)
    assert (record.status, record.message) == ("failed", "mnist is not on this machine")


def test_without_validation_every_epoch_end_is_the_best(mini_raw, tmp_path):
    data = prepare(mini_raw, torch.device("cpu"), val_split=0, seed=0, max_train_samples=300)
    run = TrainingRun(TrainConfig(epochs=2, device="cpu", val_split=0, max_train_samples=300), data=data)
    saved = [e for e in recorded(run, RunStore(tmp_path)) if isinstance(e, CheckpointSaved)]
    assert [bool(e.best_path) for e in saved] == [True, True]
