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
    assert re.search(rf"\n  CHECKPOINT +EPOCH +STEP +SIZE +FORK WITH\n  epoch-0002\.pt +2 +26 +[\d.]+ [KM]B +"
                     rf"--fork {run_id}@2\n", out)
    assert re.search(rf"\n  best\.pt +{best} +{13 * best} +[\d.]+ [KM]B +--fork {run_id}@{best}\n", out)
    assert re.search(rf"\n  last\.pt +3 +39 +[\d.]+ [KM]B +--fork {run_id}\n", out)


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


# -- issue 18: a fork watches its own epochs; a checkpoint asked for is kept as step-N.pt and can be forked --------

OVERFITS = ["--max-train-samples", "200", "--batch-size", "50", "--lr", "0.01", "--schedule", "constant",
            "--label-smoothing", "0", "--device", "cpu"]  # 4 steps an epoch; the val loss turns up after a few


def jsonl(capsys, *args):
    """`train ... --jsonl`: its events as dicts, by name."""
    code, out, err = run_cli(["train", *args, "--jsonl"], capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    return lambda name: [e for e in events if e["event"] == name]


@pytest.fixture(scope="module")
def stopped_early(tmp_path_factory):
    """A run stopped early (patience 2) that keeps its best weights for restore_best: its id, epochs and home."""
    home = tmp_path_factory.mktemp("stopped-early")
    from tui_trainer import cli

    assert cli.main(["train", *OVERFITS, "--epochs", "30", "--early-stopping", "2", "--restore-best",
                     "--runs-dir", str(home), "--jsonl"]) == 0
    with RunStore(home) as store:
        run_id = store.list_runs()[0].id
        epochs = store.epochs(run_id)
    assert len(epochs) < 30  # it did stop early
    return home, run_id, epochs


def test_a_fork_of_an_early_stopped_run_trains_from_its_weights_with_fresh_patience(stopped_early, capsys):
    home, run_id, parent = stopped_early
    done = len(parent)
    of = jsonl(capsys, "--runs-dir", str(home), "--fork", run_id, "--lr", "0.001", "--epochs", str(done + 3))
    epochs = of("epoch_end")
    # patience 2 starts again: the fork's first epoch is its best so far, so it trains at least three
    assert [e["epoch"] for e in epochs][:3] == [done + 1, done + 2, done + 3]
    assert all(e["best_epoch"] > done for e in of("early_stopped"))
    # from the parent's weights: its loss goes on from the parent's last epoch, not from a fresh model's first
    first = epochs[0]["train_loss"]
    assert abs(first - parent[-1]["train_loss"]) < abs(first - parent[0]["train_loss"]) / 10
    with RunStore(home) as store:
        record = store.get_run(of("run_started")[0]["run_id"])
    assert (record.status, record.epochs_done) == ("finished", done + 3)


def test_restore_best_on_a_fork_restores_the_forks_own_best_epoch(stopped_early, capsys):
    home, run_id, parent = stopped_early
    done = len(parent)
    of = jsonl(capsys, "--runs-dir", str(home), "--fork", run_id, "--lr", "0.001", "--epochs", str(done + 3))
    epochs = {e["epoch"]: e["val_loss"] for e in of("epoch_end")}
    best = min(epochs, key=epochs.get)
    assert [(e["epoch"], e["last_epoch"]) for e in of("best_restored")] == [(best, max(epochs))]
    assert of("eval_end")[0]["weights_epoch"] == best > done  # never the parent's best epoch


def test_keep_steering_carries_the_parents_patience_into_the_fork(stopped_early, capsys):
    home, run_id, parent = stopped_early
    of = jsonl(capsys, "--runs-dir", str(home), "--fork", run_id, "--lr", "0.001", "--epochs", "40",
               "--keep-steering")
    assert of("epoch_end") == []  # its patience was spent already: it stops before training an epoch
    stopped = of("early_stopped")[0]
    assert (stopped["epoch"], stopped["best_epoch"]) == (len(parent), min(parent, key=lambda e: e["val_loss"])["epoch"])

    code, _, err = run_cli(["train", "--runs-dir", str(home), "--keep-steering"], capsys)
    assert code == 2 and "--keep-steering carries a parent's early stopping" in err and err.count("\n") == 1


def test_the_plateau_count_of_a_fork_starts_fresh(capsys):
    from tui_trainer.engine.checkpoints import load_checkpoint
    from tui_trainer.engine.monitor import Monitor
    from tui_trainer.runs.fork import fork_run

    code, _, err = run_cli(["train", *OVERFITS, "--schedule", "plateau", "--plateau-patience", "3", "--epochs", "12",
                            "--keep-checkpoints", "12"], capsys)
    assert code == 0, err
    with RunStore() as store:
        run_id = store.list_runs()[0].id
        folder = store.checkpoint_dir(run_id)
        monitors = {e: load_checkpoint(folder / f"epoch-{e:04d}.pt").meta["monitor"] for e in range(1, 13)}
        # an epoch end two epochs into a plateau: one more epoch without a new best would cut the lr
        epoch = next(e for e, m in monitors.items() if m["plateau_wait"] == 2)
        run = fork_run(store, run_id, epoch, {"lr": 0.003})
        run.setup()
        assert run.monitor == Monitor("val_loss")  # no best, no best epoch, no stale epochs, no plateau wait
    code, _, err = run_cli(["train", "--fork", f"{run_id}@{epoch}", "--lr", "0.003", "--epochs", str(epoch + 1)],
                           capsys)
    assert code == 0, err
    with RunStore() as store:
        fork = store.list_runs()[0].id
        assert store.logged(fork, "lr_changed") == []  # a fresh count: no cut after the fork's first epoch


@pytest.fixture(scope="module")
def asked(tmp_path_factory):
    """A five-epoch run (16 steps an epoch) that keeps 2 checkpoints and asked for one at steps 25, 50 and 75."""
    home = tmp_path_factory.mktemp("asked")
    config = TrainConfig(epochs=5, max_train_samples=800, device="cpu", batch_size=50, keep_checkpoints=2)
    with RunStore(home) as store:
        run = TrainingRun(config, TrainingControl(), progress_seconds=0)
        run.control.request_checkpoint()  # saved at the first progress report, step 25
        for event in recorded(run, store):
            if isinstance(event, BatchProgress):
                run.control.request_checkpoint()  # and at each after it
        return home, run.run_id


def test_a_checkpoint_asked_for_keeps_its_own_file_under_the_retention_policy(asked, capsys):
    from tui_trainer.engine.checkpoints import load_checkpoint
    from tui_trainer.engine.events import event_from_dict

    home, run_id = asked
    with RunStore(home) as store:
        folder = store.checkpoint_dir(run_id)
        saved = [event_from_dict(e) for e in store.logged(run_id, "checkpoint_saved")]
    requested = [e for e in saved if e.reason == "request"]
    assert [(e.step, e.epoch, e.mid_epoch) for e in requested] == [(25, 1, True), (50, 3, True), (75, 4, True)]
    assert [os.path.basename(e.kept_path) for e in requested] == ["step-25.pt", "step-50.pt", "step-75.pt"]
    # the epoch ends since replaced last.pt; the newest two asked for are kept (--keep-checkpoints 2)
    assert sorted(p.name for p in folder.glob("step-*.pt")) == ["step-50.pt", "step-75.pt"]
    kept = load_checkpoint(folder / "step-50.pt")
    assert (kept.epoch, kept.step, kept.mid_epoch, kept.meta["reason"]) == (3, 50, True, "request")
    assert requested[1].describe() == (f"Checkpoint saved at epoch 4, step 50, mid-epoch (request): "
                                                 f"{folder / 'step-50.pt'}")
    code, out, _ = run_cli(["runs", "show", run_id, "--runs-dir", str(home)], capsys)
    assert code == 0
    assert re.search(rf"\n  step-50\.pt +4 \(mid\) +50 +[\d.]+ [KM]B +--fork {run_id}@step-50\n", out)
    assert re.search(rf"\n  step-75\.pt +5 \(mid\) +75 +[\d.]+ [KM]B +--fork {run_id}@step-75\n", out)


def test_the_app_log_says_the_epoch_and_step_of_a_checkpoint_asked_for(asked):
    home, run_id = asked
    with RunStore(home) as store:
        view = store.view(run_id)
    lines = [line for line in view.log if line.startswith("Checkpoint saved")]
    assert [line.split(":")[0] for line in lines] == [f"Checkpoint saved at epoch {e}, step {s}, mid-epoch (request)"
                                                      for e, s in ((2, 25), (4, 50), (5, 75))]


def test_a_fork_from_a_mid_epoch_checkpoint_continues_that_epoch_exactly(asked, capsys):
    home, run_id = asked
    of = jsonl(capsys, "--runs-dir", str(home), "--fork", f"{run_id}@step-50")
    assert (of("run_started")[0]["resumed_from_epoch"], of("run_started")[0]["resumed_from_step"]) == (3, 50)
    with RunStore(home) as store:
        fork = store.list_runs()[0].id
        # epoch 4 goes on from its 50th step with the parent's sample order and running sums: bit for bit
        assert [(e["epoch"], e["train_loss"], e["val_loss"]) for e in store.epochs(fork)] == \
            [(e["epoch"], e["train_loss"], e["val_loss"]) for e in store.epochs(run_id)][3:]
    code, out, _ = run_cli(["runs", "show", fork, "--runs-dir", str(home)], capsys)
    assert f"  forked from run {run_id} at epoch 4, step 50 (mid-epoch); no setting changed\n" in out
    assert f"Repeat it with:\n  scratch-tui train --fork {run_id}@step-50\n" in out


def test_a_fork_started_in_another_process_loads_the_same_step_checkpoint(asked):
    from tui_trainer.runs.fork import fork_run, build_fork

    home, run_id = asked
    with RunStore(home) as store:
        created = fork_run(store, run_id, "step-75", {"lr": 0.001}, keep_steering=True)
        assert store.logged(created.run_id, "forked_from")[-1]["checkpoint"] == "step-75.pt"
        again = build_fork(store, created.run_id)  # what a detached child (`train --run-id`) builds
    assert (again.epoch, again.step, again.base_lr) == (4, 75, 0.001)
    assert again._pending_restore["progress"]["batches_done"] == 75 - 4 * 16
    assert "monitor" in again._pending_restore["progress"]  # kept, as asked: the parent's monitor goes on


def test_forking_a_missing_or_misnamed_step_checkpoint_is_one_line_exit_2(asked, capsys):
    home, run_id = asked
    cases = [(f"{run_id}@step-25", f"--fork: run {run_id} has no checkpoint step-25.pt; on-demand checkpoints: "
                                   f"step-50, step-75"),
             (f"{run_id}@step-x", "the epoch after @ must be a whole number of 1 or more, or name a checkpoint "
                                  "written on demand as step-N")]
    for fork, words in cases:
        code, _, err = run_cli(["train", "--runs-dir", str(home), "--fork", fork], capsys)
        assert code == 2 and words in err and err.count("\n") == 1, err
