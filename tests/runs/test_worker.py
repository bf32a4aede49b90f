"""The run worker: one switch builds every kind of stored run, a resume is claimed once, and a run that cannot
start says why in its own log."""

import dataclasses
import subprocess
import sys
import time

import pytest

from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.engine.data import DatasetUnavailable
from tui_trainer.engine.events import BatchProgress, EpochEnded, ProcessStarted
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.fork import fork_run
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.replay import ReplayControl, lr_plan, plan_replay
from tui_trainer.runs.spawn import resume_in_background
from tui_trainer.runs.store import RunStore, StoreError
from tui_trainer.runs.worker import build_run, init_from, prepare

CONFIG = TrainConfig(epochs=2, device="cpu", max_train_samples=300, batch_size=8)  # 38 steps an epoch


@pytest.fixture
def tiny(small_data):
    return dataclasses.replace(small_data, train_x=small_data.train_x[:300], train_y=small_data.train_y[:300],
                               val_x=small_data.val_x[:64], val_y=small_data.val_y[:64])


def stopped_after_one_epoch(store, data, set_lr=False):
    """A recorded run stopped at the end of its first epoch (with `set_lr`, its lr set at its first progress
    report, as a key would)."""
    run = TrainingRun(CONFIG, data=data, progress_seconds=0)
    for event in recorded(run, store):
        if isinstance(event, BatchProgress) and set_lr:
            run.control.set_lr(0.01)
            set_lr = False
        if isinstance(event, EpochEnded):
            run.control.stop()
    assert store.get_run(run.run_id).status == "stopped"
    return run.run_id


def test_one_switch_builds_each_kind_of_stored_run(tiny, tmp_path):
    with RunStore(tmp_path) as store:
        new = store.create_run(CONFIG)
        stopped = stopped_after_one_epoch(store, tiny, set_lr=True)
        fork = fork_run(store, stopped, 1, {"lr": 0.001}).run_id
        replay = store.create_run(CONFIG)
        plan_replay(store, replay, stopped)
        assert [init_from(store.get_run(i)) for i in (new, stopped, fork, replay)] == [
            "scratch", "resume", "fork", "scratch"]

        fresh = build_run(store, new, data=tiny)
        assert (fresh.run_id, fresh.epoch, fresh.step, fresh.config) == (new, 0, 0, CONFIG)
        resumed = build_run(store, stopped[:4], epochs=3, data=tiny)
        assert (resumed.run_id, resumed.epoch, resumed.step, resumed.config.epochs) == (stopped, 1, 38, 3)
        forked = build_run(store, fork, data=tiny)
        assert (forked.run_id, forked.epoch, forked.step, forked.config.lr) == (fork, 1, 38, 0.001)
        replaying = build_run(store, replay, data=tiny)
        plan = lr_plan(store, stopped)
        # the plan still ahead of it
        assert isinstance(replaying.control, ReplayControl) and replaying.control._plan == plan
        assert [lr for _, lr in plan] == [0.01]
        assert not isinstance(fresh.control, ReplayControl)

        with pytest.raises(ConfigError, match=rf"^epochs: run {new} has not started yet"):
            build_run(store, new, epochs=5)
        # building claims and records nothing
        assert [store.get_run(i).status for i in (new, stopped)] == ["running", "stopped"]
        assert [e.event_name for _, e in store.events(new)] == []


def test_a_run_that_cannot_start_says_why_once_and_a_refused_request_leaves_it_as_it_was(tiny, tmp_path,
                                                                                         monkeypatch):
    with RunStore(tmp_path) as store:
        stopped = stopped_after_one_epoch(store, tiny)
        log = store.events(stopped)
        with pytest.raises(ConfigError, match="epochs: got 0"):  # refused before it was claimed: untouched
            prepare(store, stopped, epochs=0, data=tiny)
        assert store.get_run(stopped).status == "stopped" and store.events(stopped) == log

        mine = store.create_run(CONFIG)  # this process made it: the run is its to train

        def no_data(self):
            raise DatasetUnavailable("fashion-mnist-mini is not on this machine")

        monkeypatch.setattr(TrainingRun, "setup", no_data)
        with pytest.raises(DatasetUnavailable):
            prepare(store, mine)
        record = store.get_run(mine)
        assert (record.status, record.message) == ("failed", "fashion-mnist-mini is not on this machine")
        assert [e.event_name for _, e in store.events(mine)] == ["run_failed"]


def wait_until_ended(store, run_id, timeout=90.0):
    deadline = time.monotonic() + timeout
    while (record := store.get_run(run_id)).status == "running":
        assert time.monotonic() < deadline, f"the run did not end: {store.log_path(run_id).read_text()}"
        time.sleep(0.2)
    return record


def test_a_background_resume_is_claimed_once_and_its_worker_trains_it(tiny, tmp_path):
    with RunStore(tmp_path) as store:
        run_id = stopped_after_one_epoch(store, tiny)
        before = store.last_seq(run_id)
        spawned = resume_in_background(store, run_id, epochs=2)
        assert store.get_run(run_id).status == "running"  # at once: a viewer waits for the new segment
        with pytest.raises(StoreError, match=rf"run {run_id} is still running \(pid {spawned.pid}\)"):
            resume_in_background(store, run_id, epochs=2)  # no second process while the first has it
        record = wait_until_ended(store, run_id)
        assert (record.status, record.epochs_done, record.segment) == ("finished", 2, 2), record.message
        after = [e for _, e in store.events(run_id, after=before)]
        # handed to the worker once: it never claimed the run again
        assert [e for e in after if isinstance(e, ProcessStarted)] == [ProcessStarted(pid=spawned.pid,
                                                                                      resuming=True)]
        assert "Epoch 2/2" in spawned.log.read_text()


def test_a_worker_started_by_hand_claims_the_run_itself_and_is_refused_one_that_another_trains(tiny, tmp_path):
    with RunStore(tmp_path) as store:
        run_id = stopped_after_one_epoch(store, tiny)
        before = store.last_seq(run_id)
        worker = [sys.executable, "-m", "tui_trainer.runs.worker", run_id, "--store", str(tmp_path), "--to-epoch",
                  "2"]
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            store.claim(run_id, holder.pid)  # another process trains it
            refused = subprocess.run(worker, capture_output=True, text=True, timeout=120)
            assert refused.returncode == 1
            assert f"run {run_id} is still running (pid {holder.pid})" in refused.stderr
            assert store.last_seq(run_id) == before and store.get_run(run_id).pid == holder.pid
        finally:
            holder.kill()
            holder.wait(10)
        done = subprocess.run(worker, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        record = store.get_run(run_id)
        assert (record.status, record.epochs_done) == ("finished", 2)
        started = [e for _, e in store.events(run_id, after=before) if isinstance(e, ProcessStarted)]
        assert len(started) == 1 and started[0].resuming
        assert "Epoch 2/2" in done.stdout and "Test Loss: " in done.stdout
