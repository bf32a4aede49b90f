"""`scratch-tui train` output and exit codes, in-process and as a real subprocess."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from tui_trainer import cli
from tui_trainer.cli.flags import config_from_args
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import event_from_dict

from ..fake_pynvml import card, fake_cuda, install, without_pynvml

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
    assert lines[1].startswith("Init check: init looks healthy (loss ")  # the probe's verdict on step 0
    assert lines[2].startswith("Epoch 1/2  train loss ") and " val loss " in lines[2]
    assert lines[3].startswith("Epoch 2/2")
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
        (["--momentum", "1"], "--momentum: got 1.0; must be a number from 0 up to (not including) 1"),
        (["--optimizer", "sgd", "--momentum", "0", "--nesterov"], "--nesterov: needs momentum"),
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


def train_help(capsys, monkeypatch) -> dict[str, str]:
    """`train --help`, one entry per flag, wide enough that no entry wraps."""
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    entries: dict[str, str] = {}
    flag = ""
    for line in out.split("options:")[1].splitlines():
        if line.startswith("  -"):  # an entry; its help follows on this line or the next
            invocation, _, line = line.strip().partition("  ")
            flag = invocation.split(",")[0].split()[0]
        entries[flag] = (entries.get(flag, "") + " " + line.strip()).strip()
    return entries


def test_every_setting_is_a_train_flag_whose_help_shows_its_default(capsys, monkeypatch):
    from tui_trainer.engine.config import SETTINGS

    helps = train_help(capsys, monkeypatch)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        s = SETTINGS[field.name]
        if not s.typed:  # filled in by the engine (a model file's kept source): no flag
            assert s.flag not in helps, field.name
            continue
        assert s.flag in helps, f"{field.name} has no flag"
        assert "default: " in helps[s.flag], s.flag
    # the registries' names, and what else --model takes
    assert helps["--model"].startswith("the network to train: scratch-mlp, sequential-mlp, cnn, or FILE.py:NAME or "
                                       "package.module:NAME")
    assert helps["--model-arg"].endswith("(only with --model FILE.py:NAME or package.module:NAME; default: none)")
    assert helps["--lr"].endswith("(default: 0.003)")
    assert helps["--hidden"].endswith("(only with --model scratch-mlp or sequential-mlp; default: 128,64)")
    assert helps["--momentum"].endswith("(only with --optimizer sgd; default: 0.9)")
    assert helps["--nesterov"].endswith("default: off)") and defaults.nesterov is False
    assert helps["--epochs"].endswith(f"(default: {defaults.epochs})")


def test_each_setting_flag_reaches_the_config():
    args = cli.build_parser().parse_args([
        "train", "--dataset", "mnist", "--model", "sequential-mlp", "--hidden", "32, 16", "--init", "randn",
        "--epochs", "3", "--batch-size", "32", "--lr", "0.5", "--optimizer", "sgd", "--momentum", "0.5",
        "--nesterov", "--weight-decay", "0", "--schedule", "cosine", "--label-smoothing", "0.1", "--augment", "flip",
        "--val-split", "0.2", "--seed", "7", "--device", "cpu", "--max-train-samples", "9", "--name", "n",
        "--data-dir", "/d"])
    assert config_from_args(args) == TrainConfig(
        dataset="mnist", model="sequential-mlp", hidden=(32, 16), init="randn", epochs=3, batch_size=32, lr=0.5,
        optimizer="sgd", momentum=0.5, nesterov=True, weight_decay=0.0, schedule="cosine", label_smoothing=0.1,
        augment="flip", val_split=0.2, seed=7, device="cpu", max_train_samples=9, name="n", data_dir="/d")
    preset_then_flag = cli.build_parser().parse_args(["train", "--preset", "tutorial", "--no-nesterov", "--lr", "1"])
    config = config_from_args(preset_then_flag)
    assert (config.lr, config.optimizer, config.nesterov) == (1.0, "sgd", False)


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


def test_devices_shows_each_gpus_live_readings(capsys, monkeypatch):
    # NVML's card 1 is CUDA's cuda:0 (CUDA_VISIBLE_DEVICES=1): its readings go on cuda:0's row
    install(monkeypatch, [card(0, util=5), card(1, util=87)], cuda=[1])
    code, out, _ = run_cli(["devices"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[1].split() == ["DEVICE", "NAME", "MEMORY", "COMPUTE", "UTIL", "TEMP", "POWER"]
    assert lines[2].split() == ["cuda:0", "NVIDIA", "H100", "80GB", "HBM3", "3.1/79.2", "GiB", "9.0", "87%", "61°C",
                                "312/700", "W"]
    assert lines[3].startswith("cpu ") and lines[3].split()[-3:] == ["-", "-", "-"]
    assert "nvidia-ml-py" not in out


def test_devices_without_pynvml_prints_a_hint_only_where_there_is_a_gpu(capsys, monkeypatch):
    without_pynvml(monkeypatch)
    fake_cuda(monkeypatch, [card(0)], [0])
    code, out, _ = run_cli(["devices"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[1].split() == ["DEVICE", "NAME", "MEMORY", "COMPUTE"]
    assert lines[2].split() == ["cuda:0", "NVIDIA", "H100", "80GB", "HBM3", "79.2", "GiB", "9.0"]
    assert lines[-1] == "install nvidia-ml-py for live GPU stats"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, _ = run_cli(["devices"], capsys)
    assert code == 0 and "nvidia-ml-py" not in out and "cuda:0" not in out


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


# -- the live progress line ---------------------------------------------------------------------------------------
import io  # noqa: E402  (imports for the tests appended below)
import re  # noqa: E402

from tui_trainer.cli.printer import TerminalPrinter  # noqa: E402
from tui_trainer.engine.events import BatchProgress, RunStarted  # noqa: E402


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _progress(epoch, batch, samples_per_s, epochs=3, batches=10):
    return BatchProgress(step=(epoch - 1) * batches + batch, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                         loss=0.4321, acc=85.12, lr=0.003, samples_per_s=samples_per_s)


def _started(train_size, batch_size=100, epochs=3):
    return RunStarted(config=TrainConfig(epochs=epochs, batch_size=batch_size), device="cpu", device_name="CPU",
                      dataset_title="Fashion-MNIST mini", classes=[str(i) for i in range(10)],
                      image_shape=[1, 28, 28], train_size=train_size, val_size=0, test_size=0, parameters=1,
                      steps_per_epoch=-(-train_size // batch_size))


def test_the_live_progress_line_has_an_eta_for_the_whole_run():
    out, err = io.StringIO(), _Terminal()
    printer = TerminalPrinter(out, err)
    printer.handle(_started(train_size=1000))
    # epoch 2 of 3, 4 batches of 100 done: 600 left in this epoch + 1 epoch of 1000 = 1600 samples at 10/s
    printer.handle(_progress(epoch=2, batch=4, samples_per_s=10))
    line = err.getvalue().rsplit("\r\033[K", 1)[-1]
    assert line.startswith("Epoch 2/3 [") and " 4/10  loss 0.4321  acc 85.12%  10 samples/s" in line
    assert line.endswith("  ETA 2:40")  # 160 s
    assert len(line) <= 79
    printer.handle(_progress(epoch=3, batch=10, samples_per_s=10))  # the last batch: nothing left
    assert err.getvalue().endswith("  ETA 0:00")


def test_the_eta_counts_a_short_last_batch_and_hours():
    printer = TerminalPrinter(io.StringIO(), _Terminal())
    printer.handle(_started(train_size=950, epochs=200))  # 10 batches, the last one of 50
    printer.handle(_progress(epoch=1, batch=9, samples_per_s=50, epochs=200))
    assert printer.view.eta == (50 + 199 * 950) / 50
    line = printer.progress_line(_progress(epoch=1, batch=9, samples_per_s=50, epochs=200))
    assert line.endswith("ETA 1:03:02")  # 3782 s
    assert len(line) <= 79
    printer.handle(_progress(epoch=1, batch=9, samples_per_s=0, epochs=200))
    assert printer.view.eta is None


def test_no_live_line_without_a_terminal():
    out, err = io.StringIO(), io.StringIO()
    printer = TerminalPrinter(out, err)
    printer.handle(_started(train_size=1000))
    printer.handle(_progress(epoch=1, batch=1, samples_per_s=10))
    assert err.getvalue() == ""


def test_a_real_run_draws_its_eta_on_a_terminal(monkeypatch):
    """The live line, from a real run through `train`, on a stderr that says it is a terminal."""
    from tui_trainer.engine import loop

    out, err = io.StringIO(), _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    # a progress report every 25 steps, however fast this machine trains
    monkeypatch.setattr(loop.TrainingRun.__init__, "__defaults__",
                        tuple(0.0 if d == loop.PROGRESS_EVERY_SECONDS else d
                              for d in loop.TrainingRun.__init__.__defaults__))
    code = cli.main(["train", *QUICK, "--batch-size", "8", "--epochs", "2"])
    assert code == 0, err.getvalue()
    lines = [line for line in err.getvalue().split("\r\033[K") if line.startswith("Epoch ")]
    assert lines and all(re.search(r"  ETA \d+:\d\d$", line) for line in lines)
