"""`runs verify` trains a run's first steps again and compares them with its log; `runs show --diff` names what two
runs did not share."""

import re
import sys

import numpy as np

import pytest

from tui_trainer.engine.events import LearningRateChanged
from tui_trainer.runs.store import RunStore

from ..runs.test_store import CONFIG, epoch_end, progress, started

from .test_own_data_cli import written_npz
from .test_runs_cli import run_cli

# 50 steps of 32 images, recorded with one thread. Whether two threads sum the matrix products in another order
# depends on the CPU, its BLAS and how it splits the work: this project's 2-core AMD EPYC VMs have given both
MINI = ["--device", "cpu", "--epochs", "1", "--max-train-samples", "1600", "--batch-size", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two recorded runs: the bundled mini dataset, and an .npz of the user's (whose file a test swaps)."""
    import torch

    from tui_trainer import cli

    threads = torch.get_num_threads()  # a run in this process pins its own: given back for the tests after
    root = tmp_path_factory.mktemp("verify")
    home, data = root / "runs", written_npz(root / "halves.npz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRATCH_TUI_DATA", str(root / "data"))
        assert cli.main(["train", *MINI, "--runs-dir", str(home), "--jsonl"]) == 0
        assert cli.main(["train", "--dataset", str(data), "--device", "cpu", "--epochs", "1", "--batch-size", "16",
                         "--runs-dir", str(home), "--jsonl"]) == 0
    torch.set_num_threads(threads)
    with RunStore(home) as store:
        npz, mini = (r.id for r in store.list_runs())  # newest first
    return root, home, data, mini, npz


def test_a_fresh_run_reproduces_bit_for_bit_and_forcing_another_thread_count_does_not(recorded, capsys):
    _, home, _, mini, _ = recorded
    code, out, err = run_cli(["runs", "verify", mini, "--runs-dir", str(home)], capsys)
    assert code == 0, err
    # its log holds the losses at steps 25 and 50, the epoch's end (and always recorded)
    assert re.search(rf"Run {mini}: reproduced: \d+ loss\(es\) over 50 steps trained again agree bit for bit "
                     r"\(steps 25, 50\)", out)
    assert "environment: as recorded" in out

    code, out, err = run_cli(["runs", "verify", mini, "--threads", "2", "--runs-dir", str(home)], capsys)
    assert "threads: 1 then, 2 now" in out  # named whether or not the losses moved
    if "not reproduced" in out:  # two threads summed in another order
        assert code == 1 and f"Run {mini}: not reproduced: the first difference is at step 25: loss" in out
    else:  # the work split without changing any sum: the same bits, said so, exit 0
        assert code == 0 and f"Run {mini}: reproduced: 2 loss(es) over 50 steps trained again agree bit for bit" in out


def test_a_run_whose_data_file_was_swapped_fails_naming_the_step_and_the_data(recorded, capsys, monkeypatch):
    root, home, data, _, npz = recorded
    monkeypatch.setenv("SCRATCH_TUI_DATA", str(root / "data"))
    code, out, err = run_cli(["runs", "verify", npz, "--runs-dir", str(home)], capsys)
    assert code == 0, out + err
    written_npz(data, seed=1)  # the same shape and classes, other images
    code, out, err = run_cli(["runs", "verify", npz, "--runs-dir", str(home)], capsys)
    assert code == 1 and err == ""
    assert re.search(rf"Run {npz}: not reproduced: the first difference is at step \d+: loss", out)
    assert re.search(r"data_fingerprint: [0-9a-f]{16} then, [0-9a-f]{16} now", out)
    data.unlink()  # gone altogether: one line saying so, exit 2
    code, out, err = run_cli(["runs", "verify", npz, "--runs-dir", str(home)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "halves.npz" in err and "Traceback" not in err


def test_show_lists_the_receipt_and_diff_names_every_difference(recorded, capsys):
    _, home, data, mini, npz = recorded
    code, out, _ = run_cli(["runs", "show", mini, "--runs-dir", str(home)], capsys)
    receipt = out.split("Receipt:\n", 1)[1]
    for item in ("threads = 1", "versions.torch = ", "versions.python = ", "versions.numpy = ",
                 "versions.textual = ", "machine.cpu = ", "numerics.deterministic = False", "data_fingerprint = "):
        assert f"  {item}" in receipt

    code, out, _ = run_cli(["runs", "show", mini, "--diff", npz, "--runs-dir", str(home)], capsys)
    assert code == 0 and out.startswith(f"Run {mini} ")
    named = {line.split(":")[0].strip() for line in out.splitlines()[1:]}
    # settings (the dataset, the batch and its size, the thread count as pinned) and the receipt's data and threads
    assert {"dataset", "batch_size", "max_train_samples", "data_fingerprint"} <= named
    assert "versions.torch" not in named  # the same machine: nothing else differs
    code, out, _ = run_cli(["runs", "show", mini, "--diff", mini, "--runs-dir", str(home)], capsys)
    assert out.strip().endswith("the same settings and receipt")


def test_tensorboard_reads_back_the_exported_scalars_equal_to_the_log(recorded, capsys):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, home, _, mini, npz = recorded
    target = root / "tb"
    code, out, err = run_cli(["runs", "export", "--all", "--format", "tensorboard", "--output", str(target),
                              "--runs-dir", str(home)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == sorted([mini, npz])  # a folder per run
    with RunStore(home) as store:
        view = store.view(mini)
    reader = EventAccumulator(str(target / mini), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    reader.Reload()
    as_float32 = lambda values: np.asarray(values, dtype=np.float32).tolist()  # noqa: E731  (TensorBoard's width)

    steps = reader.Scalars("train/loss")
    assert [s.step for s in steps] == sorted(view.steps) and len(steps) >= 2
    assert [s.value for s in steps] == as_float32([view.steps[s.step] for s in steps])
    epochs = reader.Scalars("epoch/train_loss")
    assert [(s.step, s.value) for s in epochs] == list(zip([e.epoch for e in view.epochs],
                                                           as_float32([e.train_loss for e in view.epochs])))
    assert [s.value for s in reader.Scalars("epoch/val_acc")] == as_float32([e.val_acc for e in view.epochs])
    assert [s.value for s in reader.Scalars("test/acc")] == as_float32([view.evaluation.test_acc])
    tags = reader.Tags()
    assert "lr" in tags["scalars"] and "layers/layers.0/grad_norm" in tags["scalars"]
    assert "layers/layers.0/weights" in tags["histograms"]  # the probe's histograms, as TensorBoard's
    assert any(tag.startswith("run") for tag in tags["tensors"])  # the repeat line and the receipt, as text

    again = run_cli(["runs", "export", mini, "--format", "tensorboard", "--output", str(target),
                     "--runs-dir", str(home)], capsys)
    assert again[0] == 0 and len(list((target / mini).glob("events.out.tfevents.*"))) == 1  # replaced, not added

    # a steered run (its log written here, no training): the lr change as text at its step
    with RunStore(root / "steered") as store:
        steered = store.create_run(CONFIG)
        for event in (started(), progress(1), progress(2), LearningRateChanged(lr=0.02, step=2, previous=0.01),
                      progress(3), epoch_end(1)):
            store.append(steered, event)
    code, _, err = run_cli(["runs", "export", steered, "--format", "tensorboard", "--output", str(target),
                            "--runs-dir", str(root / "steered")], capsys)
    assert code == 0, err
    reader = EventAccumulator(str(target / steered), size_guidance={"tensors": 0})
    reader.Reload()
    [text] = [tag for tag in reader.Tags()["tensors"] if tag.startswith("changes")]
    [change] = reader.Tensors(text)
    said = change.tensor_proto.string_val[0].decode()
    assert change.step == 2 and re.search(r"lr 0\.01 (→|->) 0\.02 \(set by you\)", said)


def test_without_tensorboard_the_export_says_how_to_install_it_in_one_line(recorded, capsys, monkeypatch):
    _, home, _, mini, _ = recorded
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: importing it fails
    code, out, err = run_cli(["runs", "export", mini, "--format", "tensorboard", "--output", "unused",
                              "--runs-dir", str(home)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "pip install '.[tensorboard]'" in err
    code, _, err = run_cli(["runs", "export", mini, "--format", "tensorboard", "--runs-dir", str(home)], capsys)
    assert code == 2 and "--output DIR" in err
