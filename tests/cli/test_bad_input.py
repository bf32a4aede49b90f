"""Bad input on the command line, case by case: one line naming what is wrong and what to do, exit 2, no traceback,
nothing written. (tests/cli/test_fuzz.py looks for the cases nobody listed.)"""

import io
import signal

import pytest
import torch

from tui_trainer import cli
from tui_trainer.runs.queue import enqueue, new_sweep_id
from tui_trainer.runs.store import RunStore
from .test_runs_cli import run_cli




def refused(args, capsys, *needles):
    """The command's one error line, after checking it is one, on stderr, with exit 2 and nothing on stdout."""
    code, out, err = run_cli(args, capsys)
    assert (code, out) == (2, ""), (code, out, err)
    assert err.count("\n") == 1 and err.startswith("scratch-tui") and "error: " in err, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_config_files_that_cannot_be_read_or_written_are_one_line_and_nothing_is_written(tmp_path, capsys,
                                                                                          runs_home):
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "café"\n'.encode("latin-1"))
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    huge_number = tmp_path / "number.toml"
    huge_number.write_text("epochs = " + "9" * 5000 + "\n")
    target = tmp_path / "out.toml"
    refused(["train", "--config", str(latin), "--save-config", str(target)], capsys, str(latin), "not UTF-8",
            "save it as UTF-8")
    refused(["train", "--config", str(deep), "--save-config", str(target)], capsys, str(deep), "too deeply")
    refused(["train", "--config", str(huge_number), "--save-config", str(target)], capsys, str(huge_number))
    refused(["train", "--save-config", str(tmp_path / "missing" / "dir" / "x.toml")], capsys,
            "--save-config", "missing/dir/x.toml", "its folder does not exist")
    refused(["train", "--save-config", str(tmp_path)], capsys, "--save-config", "it is a folder")
    refused(["train", "--hidden", "128,,64", "--save-config", str(target)], capsys, "--hidden: got '128,,64'",
            "none empty")
    # an empty path (an unset variable in a script) is refused, never taken as "the default": it trained them
    for flag in ("--config", "--save-config", "--runs-dir"):
        refused(["train", flag, ""], capsys, f"{flag}: got an empty path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.toml", "latin.toml", "number.toml"]
    assert list(runs_home.iterdir()) == []


def test_a_huge_sweep_range_is_refused_before_it_is_built_with_a_short_line(tmp_path, capsys, runs_home):
    sweep = tmp_path / "sweep.toml"
    for count in (10**9, 2 * 10**18):
        sweep.write_text(f"epochs = 1\n[sweep]\nlr = {{log = [1e-4, 1e-1], count = {count}}}\n")
        err = refused(["sweep", str(sweep), "--yes"], capsys, f"count {count:,} is more than the 100,000 runs")
        assert len(err) < 200
    # two axes of 400 points are 160,000 runs: refused from their sizes, each axis small on its own
    sweep.write_text("epochs = 1\n[sweep]\nweight_decay = {lin = [0, 1], count = 400}\n"
                     "batch_size = {lin = [1, 60000], count = 400}\n")
    refused(["sweep", str(sweep), "--yes"], capsys, "160,000 runs, more than the 100,000")
    # a range that repeats its values lists only the first few of them
    sweep.write_text("epochs = 1\n[sweep]\nbatch_size = {lin = [1, 60], count = 100000}\n")
    err = refused(["sweep", str(sweep), "--yes"], capsys, "(1, 1, 1, 1, 1, ... (100,000 in all))")
    assert len(err) < 300
    assert list(runs_home.iterdir()) == []


def test_runs_per_device_and_gpus_beyond_the_machine_are_refused_and_nothing_is_queued(tmp_path, capsys,
                                                                                      runs_home):
    refused(["queue", "add", "--no-start", "--per-device", "1000000"], capsys, "--per-device: got 1000000",
            "from 1 to 32")
    refused(["queue", "add", "--no-start", "--seeds", ",".join(map(str, range(100_000)))], capsys,
            "--seeds: 100,000 seeds, more than the 1,000")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("epochs = 1\n[sweep]\nlr = [0.1, 0.2]\n")
    refused(["sweep", str(sweep), "--parallel", "100000"], capsys, "--parallel: got 100000", "from 1 to 32")
    if torch.cuda.device_count() < 2:
        refused(["queue", "add", "--no-start", "--gpus", "2"], capsys, "--gpus: got 2")
        refused(["train", "--gpus", "2", "--epochs", "1"], capsys, "--gpus: got 2")
        sweep.write_text("epochs = 1\n[sweep]\ngpus = [1, 2]\n")
        refused(["sweep", str(sweep), "--detach"], capsys, "gpus: got 2")
    if not torch.cuda.is_available():
        refused(["train", "--step-mode", "cuda-graph", "--no-record"], capsys, "--step-mode: cuda-graph needs a CUDA")
    store = RunStore(runs_home)
    assert store.list_runs() == [] and store.query("SELECT key FROM settings") == []


