"""Several processes, one run: two gloo ranks on the CPU follow a one-process run with the same global batch."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from tui_trainer.engine import TrainConfig, TrainingRun
from tui_trainer.engine.commands import Command
from tui_trainer.engine.events import EpochEnded, RunStarted

CONFIG = TrainConfig(device="cpu", epochs=2, batch_size=64, optimizer="sgd", lr=0.05, schedule="constant",
                     max_train_samples=1000, augment="flip", seed=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    run = TrainingRun(CONFIG, evaluate_at_end=False)
    events = list(run.events())
    weights = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    torch.save({"weights": weights, "events": [e.to_dict() for e in events], "step": run.step}, f"{out}/{rank}.pt")


def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = TrainingRun(CONFIG, evaluate_at_end=False)
    single_events = list(single.events())
    expected = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in (0, 1)]
    # DDP keeps the ranks identical, and averaging two half-batch gradients gives the whole batch's
    # gradient up to float rounding: stated tolerance 1e-5 on every weight after 32 SGD steps
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])
    assert torch.allclose(ranks[0]["weights"], expected, atol=1e-5)
    assert ranks[0]["step"] == single.step == 32
    started = ranks[0]["events"][0]
    assert started["step_path"] == "eager" and started["train_size"] == 1000
    # metrics are averaged over the ranks: the whole epoch's loss and accuracy, as one process sees them
    epochs = [e for e in ranks[0]["events"] if e["event"] == "epoch_end"]
    single_epochs = [e for e in single_events if isinstance(e, EpochEnded)]
    for mine, theirs in zip(epochs, single_epochs, strict=True):
        assert mine["train_loss"] == pytest.approx(theirs.train_loss, abs=1e-5)
        assert mine["train_acc"] == pytest.approx(theirs.train_acc)
        assert mine["val_acc"] == pytest.approx(theirs.val_acc)


def test_a_two_rank_run_stopped_mid_epoch_ends_cleanly_with_one_run_recorded(tmp_path):
    from tui_trainer.runs.store import RunStore

    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "tui_trainer", "train", "--device", "cpu", "--epochs", "200", "--max-train-samples", "2000",
               "--batch-size", "32", "--runs-dir", str(runs), "--name", "two ranks"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline:
            if runs.exists():
                with RunStore(runs) as store:
                    listed = store.list_runs()
                    if listed and store.epochs(listed[0].id):
                        run_id = listed[0].id
                        break
            time.sleep(0.2)
        assert run_id, "the run never finished an epoch"
        with RunStore(runs) as store:
            store.send(run_id, Command("stop"))
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, output
    with RunStore(runs) as store:
        (record,) = store.list_runs()  # rank 1 recorded nothing
        record = store.get_run(record.id)
        assert (record.status, record.name) == ("stopped", "two ranks")
        assert 1 <= record.epochs_done < 200 and record.last_checkpoint
        started = [event for _, event in store.events(record.id) if isinstance(event, RunStarted)]
        assert len(started) == 1 and started[0].step_path == "eager" and started[0].processes == 2
    assert output.count("Training scratch-mlp") == 1 and len(re.findall(r"Epoch +1/200", output)) == 1  # rank 0 alone
    assert "Stopped after" in output


def test_gpus_without_a_gpu_is_one_line_and_exit_2(capsys, monkeypatch):
    from tui_trainer.cli import main

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert main(["train", "--gpus", "2", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gpus: got 2" in err and "sees no CUDA GPU" in err


def test_gpus_needs_a_gpu_device_and_a_background_start_without_gpus_fails_saying_why(tmp_path, capsys):
    from tui_trainer.cli import main
    from tui_trainer.engine.config import ConfigError
    from tui_trainer.runs.spawn import SpawnError, start_run
    from tui_trainer.runs.store import RunStore

    with pytest.raises(ConfigError, match=r"^gpus: 2 processes need --device auto or cuda .*got cpu$"):
        CONFIG.replace(gpus=2)
    assert main(["train", "--gpus", "2", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().endswith("--gpus: 2 processes need --device auto or cuda (each rank takes "
                                                   "the GPU of its number), got cpu")
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs: the refusal below cannot happen here")
    with RunStore(tmp_path / "runs") as store:
        with pytest.raises(SpawnError, match=r"^gpus: got 2; .*so choose 1 to 1$"):
            start_run(store, CONFIG.replace(device="auto", gpus=2))
        (record,) = store.list_runs()
        assert record.status == "failed" and "gpus: got 2" in store.get_run(record.id).message


def test_a_background_run_on_two_ranks_builds_the_stored_run_and_its_kept_model_source_and_resumes_on_two(
        tmp_path, monkeypatch):
    """The app's and `train --detach`'s road for several GPUs, on the CPU: the spawn starts torchrun, and each
    rank reads the run from the store (rank 0 records it), building the model from the source kept with the run
    though the file changed since; `train --resume` then starts two ranks again. Gloo stands in for NCCL; the GPU
    check is lifted."""
    import hashlib

    from tui_trainer.cli import main
    from tui_trainer.engine import distributed
    from tui_trainer.engine.events import EvaluationEnded
    from tui_trainer.engine.model_file import ready
    from tui_trainer.runs.spawn import start_run
    from tui_trainer.runs.store import RunStore

    monkeypatch.setattr(distributed, "gpus_missing", lambda gpus, found=None: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = tmp_path / "net.py"
    path.write_text("import math\nfrom torch import nn\n\n\ndef Net(image_shape, num_classes, width=16):\n"
                    "    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), width), nn.ReLU(),\n"
                    "                         nn.Linear(width, num_classes))\n")
    kept = hashlib.sha256(path.read_bytes()).hexdigest()
    config = ready(CONFIG.replace(device="auto", gpus=2, name="two in the background", model=f"{path}:Net",
                                  model_args={"width": 24}))
    path.write_text("raise SystemExit('changed after the run was made')\n")
    with RunStore(tmp_path / "runs") as store:
        spawned = start_run(store, config)
        deadline = time.monotonic() + 120
        while store.get_run(spawned.run_id).status in ("running", "queued"):
            assert time.monotonic() < deadline, spawned.log.read_text()
            time.sleep(0.3)
        record = store.get_run(spawned.run_id)
        log = spawned.log.read_text()
        assert (record.status, record.epochs_done, record.name) == ("finished", 2, "two in the background"), log
        events = [event for _, event in store.events(record.id)]
        (started,) = [e for e in events if isinstance(e, RunStarted)]
        assert started.config == config and started.train_size == 1000 and started.processes == 2
        assert (started.model_sha256, started.parameters) == (kept, 784 * 24 + 24 + 24 * 10 + 10)
        assert len([e for e in events if isinstance(e, EpochEnded)]) == 2
        assert any(isinstance(e, EvaluationEnded) for e in events)
    assert log.count(f"Training {path}:Net") == 1 and "device cpu (CPU (1 thread)), 2 processes (DDP)" in log

    assert main(["train", "--resume", record.id, "--epochs", "3", "--runs-dir", str(tmp_path / "runs")]) == 0
    with RunStore(tmp_path / "runs") as store:
        record = store.get_run(record.id)
        assert (record.status, record.epochs_done) == ("finished", 3)
        again = [e for _, e in store.events(record.id) if isinstance(e, RunStarted)][-1]
        assert (again.resumed_from_epoch, again.processes, again.model_sha256) == (2, 2, kept)
