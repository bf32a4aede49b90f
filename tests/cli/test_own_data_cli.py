"""`--dataset PATH`: a folder of images, a .npz or a CSV of the user's trains as the built-ins do, and a broken
one is one line, exit 2, with nothing recorded."""

import json

import numpy as np
import pytest

from tui_trainer.runs.store import RunStore

from .test_cli import run_cli


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCH_TUI_DATA", str(tmp_path / "data"))
    return tmp_path / "runs"


def written_npz(path, n=240, side=8, seed=0):
    """Two classes a model can tell apart: bright top half or bright bottom half, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    for i, label in enumerate(y):
        half = slice(0, side // 2) if label else slice(side // 2, side)
        x[i, half] += 180
    np.savez(path, x_train=x[: n * 5 // 6], y_train=y[: n * 5 // 6], x_test=x[n * 5 // 6:], y_test=y[n * 5 // 6:])
    return path


def test_an_npz_of_the_users_trains_learns_and_is_recorded_with_its_fingerprint(homes, tmp_path, capsys):
    data = written_npz(tmp_path / "halves.npz")
    code, out, err = run_cli(["train", "--dataset", str(data), "--epochs", "3", "--device", "cpu", "--lr", "0.01",
                              "--batch-size", "16", "--runs-dir", str(homes), "--jsonl"], capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    started = next(e for e in events if e["event"] == "run_started")
    assert started["classes"] == ["0", "1"] and started["image_shape"] == [1, 8, 8]
    assert started["data_fingerprint"]
    assert next(e for e in events if e["event"] == "eval_end")["test_acc"] > 90
    with RunStore(homes) as store:
        (run,) = store.list_runs()
        assert run.dataset == str(data) and run.state == "finished"


def test_a_csv_needs_its_image_shape_when_its_rows_are_not_square(homes, tmp_path, capsys):
    csv = tmp_path / "train.csv"
    rows = ["label," + ",".join(f"p{i}" for i in range(12))]
    rows += [f"{i % 2}," + ",".join(str((i * 7 + j) % 255) for j in range(12)) for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    code, _, err = run_cli(["train", "--dataset", str(csv), "--epochs", "1", "--runs-dir", str(homes)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(csv) in err and "image-shape" in err.replace(
        "image_shape", "image-shape")
    code, out, err = run_cli(["train", "--dataset", str(csv), "--image-shape", "1,3,4", "--epochs", "1",
                              "--device", "cpu", "--runs-dir", str(homes)], capsys)
    assert code == 0, err
    assert "held out" in out  # no test split in the file: a share of it was held out, and the run says so


@pytest.mark.parametrize("kind", ["missing keys", "one class", "empty folder", "not a number"])
def test_broken_data_is_one_line_exit_2_and_nothing_recorded(homes, tmp_path, capsys, kind):
    if kind == "missing keys":
        path = tmp_path / "bad.npz"
        np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8))
    elif kind == "one class":
        path = tmp_path / "one.npz"
        np.savez(path, x_train=np.zeros((6, 8, 8), np.uint8), y_train=np.zeros(6, np.int64),
                 x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.zeros(2, np.int64))
    elif kind == "empty folder":
        path = tmp_path / "empty"
        (path / "train").mkdir(parents=True)
    else:
        path = tmp_path / "cells.csv"
        path.write_text("label,a,b,c,d\n1,0,1,2,x\n0,1,1,1,1\n")
    code, _, err = run_cli(["train", "--dataset", str(path), "--epochs", "1", "--runs-dir", str(homes)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and path.name in err and "Traceback" not in err
    assert not homes.exists() or RunStore(homes).list_runs() == []
