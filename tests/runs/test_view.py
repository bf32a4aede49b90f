"""RunView folds a run's events into what the training screen shows, the same for every viewer."""

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (BatchProgress, CommandReceived, RunPaused, RunUnpaused, RunState,
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
    h.apply(RunUnpaused(epoch=1, step=20, seconds=42.5))  # however long the pause, it is not training time
    assert 42.5 <= h.elapsed < 43.5
    assert h.log == ["Paused at step 20", "Unpaused at step 20"]


def test_once_every_epoch_has_trained_both_bars_are_full_while_the_test_set_is_evaluated():
    from tui_trainer.engine.events import EpochEnded

    h = RunView()
    h.apply(started(TrainConfig(epochs=1)))
    h.apply(progress(40, seconds=1.0))
    assert h.fraction_done() == (40 / 85, 40 / 85)
    h.apply(EpochEnded(epoch=1, epochs=1, train_loss=1.0, train_acc=50.0, val_loss=1.0, val_acc=50.0, lr=0.003,
                       seconds=1.0, samples_per_s=1000.0, step=85))
    assert h.state == RunState.RUNNING and h.fraction_done() == (1.0, 1.0)


def test_a_paused_run_shows_the_lr_in_force_not_the_last_reports():
    h = RunView()
    h.apply(started(TrainConfig(schedule="cosine")))
    h.apply(progress(20, seconds=1.0))  # reported lr 0.003; the schedule moved it since
    h.apply(RunPaused(epoch=1, step=26, seconds=1.2, lr=0.000702))
    assert h.lr == 0.000702


def test_a_forks_view_counts_from_its_parents_epoch_and_says_it_is_a_fork():
    from dataclasses import replace

    from tui_trainer.engine.events import EpochEnded, ForkedFrom

    h = RunView()
    h.apply(ForkedFrom("3fa2c1d0", epoch=11, step=935))
    h.apply(replace(started(TrainConfig(epochs=12)), resumed_from_epoch=11, resumed_from_step=935, run_id="f0"))
    assert h.current_epoch == 12 and h.epochs_done == 11
    assert h.log == ["Forked from run 3fa2c1d0@11 (step 935)"]  # not "Resumed run"
    h.apply(EpochEnded(epoch=12, epochs=12, train_loss=0.3, train_acc=90.0, val_loss=0.35, val_acc=88.0, lr=0.001,
                       seconds=1.0, samples_per_s=1000.0, step=1020))
    assert h.best_epoch == 12  # its own monitor: the parent's best is not the fork's


def test_the_runs_listing_leaves_paused_time_out_of_the_duration(tmp_path, monkeypatch):
    from tui_trainer.runs.store import rows as store_module
    from tui_trainer.runs.store import RunStore

    now = [1000.0]
    monkeypatch.setattr(store_module.time, "time", lambda: now[0])
    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig())
    store.append(run_id, started(TrainConfig()))
    now[0] += 10
    store.append(run_id, progress(20, seconds=10.0))
    now[0] += 2
    store.append(run_id, RunPaused(epoch=1, step=24, seconds=12.0))
    now[0] += 3600  # an hour paused
    assert store.list_runs()[0].duration_s == 12.0
    store.append(run_id, RunUnpaused(epoch=1, step=24, seconds=12.0))
    now[0] += 5
    assert store.list_runs()[0].duration_s == 17.0