def test_an_mlp_too_big_for_the_memory_is_refused_before_it_is_built(capsys):
    err = refused(["train", "--no-record", "--hidden", ",".join(["65536"] * 8)], capsys, "--hidden: a 784-65536",
                  "parameters", "GiB", "choose smaller --hidden sizes")
    assert "30,117,330,954 parameters" in err
    # few weights (under a GiB), but a batch whose layer outputs and their gradients take over 100 GiB: counted too
    wide_narrow = ",".join(["65536", "16"] * 4)
    refused(["train", "--no-record", "--hidden", wide_narrow, "--batch-size", "65536"], capsys,
            f"--hidden: a 784-{wide_narrow.replace(',', '-')}-10 MLP has", "a batch's activations")


def test_long_input_is_cut_in_every_message(capsys, runs_home):
    err = refused(["train", "--name", "x" * 100_000, "--no-record"], capsys, "--name: got 'xxx")
    assert len(err) < 300
    RunStore(runs_home).close()
    for args in (["runs", "show", "a" * 5000], ["eval", "a" * 5000], ["train", "--resume", "a" * 5000],
                 ["train", "--epochs", "9" * 5000]):
        err = refused(args, capsys)
        assert len(err) < 400, (args[:2], len(err))


def test_a_typo_in_a_flag_points_at_the_commands_own_help_and_every_command_describes_itself(capsys):
    refused(["train", "--epcohs", "3"], capsys, "unrecognized arguments: --epcohs 3", "(see scratch-tui train --help)")
    refused(["queue", "add", "--epcohs", "3"], capsys, "(see scratch-tui queue add --help)")
    for command, words in (("attach", "Open the app on a run, live"), ("devices", "Print the torch, CUDA")):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and words in " ".join(out.split())
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert "a set not on disk yet downloads on first use" in " ".join(out.split())


def test_listing_a_runs_dir_that_does_not_exist_creates_nothing(tmp_path, capsys):
    new = tmp_path / "new" / "a" / "b"
    code, out, err = run_cli(["runs", "--runs-dir", str(new)], capsys)
    assert code == 0 and out.startswith(f"No runs recorded in {new} yet") and err == ""
    refused(["runs", "show", "abc", "--runs-dir", str(new)], capsys, "no run abc; nothing is recorded in")
    for args, said in ((["queue", "ls"], "The queue is empty"), (["sweep", "ls"], "No sweeps yet")):
        code, out, _ = run_cli([*args, "--runs-dir", str(new)], capsys)
        assert code == 0 and out.startswith(said)
    refused(["sweep", "show", "abc", "--runs-dir", str(new)], capsys, "no sweep 'abc'")
    assert list(tmp_path.iterdir()) == []


def test_escape_sequences_in_run_and_sweep_names_are_printed_escaped(capsys, runs_home):
    evil = "evil\x1b]52;c;aGk=\x07\x1b[2J\x9b31m"
    with RunStore(runs_home) as store:
        from tui_trainer.engine.config import TrainConfig

        run_id = store.create_run(TrainConfig(name=evil, epochs=1))
        enqueue(store, [TrainConfig(name="x", epochs=1)], new_sweep_id(), evil, [evil])
    for args in (["runs"], ["runs", "show", run_id], ["sweep", "ls"], ["queue", "ls"]):
        code, out, err = run_cli(args, capsys)
        assert code == 0, err
        assert not any(c in out + err for c in "\x1b\x07\x9b"), args
        assert "\\x1b" in out, (args, out)


def test_a_closed_pipe_and_ctrl_c_at_the_start_end_quietly(capsys, monkeypatch):
    class Gone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError

    monkeypatch.setattr("sys.stdout", Gone())
    assert cli.main(["devices"]) == 141  # as a SIGPIPE would end it, without a word
    monkeypatch.undo()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_runs", interrupted)
    code, out, err = run_cli(["runs"], capsys)
    assert (code, out, err) == (130, "", "scratch-tui: interrupted\n")
    # before main runs, while the modules import, the handler cli installs says the same and exits alike
    with pytest.raises(SystemExit) as stopped:
        cli._interrupted_while_starting(signal.SIGINT, None)
    assert stopped.value.code == 130 and capsys.readouterr().err == "scratch-tui: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is not cli._interrupted_while_starting  # main put Python's back
