"""`scratch-tui train` with early stopping, restore_best and the plateau schedule: its lines and its refusals."""

import pytest

from .test_lr_find_cli import main


@pytest.mark.parametrize("args, words", [
    (["--early-stopping", "-1"], "--early-stopping: got -1; must be a whole number from 0 to 10000 "
                                 "(epochs without improvement; 0 turns early stopping off)"),
    (["--monitor", "val_f1"], "argument --monitor: invalid choice: 'val_f1' (choose from 'val_loss', 'val_acc')"),
    (["--val-split", "0", "--early-stopping", "3"],
     "--early-stopping: early stopping needs a validation split: set --val-split above 0"),
    (["--val-split", "0", "--restore-best"],
     "--restore-best: restoring the best epoch needs a validation split: set --val-split above 0"),
    (["--val-split", "0", "--schedule", "plateau"],
     "--schedule: the plateau schedule needs a validation split: set --val-split above 0"),
    (["--plateau-factor", "1.5"], "--plateau-factor: got 1.5; must be a number between 0 and 1"),
])
def test_train_refuses_bad_steering_flags_in_one_line(args, words, capsys):
    code = main(["train", "--device", "cpu", "--no-record", *args])
    _, err = capsys.readouterr()
    assert code == 2 and words in err and err.count("\n") == 1


def test_train_prints_the_plateau_cut_the_early_stop_and_the_restored_epoch(capsys):
    code = main(["train", "--device", "cpu", "--no-record", "--max-train-samples", "200", "--batch-size", "50",
                 "--lr", "0.01", "--label-smoothing", "0", "--epochs", "30", "--schedule", "plateau",
                 "--plateau-patience", "1", "--early-stopping", "3", "--restore-best"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    cut = next(line for line in lines if "(plateau)" in line)
    assert cut.startswith("Learning rate 0.01 ") and " 0.001 (plateau) at step " in cut
    stop = next(line for line in lines if line.startswith("Early stop after epoch "))
    assert ": val_loss has not improved for 3 epochs (best 0." in stop
    best_epoch = int(stop.rsplit("at epoch ", 1)[1].rstrip(")"))
    restored = lines[lines.index(stop) + 1]
    assert restored.startswith(f"Evaluating the weights of epoch {best_epoch} (best val_loss 0.")
    assert lines[-2].startswith("Test Loss: ") and lines[-1].startswith("Finished ")
