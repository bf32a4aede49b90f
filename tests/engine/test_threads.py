"""The CPU thread count is a setting pinned when a run starts, never the machine's load: the same config and seed
give the same sums on an idle machine and a busy one."""

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import torch

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.threads import pin_cpu_threads, usable_cores


@pytest.fixture
def threads_back():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_is_the_cores_this_process_may_use_whatever_the_load(monkeypatch, threads_back):
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0), raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert usable_cores() == 3 and pin_cpu_threads(0) == 3 == torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # three ranks on this machine share its cores
    assert usable_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own choice
    assert usable_cores() == 2
    assert pin_cpu_threads(1) == 1  # a count the run asked for is the count


def test_a_run_records_its_thread_count_and_a_resume_keeps_it(tmp_path, threads_back):
    from tui_trainer.engine.checkpoints import save_checkpoint
    from tui_trainer.engine.events import RunStarted
    from tui_trainer.engine.loop import TrainingRun

    run = TrainingRun(TrainConfig(device="cpu", max_train_samples=256, epochs=1, threads=0))
    started = next(e for e in run.events() if isinstance(e, RunStarted))
    assert started.threads == run.threads == torch.get_num_threads() == usable_cores()
    asked = TrainingRun(TrainConfig(device="cpu", max_train_samples=256, epochs=1, threads=1))
    asked.setup()
    path = save_checkpoint(tmp_path / "last.pt", asked)
    resumed = TrainingRun.from_checkpoint(path)
    torch.set_num_threads(2)
    resumed.setup()
    assert resumed.threads == torch.get_num_threads() == 1  # the count its run started with, not this machine's


def test_the_package_bounds_openmp_spinning_unless_the_user_chose():
    code = "import os, tui_trainer; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    printed = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                              check=True).stdout.strip()
               for e in (env, {**env, "GOMP_SPINCOUNT": "7"}, {**env, "OMP_WAIT_POLICY": "ACTIVE"})]
    assert printed == ["3000", "7", "None"]


def _epoch_losses(started: Callable[[], None] = lambda: None) -> list[tuple[float, float]]:
    # 50 steps of 32 images: enough that one thread and two may sum differently (by step 25), so a count chosen by
    # the load would show here. `started`: called once the run has said how many threads it took
    with subprocess.Popen([sys.executable, "-m", "tui_trainer", "train", "--no-record", "--jsonl", "--device", "cpu",
                           "--max-train-samples", "1600", "--batch-size", "32", "--epochs", "1", "--seed", "3"],
                          stdout=subprocess.PIPE, text=True) as child:
        events = []
        for line in child.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "run_started":
                started()
    assert child.returncode == 0
    return [e["threads"] for e in events if e["event"] == "run_started"] + \
        [(e["train_loss"], e["val_loss"]) for e in events if e["event"] == "epoch_end"]


def test_the_same_command_gives_the_same_losses_on_an_idle_and_a_busy_machine():
    quiet = _epoch_losses()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a core kept busy by another process

    def done_with_load():  # the count is chosen before the first step: the load has had its chance to sway it
        busy.kill()
        busy.wait()

    try:
        loaded = _epoch_losses(started=done_with_load)
    finally:
        done_with_load()
    assert len(quiet) == 2 and loaded == quiet  # the same thread count, and the epoch's losses bit for bit
