"""Issue 11, run management: forks, replayed lr changes, the lr a resume keeps, the checkpoint policy and
`runs show`/`runs prune`/`runs export` saying all of it."""

import json
import os
import re
import shlex

import pytest

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.control import TrainingControl
from tui_trainer.engine.events import BatchProgress, EpochEnded, LearningRateChanged
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.replay import repeat_line
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.worker import build_run

from .test_runs_cli import run_cli

SMALL = ["--max-train-samples", "800", "--device", "cpu", "--batch-size", "64"]


def train(capsys, *args):
    code, out, err = run_cli(["train", *SMALL, *args], capsys)
    assert code == 0, err
    return re.search(r"; run ([0-9a-f]{8})", out.splitlines()[0]).group(1), out


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A three-epoch run that keeps two epoch checkpoints (and its best)."""
    home = tmp_path_factory.mktemp("forks")
    from tui_trainer import cli

    assert cli.main(["train", *SMALL, "--epochs", "3", "--keep-checkpoints", "2", "--jsonl", "--runs-dir",
                     str(home)]) == 0
    with RunStore(home) as store:
        return home, store.list_runs()[0].id


def test_the_checkpoint_policy_keeps_the_last_n_and_the_best_by_the_monitor(parent, capsys):
    home, run_id = parent
    with RunStore(home) as store:
        epochs = store.epochs(run_id)
        folder = store.checkpoint_dir(run_id)
    best = min(epochs, key=lambda e: e["val_loss"])["epoch"]  # --monitor val_loss: lower is better
    kept = sorted(p.name for p in folder.glob("epoch-*.pt"))
    assert kept == sorted({f"epoch-{e:04d}.pt" for e in (2, 3, best)})
    assert os.path.samefile(folder / "best.pt", folder / f"epoch-{best:04d}.pt")

    code, out, _ = run_cli(["runs", "show", run_id, "--runs-dir", str(home)], capsys)
    assert code == 0 and re.search(r"\nDisk: [\d.]+ [KM]B \(checkpoints and log", out)
    assert re.search(r"\n  CHECKPOINT +EPOCH +SIZE\n  epoch-0002\.pt +2 +[\d.]+ [KM]B\n", out)
    assert re.search(rf"\n  best\.pt +{best} +[\d.]+ [KM]B\n", out) and re.search(r"\n  last\.pt +3 ", out)


def test_fork_bad_input_is_one_line_exit_2(parent, capsys):
    home, run_id = parent
    have = ", ".join(str(int(p.stem[6:])) for p in sorted((home / "checkpoints" / run_id).glob("epoch-*.pt")))
    cases = [(["--fork", "zzzz"], "--fork: no run zzzz; `scratch-tui runs` lists them"),
             (["--fork", f"{run_id}@9"], f"--fork: run {run_id} has no checkpoint of epoch 9; epochs with one: {have}"),
             (["--fork", f"{run_id}@x"], f"--fork: got '{run_id}@x'; the epoch after @ must be a whole number"),
             (["--fork", run_id, "--model", "cnn"], "a fork keeps its parent's model (its checkpoint holds them); "
                                                    "drop --model"),
             (["--fork", run_id], "--epochs: got 3; the fork starts after epoch 3, so ask for more epochs"),
             (["--fork", run_id, "--preset", "tutorial"], "--fork records one new run from another; drop --preset")]
    for args, words in cases:
        code, _, err = run_cli(["train", "--runs-dir", str(home), *args], capsys)
        assert code == 2 and words in err and err.count("\n") == 1, err
    with RunStore(home) as store:
        assert len(store.list_runs()) == 1  # no refused fork left a run behind


def test_a_fork_continues_its_parents_state_exactly_and_shows_what_changed(parent, capsys):
    home, run_id = parent
    code, out, err = run_cli(["train", "--runs-dir", str(home), "--fork", f"{run_id}@2", "--jsonl"], capsys)
    assert code == 0, err
    with RunStore(home) as store:
        fork = store.list_runs()[0].id
        record = store.get_run(fork)
        # weights, optimizer, schedule and RNGs carried over: epoch 3 again is epoch 3 bit for bit
        assert [e["epoch"] for e in store.epochs(fork)] == [3]
        assert store.epochs(fork)[0]["train_loss"] == store.epochs(run_id)[2]["train_loss"]
    assert (record.parent_id, record.parent_epoch) == (run_id, 2)

    code, out, err = run_cli(["train", "--runs-dir", str(home), "--fork", run_id[:5], "--lr", "0.001", "--epochs",
                              "4", "--jsonl"], capsys)
    assert code == 0, err
    with RunStore(home) as store:
        fork = store.list_runs()[0].id
        assert [e["epoch"] for e in store.epochs(fork)] == [4]
    code, out, _ = run_cli(["runs", "show", fork, "--runs-dir", str(home)], capsys)
    assert code == 0
    assert f"  forked from run {run_id} at epoch 3; changed: epochs 3 \u2192 4, lr 0.003 \u2192 0.001\n" in out
    assert f"Repeat it with:\n  scratch-tui train --fork {run_id}@3 --epochs 4 --lr 0.001\n" in out


def set_lr_at(run, store, steps, stop_at=None):
    """Record `run`, setting the lr at the progress reports of `steps` ({step: lr}), as the keyboard would."""
    events = []
    for event in recorded(run, store):
        events.append(event)
        if isinstance(event, BatchProgress) and event.step in steps:
            run.control.set_lr(steps[event.step])
        if isinstance(event, BatchProgress) and event.step == stop_at:
            run.control.stop()
    return events


def test_a_repeated_run_replays_its_lr_changes_at_the_same_steps(capsys, runs_home):
    config = TrainConfig(epochs=4, max_train_samples=800, device="cpu", batch_size=32)  # 23 steps an epoch
    with RunStore() as store:
        run = TrainingRun(config, TrainingControl(), progress_seconds=0)
        events = set_lr_at(run, store, {25: 0.01, 50: 0.0005})
        changed = [(e.step, e.lr) for e in events if isinstance(e, LearningRateChanged)]
        assert changed == [(25, 0.01), (50, 0.0005)]
        line = repeat_line(store, store.get_run(run.run_id))
    assert line.endswith(f" --replay {run.run_id}")
    code, out, _ = run_cli(["runs", "show", run.run_id], capsys)
    assert f"Repeat it with:\n  {line}\n" in out
    assert re.search(r"\n  step 25 \(epoch 2\): lr [\d.]+ \u2192 0\.01 \(set by you\)\n"
                     r"  step 50 \(epoch 3\): lr [\d.]+ \u2192 0\.0005 \(set by you\)\n", out)

    code, out, err = run_cli(shlex.split(line)[1:] + ["--jsonl"], capsys)
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [(e["step"], e["lr"]) for e in lines if e["event"] == "lr_changed"] == changed
    with RunStore() as store:
        again = store.list_runs()[0].id
        assert [e["lr"] for e in store.epochs(again)] == [e["lr"] for e in store.epochs(run.run_id)]
        assert [e["train_loss"] for e in store.epochs(again)] == [e["train_loss"] for e in store.epochs(run.run_id)]
        code, out, _ = run_cli(["runs", "export", again], capsys)
    changes = json.loads(out)["changes"]
    assert [(c["step"], c["epoch"], c["what"], c["value"]) for c in changes] == [(25, 2, "lr", 0.01),
                                                                                  (50, 3, "lr", 0.0005)]
    assert changes[0]["by"] == f"replayed from {run.run_id}"


def test_a_resumed_run_keeps_the_lr_in_force_when_it_stopped(runs_home):
    config = TrainConfig(epochs=3, max_train_samples=800, device="cpu", batch_size=32, schedule="constant")
    with RunStore() as store:
        first = TrainingRun(config, TrainingControl(), progress_seconds=0)
        set_lr_at(first, store, {25: 0.0007}, stop_at=50)
        assert store.get_run(first.run_id).status == "stopped"
        second = build_run(store, first.run_id, control=TrainingControl(), progress_seconds=0)
        assert second.base_lr == 0.0007  # from the checkpoint: the set lr, not the config's 0.003
        after = list(recorded(second, store))
    assert {e.lr for e in after if isinstance(e, (BatchProgress, EpochEnded))} == {0.0007}
