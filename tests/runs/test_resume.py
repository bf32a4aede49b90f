"""Exact resume: a run stopped and continued ends bit for bit where an uninterrupted run ends."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tui_trainer.engine.checkpoints import CheckpointError
from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.engine.events import BatchProgress, CheckpointSaved, EpochEnded, EvaluationEnded, RunFinished
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.store import RunStore, StoreError
from tui_trainer.runs.worker import build_run, claim, handed_here, prepare

# flip draws from the run's generator every batch; 3000 images in batches of 64 make 47 steps an epoch
CONFIG = TrainConfig(epochs=3, device="cpu", max_train_samples=3000, batch_size=64, augment="flip")


def outcome(run, events):
    """What must match: every epoch's numbers (not its timing), the evaluation and the weights."""
    epochs = [(e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr, e.step)
              for e in events if isinstance(e, EpochEnded)]
    result = next(e for e in events if isinstance(e, EvaluationEnded))
    return epochs, (result.test_loss, result.test_acc, result.confusion), run.model.state_dict()


def assert_same(a, b):
    assert a[0] == b[0]
    assert a[1] == b[1]
    assert a[2].keys() == b[2].keys() and all(torch.equal(a[2][k], b[2][k]) for k in a[2])


@pytest.fixture(scope="module")
def uninterrupted(small_data):
    run = TrainingRun(CONFIG, data=small_data, progress_seconds=0)
    return outcome(run, list(run.events()))


@pytest.mark.parametrize("where", ["after epoch 1", "part-way through epoch 2"])
def test_stopped_and_resumed_equals_uninterrupted(where, small_data, uninterrupted, tmp_path):
    store = RunStore(tmp_path)
    first = TrainingRun(CONFIG, data=small_data, progress_seconds=0)
    before = []
    for event in recorded(first, store):
        before.append(event)
        if where == "after epoch 1" and isinstance(event, EpochEnded):
            first.control.stop()
        if where != "after epoch 1" and isinstance(event, BatchProgress) and event.epoch == 2:
            first.control.stop()  # at step 50 of 141
    assert store.get_run(first.run_id).status == "stopped"
    stop_save = [e for e in before if isinstance(e, CheckpointSaved)][-1]
    assert stop_save.reason == "stop" and stop_save.epoch == 1 and stop_save.step == (47 if "after" in where else 50)

    claim(store, first.run_id[:5])  # this process trains it on: the one claim a resume makes
    second = build_run(store, first.run_id[:5], data=small_data, progress_seconds=0)
    assert (second.epoch, second.step, second.model) == (1, stop_save.step, None)  # known before setup
    after = list(recorded(second, store))
    assert after[0].resumed_from_step == stop_save.step and after[0].run_id == first.run_id
    resumed = outcome(second, before + after)
    assert_same(resumed, uninterrupted)

    record = store.get_run(first.run_id)
    assert (record.status, record.epochs_done, record.segment) == ("finished", 3, 2)
    assert [e["epoch"] for e in store.epochs(record.id)] == [1, 2, 3]
    assert [e["train_loss"] for e in store.epochs(record.id)] == [e[1] for e in uninterrupted[0]]
    steps = [s for s, _ in store.steps(record.id)]
    assert steps == sorted(set(steps))
    assert store.evaluation(record.id).test_acc == uninterrupted[1][1]


def test_the_epoch_end_checkpoint_alone_resumes_exactly(small_data, uninterrupted, tmp_path):
    """As after a kill -9: only the checkpoint written at the end of epoch 1 survives."""
    store = RunStore(tmp_path)
    run = TrainingRun(CONFIG, data=small_data, progress_seconds=0)
    for event in recorded(run, store):
        if isinstance(event, CheckpointSaved) and event.epoch == 1:
            shutil.copy(event.path, tmp_path / "epoch1.pt")
    survivor = TrainingRun.from_checkpoint(tmp_path / "epoch1.pt", data=small_data, progress_seconds=0)
    events = list(survivor.events())
    assert events[0].resumed_from_epoch == 1 and isinstance(events[-1], RunFinished)
    epochs, result, model = outcome(survivor, events)
    assert_same((uninterrupted[0][:1] + epochs, result, model), uninterrupted)


def test_dropout_resumes_exactly_because_the_global_rng_is_restored(small_data, tmp_path):
    tiny = dataclasses.replace(small_data, train_x=small_data.train_x[:256], train_y=small_data.train_y[:256],
                               val_x=small_data.val_x[:64], val_y=small_data.val_y[:64])
    config = TrainConfig(model="cnn", epochs=2, device="cpu", batch_size=32)

    def finish(run, stop_after_first=False):
        metrics = []
        for event in run.events():
            if isinstance(event, EpochEnded):
                metrics.append((event.train_loss, event.val_acc))
                if stop_after_first:
                    run.control.stop()
        return metrics

    straight = TrainingRun(config, data=tiny, evaluate_at_end=False)
    expected = finish(straight)
    first = TrainingRun(config, data=tiny, evaluate_at_end=False)
    metrics = finish(first, stop_after_first=True)
    from tui_trainer.engine.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "last.pt", first)
    torch.manual_seed(1234)  # whatever happens to the global RNG in between must not matter
    second = TrainingRun.from_checkpoint(tmp_path / "last.pt", data=tiny, evaluate_at_end=False)
    assert metrics + finish(second) == expected
    assert all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                  second.model.state_dict().values()))


def test_resuming_says_what_is_wrong(small_data, tmp_path):
    store = RunStore(tmp_path)
    quick = CONFIG.replace(epochs=1, augment="none")
    run = TrainingRun(quick, data=small_data)
    list(recorded(run, store))
    with pytest.raises(ConfigError, match="already trained all 1 epochs; ask for more epochs"):
        build_run(store, run.run_id)
    with pytest.raises(ConfigError, match="epochs: got 0; .*1 epoch done, so ask for at least 1"):
        build_run(store, run.run_id, epochs=0)
    assert build_run(store, run.run_id, epochs=2, data=small_data).config.epochs == 2

    never_saved = TrainingRun(quick, data=small_data)
    list(recorded(never_saved, store, checkpoints=False))
    with pytest.raises(CheckpointError, match=f"run {never_saved.run_id} cannot be resumed: no checkpoint at"):
        build_run(store, never_saved.run_id)

    busy = store.create_run(quick)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another live process
    try:
        store.set_process(busy, holder.pid)  # trains it, as a detached child would
        log = store.events(busy)
        with pytest.raises(StoreError, match=rf"run {busy} is still running \(pid {holder.pid}\); stop it first "
                                             rf"with `scratch-tui runs control {busy} stop`"):
            prepare(store, busy, data=small_data)  # a worker nobody handed the run to claims it, and is refused
        refused = store.get_run(busy)
        assert (refused.status, refused.pid) == ("running", holder.pid)  # left as it was: no RunFailed, no claim
        assert store.events(busy) == log
    finally:
        holder.kill()
        holder.wait(10)

    # `train --resume --detach` claims the run for the worker it starts, and hands it over with the worker's pid:
    # the worker takes it as handed, without claiming it again
    store.set_process(run.run_id, os.getpid(), resuming=True)
    assert handed_here(store.get_run(run.run_id))
    assert prepare(store, run.run_id, epochs=2, data=small_data).run_id == run.run_id
