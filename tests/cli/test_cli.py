"""`scratch-tui train` output and exit codes, in-process and as a real subprocess."""

import json
import subprocess
import sys

import pytest

from tui_trainer import cli
from tui_trainer.engine.events import event_from_dict

QUICK = ["--epochs", "1", "--max-train-samples", "800", "--device", "cpu"]


def run_cli(args, capsys):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_epoch_lines_and_the_test_line(capsys):
    code, out, err = run_cli(["train", *QUICK, "--epochs", "2"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Training scratch-mlp (109,386 parameters) on Fashion-MNIST mini")
    assert lines[1].startswith("Epoch 1/2  train loss ") and " val loss " in lines[1]
    assert lines[2].startswith("Epoch 2/2")
    test_line = next(line for line in lines if line.startswith("Test Loss: "))
    assert ", Test Accuracy: " in test_line and test_line.endswith("%")


def test_jsonl_is_one_event_per_line(capsys):
    code, out, _ = run_cli(["train", *QUICK, "--jsonl"], capsys)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-2:] == ["eval_end", "run_finished"]
    assert "run_id" in events[0] and events[0]["config"]["max_train_samples"] == 800
    epoch = next(e for e in events if e["event"] == "epoch_end")
    assert set(epoch) >= {"epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                          "samples_per_s"}
    assert 1 < epoch["val_acc"] <= 100  # a percentage, not a fraction
    final = events[-2]
    assert set(final) >= {"test_loss", "test_acc", "per_class_acc", "confusion"}
    assert "image" not in final["samples"][0]
    # a script can read the lines back as the engine's own events
    parsed = [event_from_dict(e) for e in events]
    assert parsed[-2].test_acc == final["test_acc"] and parsed[-2].samples[0].image == []


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "-1"], "--lr: got -1.0"),
        (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice"),
        (["--hidden", "12,a"], "--hidden: got '12,a'"),
        (["--device", "tpu"], "--device: got 'tpu'"),
        (["--config", "/nonexistent.toml"], "cannot read config file"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, words, capsys):
    try:
        code = cli.main(["train", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert words in err


def test_unavailable_device_is_a_usage_error(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_cli(["train", *QUICK, "--device", "cuda"], capsys)
    assert code == 2
    assert "--device: cuda is not available" in err and "choose one of auto" in err


def test_config_file_with_flags_on_top(tmp_path, capsys):
    path = tmp_path / "run.toml"
    code, out, _ = run_cli(["train", "--preset", "tutorial", "--epochs", "3", "--save-config", str(path)], capsys)
    assert code == 0
    text = path.read_text()
    assert 'init = "randn"' in text and "epochs = 3" in text
    code, out, _ = run_cli(["train", "--config", str(path), *QUICK, "--jsonl"], capsys)
    started = json.loads(out.splitlines()[0])["config"]
    assert started["init"] == "randn" and started["epochs"] == 1 and started["batch_size"] == 64
    path.write_text("epochs = 2\nwarmup = 3\n")
    code, _, err = run_cli(["train", "--config", str(path)], capsys)
    assert code == 2 and "warmup: unknown setting" in err


def test_failed_run_exits_1_with_its_message(capsys):
    code, out, err = run_cli(["train", *QUICK, "--preset", "tutorial", "--lr", "10", "--epochs", "2"], capsys)
    assert code == 1
    assert "run failed: training loss became" in err and "lower --lr" in err


def test_devices_lists_the_cpu(capsys):
    code, out, _ = run_cli(["devices"], capsys)
    assert code == 0
    assert out.startswith("torch ") and "CPU threads" in out
    assert any(line.startswith("cpu ") for line in out.splitlines())


def test_app_refuses_a_pipe_and_points_to_train():
    result = subprocess.run([sys.executable, "-m", "tui_trainer"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "scratch-tui train" in result.stderr


def test_real_subprocess_run_and_sigint_stop(tmp_path):
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "train", "--device", "cpu", "--epochs", "200",
                             "--max-train-samples", "500", "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert json.loads(first)["event"] == "run_started"
    while json.loads(proc.stdout.readline())["event"] != "epoch_end":
        pass
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(rest.splitlines()[-1])["event"] == "run_stopped"
    assert "Traceback" not in err
