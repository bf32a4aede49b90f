"""The recorder: events stored as they pass, checkpoints kept, store controls obeyed."""

import threading
import time

import pytest
import torch

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.data import DatasetUnavailable, prepare
from tui_trainer.engine.events import BatchProgress, CheckpointSaved, EpochEnded, RunStarted, RunStopped
from tui_trainer.engine.loop import TrainingRun
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


def test_controls_sent_through_the_store_reach_the_run(small_data, tmp_path):
    config = TrainConfig(epochs=50, device="cpu", batch_size=16, schedule="constant")
    run = TrainingRun(config, data=small_data, progress_seconds=0)
    recording = Recording(run, RunStore(tmp_path), control_poll_s=0.02)
    events = []
    thread = threading.Thread(target=lambda: events.extend(recording))
    thread.start()
    other = RunStore(tmp_path)  # another process would open its own
    try:
        wait_for(lambda: any(isinstance(e, BatchProgress) for e in events))
        other.send_control(run.run_id, "pause")
        wait_for(lambda: other.get_run(run.run_id).paused)
        other.send_control(run.run_id, "set_lr", 0.0005)
        other.send_control(run.run_id, "checkpoint")
        other.send_control(run.run_id, "resume")
        wait_for(lambda: any(isinstance(e, CheckpointSaved) and e.reason == "request" for e in events))
        other.send_control(run.run_id, "stop")
        thread.join(30)
    finally:
        run.control.stop()
        thread.join(30)
    names = [e.event_name for e in events]
    assert names.index("run_paused") < names.index("lr_changed") < names.index("run_resumed")
    assert isinstance(events[-1], RunStopped) and run.lr == pytest.approx(0.0005)
    assert [e.reason for e in events if isinstance(e, CheckpointSaved)][-2:] == ["request", "stop"]
    assert other.get_run(run.run_id).status == "stopped"


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
