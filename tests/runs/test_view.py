"""RunView folds a run's events into what the training screen shows, the same for every viewer."""

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (BatchProgress, CommandReceived, RunPaused, RunResumed, RunState,
                                       RunStopped)
from tui_trainer.runs.view import RunView

from tests.ui.fakes import started


def progress(step: int, seconds: float) -> BatchProgress:
    return BatchProgress(step=step, epoch=1, epochs=15, batch=step, batches=85, loss=1.0, acc=50.0, lr=0.003,
                         samples_per_s=1000.0, seconds=seconds)


def test_a_command_is_pending_from_its_receipt_until_the_run_acts_on_it():
    h = RunView()
    h.apply(started(TrainConfig()))
    h.apply(CommandReceived("pause"))
    assert (h.state, h.pending) == (RunState.RUNNING, "pause")  # the screen says Pausing…
    h.apply(RunPaused(epoch=1, step=20))
    assert (h.state, h.pending) == (RunState.PAUSED, None)
    h.apply(CommandReceived("stop"))
    assert h.pending == "stop"
    h.apply(RunStopped(epochs_done=0, seconds=3.0))
    assert (h.state, h.pending) == (RunState.STOPPED, None)


def test_elapsed_is_the_runs_own_time_and_stands_still_while_paused():
    h = RunView()
    h.apply(started(TrainConfig()))
    h.apply(progress(20, seconds=42.0))  # a viewer attached 42 s of training into the run
    assert 42.0 <= h.elapsed < 43.0
    h.apply(RunPaused(epoch=1, step=20, seconds=42.5))
    assert h.elapsed == 42.5
    h.apply(RunResumed(epoch=1, step=20, seconds=42.5))  # however long the pause, it is not training time
    assert 42.5 <= h.elapsed < 43.5
    assert h.log == ["Paused at step 20", "Resumed at step 20"]


def test_once_every_epoch_has_trained_both_bars_are_full_while_the_test_set_is_evaluated():
    from tui_trainer.engine.events import EpochEnded

    h = RunView()
    h.apply(started(TrainConfig(epochs=1)))
    h.apply(progress(40, seconds=1.0))
    assert h.fraction_done() == (40 / 85, 40 / 85)
    h.apply(EpochEnded(epoch=1, epochs=1, train_loss=1.0, train_acc=50.0, val_loss=1.0, val_acc=50.0, lr=0.003,
                       seconds=1.0, samples_per_s=1000.0, step=85))
    assert h.state == RunState.RUNNING and h.fraction_done() == (1.0, 1.0)
