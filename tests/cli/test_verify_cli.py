"""`runs verify` trains a run's first steps again and compares them with its log; `runs show --diff` names what two
runs did not share."""

import re

import pytest

from tui_trainer.runs.store import RunStore

from .test_own_data_cli import written_npz
from .test_runs_cli import run_cli

# 94 steps of 32 images: enough that one thread and two sum the matrix products in another order by step 25
MINI = ["--device", "cpu", "--epochs", "1", "--max-train-samples", "3000", "--batch-size", "32", "--threads", "2"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two recorded runs: the bundled mini dataset, and an .npz of the user's (whose file a test swaps)."""
    from tui_trainer import cli

    root = tmp_path_factory.mktemp("verify")
    home, data = root / "runs", written_npz(root / "halves.npz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRATCH_TUI_DATA", str(root / "data"))
        assert cli.main(["train", *MINI, "--runs-dir", str(home), "--jsonl"]) == 0
        assert cli.main(["train", "--dataset", str(data), "--device", "cpu", "--epochs", "1", "--batch-size", "16",
                         "--runs-dir", str(home), "--jsonl"]) == 0
    with RunStore(home) as store:
        npz, mini = (r.id for r in store.list_runs())  # newest first
    return root, home, data, mini, npz


def test_a_fresh_run_reproduces_bit_for_bit_and_forcing_another_thread_count_does_not(recorded, capsys):
    _, home, _, mini, _ = recorded
    code, out, err = run_cli(["runs", "verify", mini, "--runs-dir", str(home)], capsys)
    assert code == 0, err
    # its log holds the losses at steps 25, 50 (always recorded) and the epoch's end, 94
    assert re.search(rf"Run {mini}: reproduced: \d+ loss\(es\) over its first 94 steps agree bit for bit "
                     r"\(steps 25, 50.*94\)", out)
    assert "environment: as recorded" in out

    code, out, err = run_cli(["runs", "verify", mini, "--threads", "1", "--runs-dir", str(home)], capsys)
    assert code == 1, out
    assert f"Run {mini}: not reproduced: the first difference is at step 25: loss" in out
    assert "threads: 2 then, 1 now" in out


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
    for item in ("threads = 2", "versions.torch = ", "versions.python = ", "versions.numpy = ",
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
