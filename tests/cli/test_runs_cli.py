"""`scratch-tui train` recording, `--resume`, `runs ...` and `eval`: output and exit codes."""

import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_trainer import cli
from tui_trainer.cli.flags import config_from_args
from tui_trainer.command_line import command_line
from tui_trainer.engine.checkpoints import load_checkpoint
from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import SETTINGS, TrainConfig, applies, preset
from tui_trainer.runs.export import CSV_HEADER
from tui_trainer.runs.queue import enqueue
from tui_trainer.runs.store import RunStore

from ..runs.test_store import made_by_another_version, record_whole_run

QUICK = ["--epochs", "1", "--max-train-samples", "800", "--device", "cpu"]


def run_cli(args, capsys):
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, *args):
    code, out, err = run_cli(["train", *QUICK, *args], capsys)
    assert code == 0, err
    return re.search(r"; run ([0-9a-f]{8})", out.splitlines()[0]).group(1), out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One recorded two-epoch run, shared by the read-only tests below."""
    home = tmp_path_factory.mktemp("shared-runs")
    code = cli.main(["train", *QUICK, "--epochs", "2", "--name", "shared", "--runs-dir", str(home), "--jsonl"])
    assert code == 0
    with RunStore(home) as store:
        return home, store.list_runs()[0].id


def test_train_records_the_run_and_names_it_in_the_header(capsys):
    run_id, out = train(capsys, "--name", "first")
    assert out.splitlines()[0].startswith("Training scratch-mlp (109,386 parameters) on Fashion-MNIST mini")
    with RunStore() as store:  # $SCRATCH_TUI_HOME, set for every test
        record = store.get_run(run_id)
    assert (record.status, record.name, record.epochs_done) == ("finished", "first", 1)
    assert f"Test Accuracy: {record.test_acc:.2f}%" in out
    assert load_checkpoint(record.last_checkpoint).run_id == run_id


def test_no_record_leaves_no_trace(capsys, runs_home):
    code, out, _ = run_cli(["train", *QUICK, "--no-record"], capsys)
    assert code == 0 and "; run " not in out
    assert not (runs_home / "runs.sqlite3").exists()


def test_an_unusable_store_is_one_line_and_points_to_no_record(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out, err = run_cli(["train", *QUICK, "--runs-dir", str(blocker / "runs")], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot create the runs folder" in err and "--no-record" in err


def test_runs_lists_the_runs_as_a_table(finished, capsys):
    home, run_id = finished
    code, out, _ = run_cli(["runs", "--runs-dir", str(home)], capsys)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "MODEL", "DATASET", "STATUS", "EPOCHS", "BEST", "VAL", "TEST", "DURATION",
                              "STARTED"]
    cells = row.split()
    assert cells[:6] == [run_id, "shared", "scratch-mlp", "fashion-mnist-mini", "finished", "2/2"]
    assert cells[6].endswith("%") and cells[7].endswith("%") and re.match(r"\d{4}-\d\d-\d\d", cells[9])


def test_runs_show_has_settings_epochs_evaluation_and_the_command(finished, capsys):
    home, run_id = finished
    code, out, _ = run_cli(["runs", "show", run_id[:4], "--runs-dir", str(home)], capsys)
    assert code == 0
    assert out.startswith(f"Run {run_id} (shared): finished")
    with RunStore(home) as store:
        threads = store.get_run(run_id).started["threads"]  # auto, pinned when it started: the repeat keeps it
    assert threads >= 1
    assert f"  scratch-tui train --epochs 2 --device cpu --threads {threads} --max-train-samples 800 --name shared\n" \
        in out
    assert "  max_train_samples = 800\n" in out
    assert re.search(r"Epochs:\n  EPOCH +TRAIN LOSS.*\n  1 .*\n  2 ", out)
    assert re.search(r"Evaluation:\n  Test Loss: [\d.]+, Test Accuracy: [\d.]+%\n  T-shirt/top +[\d.]+%", out)
    assert "last checkpoint: " in out and "best checkpoint: " in out


def test_runs_export_csv_and_json(finished, capsys, tmp_path):
    home, run_id = finished
    code, out, _ = run_cli(["runs", "export", run_id, "--format", "csv", "--runs-dir", str(home)], capsys)
    reader = csv.DictReader(io.StringIO(out))
    rows = list(reader)
    assert code == 0 and [r["epoch"] for r in rows] == ["1", "2"]
    # the header as the README documents it, in its order
    assert reader.fieldnames == ["epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                                 "samples_per_s", "step", "ema_val_loss", "ema_val_acc"]
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert "\n" + ",".join(CSV_HEADER) + "\n" in readme and list(CSV_HEADER) == reader.fieldnames
    with RunStore(home) as store:
        logged = store.epochs(run_id)
    assert [(float(r["train_loss"]), float(r["val_acc"]), int(r["step"])) for r in rows] == \
        [(e["train_loss"], e["val_acc"], e["step"]) for e in logged]  # the log's numbers, read back exactly
    target = tmp_path / "run.json"
    code, out, err = run_cli(["runs", "export", run_id, "--output", str(target), "--runs-dir", str(home)], capsys)
    assert code == 0 and out == "" and f"wrote {target}" in err
    data = json.loads(target.read_text())
    assert data["run"]["id"] == run_id and data["run"]["config"]["epochs"] == 2 and len(data["epochs"]) == 2
    assert data["command"].startswith("scratch-tui train --epochs 2") and isinstance(data["steps"], list)
    assert data["evaluation"]["test_acc"] == data["run"]["test_acc"] and "image" in data["evaluation"]["samples"][0]


def test_a_run_this_version_cannot_read_is_listed_shown_and_refused_in_one_line(capsys, runs_home):
    with RunStore() as store:  # $SCRATCH_TUI_HOME
        theirs = store.create_run(TrainConfig(name="theirs"))
        record_whole_run(store, theirs)
        [queued] = enqueue(store, [TrainConfig(name="waits")], "5eed5eed", "lrs")
        for run_id in (theirs, queued):
            made_by_another_version(store, run_id)
    why = "model 'foo' is not known to this version of scratch-tui"

    code, out, _ = run_cli(["runs"], capsys)
    assert code == 0 and {line.split()[0]: line.split()[2] for line in out.splitlines()[1:]} == {
        theirs: "foo", queued: "foo"}
    code, out, err = run_cli(["runs", "show", theirs], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[1] == f"  cannot be opened: {why}"
    assert '  model = "foo"' in out and "Evaluation:" in out and "Repeat it with:" not in out
    code, out, _ = run_cli(["queue", "ls"], capsys)
    assert code == 0 and f"Run {queued} cannot be opened: {why}." in out.splitlines()
    code, out, _ = run_cli(["sweep", "show", "5eed"], capsys)
    assert code == 0 and f"Left out run {queued}: {why}." in out.splitlines()
    for args in (["runs", "export", theirs], ["train", "--resume", theirs], ["eval", theirs], ["attach", theirs]):
        code, out, err = run_cli(args, capsys)
        assert code in (1, 2) and out == "" and err.count("\n") == 1 and why in err, args


def test_eval_repeats_the_final_test_numbers_from_the_best_checkpoint(capsys):
    run_id, out = train(capsys)  # one epoch: best, last and final weights are the same
    test_line = next(line for line in out.splitlines() if line.startswith("Test Loss: "))
    code, out, _ = run_cli(["eval", run_id], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith(f"Evaluating run {run_id}, best checkpoint (epoch 1, best.pt) on the Fashion-MNIST mini")
    assert out.splitlines()[1] == test_line
    code, out, _ = run_cli(["eval", run_id, "--jsonl", "--checkpoint", "last"], capsys)
    result = json.loads(out)
    assert code == 0 and result["event"] == "eval_end" and f"{result['test_acc']:.2f}%" in test_line


@pytest.mark.parametrize("args", [["runs", "show", "zzzz"], ["runs", "export", "zzzz"], ["runs", "rm", "zzzz"],
                                  ["runs", "control", "zzzz", "stop"], ["eval", "zzzz"],
                                  ["train", "--resume", "zzzz"]])
def test_an_unknown_run_id_exits_2_with_one_line(args, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    # `runs ACTION` on an empty runs dir says so (it creates no store to look in); the others look and find none
    assert "no run zzzz; `scratch-tui runs` lists them" in err or "no run zzzz; nothing is recorded in" in err


def test_runs_rm_asks_refuses_and_deletes(capsys):
    run_id, _ = train(capsys)
    code, _, err = run_cli(["runs", "rm", run_id], capsys)  # stdin is not a terminal here
    assert code == 2 and "not deleting run" in err and "pass --yes" in err
    from tui_trainer.runs.handle import RunLauncher
    from tui_trainer.runs.store.processes import process_alive

    with RunStore() as store:
        folder = store.checkpoint_dir(run_id)
        busy = RunLauncher(store).start(TrainConfig(epochs=5000, max_train_samples=300, device="cpu")).run_id
        for _ in range(600):  # until its process has started training
            if store.get_run(busy).segment:
                break
            time.sleep(0.05)
        pid = store.get_run(busy).pid
    code, _, err = run_cli(["runs", "rm", busy, "--yes"], capsys)
    assert code == 2 and f"run {busy} is running" in err and "--force" in err
    # --force stops the training process first, so nothing trains on into a deleted run
    assert run_cli(["runs", "rm", busy, "--yes", "--force"], capsys)[0] == 0
    for _ in range(100):
        if not process_alive(pid):
            break
        time.sleep(0.05)
    assert not process_alive(pid)
    with RunStore() as store:
        assert busy not in {r.id for r in store.list_runs()} and not store.checkpoint_dir(busy).exists()
    code, out, _ = run_cli(["runs", "rm", run_id, "--yes"], capsys)
    assert code == 0 and out == f"Deleted run {run_id} and its checkpoints.\n" and not folder.exists()
    code, out, _ = run_cli(["runs"], capsys)
    assert code == 0 and out.startswith("No runs recorded in ")


def test_runs_control_queues_requests_for_a_running_run(capsys):
    with RunStore() as store:
        busy = store.create_run(TrainConfig())
    code, out, _ = run_cli(["runs", "control", busy, "set-lr", "0.002"], capsys)
    assert code == 0 and f"Asked run {busy} to set its learning rate to 0.002" in out
    assert run_cli(["runs", "control", busy, "pause"], capsys)[0] == 0
    with RunStore() as store:
        assert store.take_commands(busy) == [Command("set_lr", 0.002), Command("pause")]
        assert store.events(busy) == []  # queued, not yet received: the recorder logs what reaches the run
    cases = [(["set-lr"], 2, "set-lr needs the new rate"), (["pause", "3"], 2, "pause takes no value"),
             (["set-lr", "20"], 2, "lr: got 20.0; must be a number greater than 0 and at most 10"),
             (["explode"], 2, "argument action: invalid choice")]
    for extra, expected, words in cases:
        code, _, err = run_cli(["runs", "control", busy, *extra], capsys)
        assert code == expected and words in err and len(err.strip().splitlines()) == 1
    with RunStore() as store:
        assert store.take_commands(busy) == []  # the refused ones queued nothing
    run_id, _ = train(capsys)
    code, _, err = run_cli(["runs", "control", run_id, "stop"], capsys)
    assert code == 1 and err == f"scratch-tui runs control: error: run {run_id} has finished; nothing to change\n"
    with RunStore() as store:
        assert store.take_commands(run_id) == []


def test_resume_refuses_settings_and_extends_with_epochs(capsys):
    constant = ["--schedule", "constant"]
    run_id, _ = train(capsys, *constant)
    code, _, err = run_cli(["train", "--resume", run_id, "--lr", "0.1", "--device", "cpu"], capsys)
    assert code == 2 and "drop --lr, --device (only --epochs may change" in err
    code, _, err = run_cli(["train", "--resume", run_id], capsys)
    assert code == 2 and "already trained all 1 epochs" in err
    code, out, err = run_cli(["train", "--resume", run_id[:6], "--epochs", "3"], capsys)
    assert code == 0, err
    assert out.splitlines()[0].endswith(f"; run {run_id}")
    assert out.splitlines()[1] == f"Resumed run {run_id} after epoch 1, step 7"
    assert [line.split()[1] for line in out.splitlines() if line.startswith("Epoch")] == ["2/3", "3/3"]
    straight, _ = train(capsys, *constant, "--epochs", "3")
    with RunStore() as store:
        def numbers(rid):
            return [(e["train_loss"], e["val_acc"], e["step"]) for e in store.epochs(rid)]

        assert numbers(run_id) == numbers(straight)  # with a constant rate, extending equals training longer
        assert store.get_run(run_id).status == "finished"


def parse_line(line):
    import shlex

    return config_from_args(cli.build_parser().parse_args(shlex.split(line)[1:]))


def test_command_line_names_only_what_differs_and_parses_back():
    assert command_line(TrainConfig()) == "scratch-tui train"
    config = TrainConfig(model="sequential-mlp", hidden=(256, 32), nesterov=True, optimizer="sgd", lr=1e-05,
                         name="it's mine", data_dir="/data sets", augment="flip", val_split=0.0)
    line = command_line(config)
    assert line.startswith("scratch-tui train --model sequential-mlp --hidden 256,32 ")
    assert "--nesterov" in line and "--lr 1e-05" in line and line.endswith(" --data-dir '/data sets'")
    assert parse_line(line) == config
    assert parse_line(command_line(preset("tutorial"))) == preset("tutorial")


def test_command_line_leaves_out_what_the_model_and_optimizer_do_not_use():
    config = TrainConfig(model="cnn", hidden=(256, 32), init="randn", optimizer="adam", momentum=0.5, nesterov=True)
    assert command_line(config) == "scratch-tui train --model cnn --optimizer adam"
    assert "--momentum 0.5" in command_line(config.replace(optimizer="sgd"))
    assert "--hidden 256,32 --init randn" in command_line(config.replace(model="scratch-mlp"))
    back = parse_line(command_line(config))
    used = [name for name in SETTINGS if applies(name, config)]
    # hidden, init, momentum, nesterov; plateau's patience, factor, min_lr; a model file's arguments and source;
    # your data's image shape and resize
    assert len(used) == len(SETTINGS) - 4 - 3 - 2 - 2
    assert [getattr(back, name) for name in used] == [getattr(config, name) for name in used]
    assert (back.hidden, back.momentum) == (TrainConfig().hidden, TrainConfig().momentum)


def test_sighup_stops_a_foreground_run_with_a_checkpoint(runs_home):
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "train", "--device", "cpu", "--epochs", "200",
                             "--max-train-samples", "500", "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = json.loads(proc.stdout.readline())["run_id"]
    while json.loads(proc.stdout.readline())["event"] != "epoch_end":
        pass
    proc.send_signal(signal.SIGHUP)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP, err
    names = [json.loads(line)["event"] for line in rest.splitlines()]
    assert names[-2:] == ["checkpoint_saved", "run_stopped"] and "Traceback" not in err
    with RunStore(runs_home) as store:
        record = store.get_run(run_id)
    assert record.status == "stopped" and load_checkpoint(record.last_checkpoint).epoch >= 1


def test_a_paused_run_nobody_watches_lists_as_paused(tmp_path, capsys):
    from tui_trainer.engine.events import RunPaused, RunStarted

    store = RunStore(tmp_path)
    config = TrainConfig(epochs=3)
    run_id = store.create_run(config)  # owned by this (live) process: it stays running
    store.append(run_id, RunStarted(config=config, device="cpu", device_name="CPU", dataset_title="mini",
                                    classes=["a", "b"], image_shape=[1, 28, 28], train_size=10, val_size=2,
                                    test_size=2, parameters=5, steps_per_epoch=1, run_id=run_id))
    store.append(run_id, RunPaused(epoch=1, step=0))
    code, out, _ = run_cli(["runs", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0
    assert re.search(rf"^{run_id} .* paused +0/3 ", out, re.M), out
    code, out, _ = run_cli(["runs", "show", run_id, "--runs-dir", str(tmp_path)], capsys)
    assert out.splitlines()[0] == f"Run {run_id}: paused"


# -- the table on a terminal, a reader that goes away, --version, serve --help ---------------------------------
def test_a_table_too_wide_cuts_then_drops_columns_but_never_the_others():
    from tui_trainer.cli.common import table

    rows = [("ID", "NAME", "WHEN", "TEST"), ("a1", "a-rather-long-name", "2026-01-02 03:04", "90.00%")]
    whole = ["ID  NAME                WHEN              TEST", "a1  a-rather-long-name  2026-01-02 03:04  90.00%"]
    assert table(rows) == table(rows, 200, squeeze=[1], drop=[2, 1]) == whole

    def fitted(width):
        return table(rows, width, squeeze=[1], drop=[2, 1])[1]

    assert fitted(40) == "a1  a-rather-\u2026  2026-01-02 03:04  90.00%"  # cut before anything goes
    assert fitted(30) == "a1  a-rather-long-name  90.00%"  # too tight to cut: WHEN goes, NAME is whole again
    assert fitted(20) == "a1  a-rathe\u2026  90.00%"
    assert fitted(10) == fitted(3) == "a1  90.00%"  # ID and TEST stay, even when they do not fit


def test_runs_on_a_terminal_fits_its_width_keeping_the_accuracies(finished, capsys, monkeypatch):
    home, run_id = finished
    with RunStore(home) as store:
        record = store.get_run(run_id)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # capsys's stdout, standing in for a terminal
    shown = {}
    for width in (120, 80, 50):
        monkeypatch.setenv("COLUMNS", str(width))
        code, out, _ = run_cli(["runs", "--runs-dir", str(home)], capsys)
        assert code == 0
        header, row = out.splitlines()
        assert max(len(header), len(row)) <= width, out
        for name in ("ID", "STATUS", "EPOCHS", "BEST VAL", "TEST"):
            assert name in header
        assert row.startswith(run_id) and "finished" in row and "2/2" in row
        assert f"{record.best_val_acc:.2f}%" in row and f"{record.test_acc:.2f}%" in row
        shown[width] = header
    assert "STARTED" in shown[120] and "STARTED" not in shown[80]
    assert shown[50].split() == ["ID", "STATUS", "EPOCHS", "BEST", "VAL", "TEST"]


def test_runs_in_a_real_80_column_terminal_prints_no_line_wider_than_it(finished):
    import fcntl
    import os
    import pty
    import struct
    import termios

    home, run_id = finished
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "runs", "--runs-dir", str(home)],
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    assert proc.wait(timeout=60) == 0
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal has nobody left on its other side
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines), lines
    assert "BEST VAL" in lines[0] and "TEST" in lines[0] and lines[1].startswith(run_id)
    with RunStore(home) as store:
        assert f"{store.get_run(run_id).test_acc:.2f}%" in lines[1]


@pytest.mark.parametrize("action", ["list", "show", "export"])
def test_runs_ends_quietly_when_its_reader_goes_away(finished, action):
    home, run_id = finished
    args = [] if action == "list" else [action, run_id]
    proc = subprocess.Popen([sys.executable, "-m", "tui_trainer", "runs", *args, "--runs-dir", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -1` does once it has its line: every write now fails with EPIPE
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE and err == b""


def test_version_is_the_package_version(capsys, monkeypatch):
    import tomllib
    from importlib import metadata
    from pathlib import Path

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out == f"scratch-tui {metadata.version('scratch-tui')}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)  # run from a source tree: pyproject.toml says
    code, out, _ = run_cli(["--version"], capsys)
    pyproject = tomllib.loads((Path(cli.__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert code == 0 and out == f"scratch-tui {pyproject['project']['version']}\n"


def test_serve_help_shows_the_default_host_and_port(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run_cli(["serve", "--help"], capsys)
    assert code == 0 and "(default 127.0.0.1: this machine only)" in out and "(default 8000)" in out
