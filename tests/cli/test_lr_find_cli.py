"""`scratch-tui lr-find`: progress, a plot with a log axis, a suggestion with its command line; bad ranges exit 2."""

import pytest

from tui_trainer import cli


def main(args):
    """cli.main's exit code, also where argparse exits on its own (an unknown choice, a bad number)."""
    try:
        return cli.main(args)
    except SystemExit as exc:
        return exc.code


def test_lr_find_plots_and_suggests_a_train_command(capsys, runs_home):
    code = cli.main(["lr-find", "--device", "cpu", "--max-train-samples", "2000", "--batch-size", "64",
                     "--start-lr", "1e-5", "--steps", "60"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "lr-find 15/60  lr " in err  # progress, on stderr, a few lines into a pipe
    assert all(len(line) <= 80 for line in lines[:-1])  # the plot fits 80 columns (the command line may not)
    assert "\x1b[" not in out  # no color codes into a pipe
    axis = next(line for line in lines if "1e-05" in line)
    assert "0.0001" in axis and "0.001" in axis and "0.1" in axis  # a tick a decade: a log axis
    assert "learning rate (log scale)" in out
    suggestion = lines[-1]
    assert suggestion.startswith("suggested lr: ") and "(`scratch-tui train " in suggestion
    lr = float(suggestion.split()[2])
    assert 1e-5 <= lr <= 1 and f"--lr {lr:g} " in suggestion and "--batch-size 64" in suggestion
    assert not list(runs_home.iterdir())  # nothing recorded


@pytest.mark.parametrize("args, words", [
    (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr: got 1 with --end-lr 0.1; the range is empty or inverted"),
    (["--start-lr", "0.01", "--end-lr", "0.01"], "the range is empty or inverted"),
    (["--start-lr", "0"], "--start-lr: got 0.0; must be a number greater than 0"),
    (["--end-lr", "-1"], "--end-lr: got -1.0; must be a number greater than 0"),
    (["--steps", "5"], "--steps: got 5; must be a whole number from 10"),
    (["--steps", "x"], "argument --steps: invalid int value: 'x'"),
    (["--monitor", "acc"], "argument --monitor: invalid choice: 'acc'"),
])
def test_bad_input_is_one_line_naming_the_flag_and_exit_2(args, words, capsys):
    code = main(["lr-find", "--device", "cpu", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("scratch-tui lr-find: error: ") and words in err and err.count("\n") == 1
