"""Issue 19, a model from a file on the command line: `train --model FILE.py:NAME --model-arg KEY=VALUE` trains,
resumes after a SIGKILL, forks, evaluates, queues and sweeps over a model argument, always from the source kept
with the run; a broken file is one line and exit 2, and nothing is recorded."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tui_trainer.runs.store import RunStore

from .test_runs_cli import run_cli

QUICK = ["--max-train-samples", "1000", "--device", "cpu", "--batch-size", "64", "--lr", "0.01"]

NET = '''
import math
from torch import nn


class Net(nn.Module):
    def __init__(self, image_shape, num_classes, width=32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), width), nn.ReLU(),
                                  nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)
'''


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def sha(path):
    return hashlib.sha256(path.read_text().encode()).hexdigest()


def only_run(home):
    with RunStore(home) as store:
        runs = store.list_runs()
        assert len(runs) == 1
        return store.get_run(runs[0].id)


def test_a_model_file_trains_headless_learns_and_keeps_its_source(net, runs_home, capsys):
    code, out, err = run_cli(["train", *QUICK, "--model", f"{net}:Net", "--model-arg", "width=64", "--epochs", "1",
                              "--jsonl"], capsys)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    first, evaluation = lines[0], next(e for e in lines if e["event"] == "eval_end")
    assert first["event"] == "run_started" and first["model_sha256"] == sha(net)
    assert first["config"]["model_args"] == {"width": 64} and first["config"]["model_source"] == NET
    assert evaluation["test_acc"] > 50  # chance is 10%
    record = only_run(runs_home)
    assert record.model == f"{net}:Net" and record.config["model_source"] == NET

    code, out, _ = run_cli(["runs", "show", record.id], capsys)
    assert code == 0 and f"  model file: {net}:Net, sha256 {sha(net)} ({len(NET.splitlines())} lines kept with the run;" in out
    assert f"scratch-tui train --model {net}:Net --model-arg width=64 " in out
    assert "model_source" not in out and "model_args = {width = 64}" in out


BROKEN = [
    ("class Net(:\n", "Net", ":1: syntax error"),
    (NET, "Missing", ": has no Missing; it defines Net: name one of them after the colon"),
    ("Net = 3\n", "Net", ":1: Net is an int, not an nn.Module class or a function that returns one"),
    ("class Net:\n    pass\n", "Net", ":1: Net is a class but not an nn.Module"),
    (NET.replace("super().__init__()", "super().__init__()\n        raise RuntimeError('no')"), "Net",
     ":9: Net(image_shape=(1, 28, 28), num_classes=10) raised RuntimeError: no; fix Net"),
    (NET.replace("return self.body(x)", "return self.body(x[:, :, :5])"), "Net",
     ":13: forward on a batch of shape (2, 1, 28, 28) raised RuntimeError: mat1 and mat2 shapes"),
    (NET.replace("nn.Linear(width, num_classes)", "nn.Linear(width, 3)"), "Net",
     ":12: forward returned shape (2, 3) for a batch of shape (2, 1, 28, 28); it must return logits of shape "
     "(2, 10)"),
    ("import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n"
     "        return torch.zeros(len(x), 10)\n\ndef make(image_shape, num_classes):\n    return Net()\n", "make",
     ":8: make has no trainable parameters"),
]


@pytest.mark.parametrize("source, name, said", BROKEN, ids=["syntax", "missing", "not-callable", "not-a-module",
                                                            "init", "forward", "shape", "no-parameters"])
@pytest.mark.parametrize("command", [["train"], ["train", "--detach"], ["queue", "add", "--no-start"]])
def test_a_broken_model_file_is_one_line_exit_2_and_nothing_is_recorded(tmp_path, runs_home, capsys, source, name,
                                                                        said, command):
    path = tmp_path / "broken.py"
    path.write_text(source)
    code, out, err = run_cli([*command, *QUICK, "--model", f"{path}:{name}"], capsys)
    assert code == 2 and out == "", err
    prefix = f"scratch-tui {' '.join(command[:2]) if command[0] == 'queue' else 'train'}: error: --model: {path}"
    assert err.startswith(prefix) and said in err and err.count("\n") == 1, err
    with RunStore(runs_home) as store:
        assert store.list_runs() == []


def test_a_missing_file_and_a_bad_model_arg_are_one_line_too(tmp_path, runs_home, capsys, net):
    code, _, err = run_cli(["train", *QUICK, "--model", f"{tmp_path}/nope.py:Net"], capsys)
    assert code == 2 and f"--model: {tmp_path}/nope.py: no such file" in err and err.count("\n") == 1
    code, _, err = run_cli(["train", *QUICK, "--model", f"{net}:Net", "--model-arg", "width"], capsys)
    assert code == 2 and "--model-arg: got 'width'; give NAME=VALUE" in err
    code, _, err = run_cli(["train", *QUICK, "--model", f"{net}:Net", "--model-arg", "height=3"], capsys)
    assert code == 2 and ("--model: " + str(net) + ":6: Net(image_shape=(1, 28, 28), num_classes=10, height=3) "
                          "raised TypeError") in err
    with RunStore(runs_home) as store:
        assert store.list_runs() == []


def wait_for(store, run_id, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition(record := store.get_run(run_id)):
        assert time.monotonic() < deadline, f"timed out; run is {record.status}: {record.message}"
        time.sleep(0.1)
    return record


def test_killed_resumed_forked_and_evaluated_from_the_kept_source_after_the_file_changed(net, runs_home, capsys):
    result = subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--detach", *QUICK, "--model",
                             f"{net}:Net", "--model-arg", "width=48", "--epochs", "500", "--runs-dir", str(runs_home)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_id, pid = re.match(r"Started run (\w{8}) in the background \(pid (\d+)\)", result.stdout).groups()
    store = RunStore(runs_home)
    # its first checkpoint on disk (the epoch is recorded a moment before the file is written)
    wait_for(store, run_id,
             lambda r: r.epochs_done >= 1 and r.last_checkpoint and os.path.exists(r.last_checkpoint))
    os.kill(int(pid), signal.SIGKILL)  # no stop, no last words: only its checkpoints are left
    for _ in range(100):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    kept = sha(net)
    net.write_text("raise SystemExit('the file changed; a run that has started must not read it again')\n")

    done = store.get_run(run_id).epochs_done
    code, out, err = run_cli(["train", "--resume", run_id, "--epochs", str(done + 1), "--jsonl"], capsys)
    assert code == 0, err
    resumed = json.loads(out.splitlines()[0])
    assert resumed["model_sha256"] == kept and resumed["resumed_from_epoch"] >= 1
    record = store.get_run(run_id)
    assert (record.status, record.epochs_done, record.segment) == ("finished", done + 1, 2)

    code, out, err = run_cli(["train", "--fork", run_id, "--epochs", str(done + 2), "--lr", "0.001", "--jsonl"],
                             capsys)
    assert code == 0, err
    forked = json.loads(out.splitlines()[0])
    assert forked["model_sha256"] == kept and forked["config"]["model_args"] == {"width": 48}
    code, _, err = run_cli(["train", "--fork", run_id, "--model-arg", "width=8"], capsys)
    assert code == 2 and "a fork keeps its parent's model_args" in err and "drop --model-arg" in err

    code, out, err = run_cli(["eval", run_id], capsys)
    assert code == 0 and f"Evaluating run {run_id}, best checkpoint" in out and "Test Accuracy" in out, err
    store.close()


def test_a_queued_run_and_a_sweep_over_a_model_argument_train_from_the_kept_source(net, runs_home, tmp_path, capsys):
    sweep = tmp_path / "widths.toml"
    sweep.write_text(textwrap.dedent(f'''
        model = "{net}:Net"
        epochs = 1
        max_train_samples = 500
        device = "cpu"

        [model_args]
        width = 8

        [sweep]
        name = "widths"
        model_args.width = [16, 32]
    '''))
    code, out, err = run_cli(["queue", "add", *QUICK, "--epochs", "1", "--model", f"{net}:Net", "--model-arg",
                              "width=24", "--no-start"], capsys)
    assert code == 0, err
    queued = re.search(r"Queued run (\w+)", out).group(1)
    net.write_text("this file changed after the runs were queued")  # they keep what was read when they were made
    code, out, err = run_cli(["sweep", str(sweep)], capsys)
    assert code == 2 and "syntax error" in err  # a new sweep reads the file as it is now
    net.write_text(NET)
    code, out, err = run_cli(["sweep", str(sweep), "--detach"], capsys)
    assert code == 0, err
    sweep_id = re.search(r"Queued sweep (\w{8}) \(widths\): 2 runs", out).group(1)
    net.write_text("this file changed again")

    with RunStore(runs_home) as store:
        ids = [queued] + [r.id for r in store.list_runs() if r.sweep_id == sweep_id]
        for run_id in ids:
            wait_for(store, run_id, lambda r: r.status not in ("queued", "running"), timeout=120)
        records = [store.get_run(run_id) for run_id in ids]
    assert [r.status for r in records] == ["finished"] * 3, [r.message for r in records]
    assert sorted(r.config["model_args"]["width"] for r in records) == [16, 24, 32]
    assert {r.config["model_source"] for r in records} == {NET}
    code, out, _ = run_cli(["sweep", "show", sweep_id, "--json"], capsys)
    table = json.loads(out)
    assert code == 0 and table["fields"] == ["model_args.width"]
    assert sorted(row["model_args.width"] for row in table["rows"]) == [16, 32]
