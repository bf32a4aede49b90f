"""Every change to a run's course on the training screen: a line in the log, a marker on both charts at its step."""

from __future__ import annotations

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (BestWeightsRestored, CheckpointSaved, CommandIgnored, EarlyStopped,
                                       LearningRateChanged,
                                       RunFinished, RunPaused, RunUnpaused)
from tui_trainer.ui.app import TrainerApp
from tui_trainer.runs.view import ChangeMark, RunView
from tui_trainer.ui.screens.train import TrainScreen
from tui_trainer.ui.widgets.charts import AccuracyChart, LossChart, chart_marks

from .fakes import (DEVICES, KEEP_TRAINING, ScriptedLauncher, ScriptedRun, dataset_status, epoch_events, evaluation,
                    started)
from .test_app_flow import wait_for
from .test_charts import ChartApp, lines, plausible_history, shown

STEPS = 85  # per epoch, as fakes.started says


def steered(config):
    """Three epochs of a plateau run: a cut after epoch 2, a checkpoint asked for, a pause, an early stop with the
    best weights restored; then it waits for the test's own commands."""
    yield started(config.replace(schedule="plateau"))
    events = list(epoch_events(config, 3))
    yield from events[:10]  # epochs 1 and 2
    yield LearningRateChanged(lr=0.0003, step=2 * STEPS, reason="plateau", previous=0.003)
    yield CheckpointSaved(path="checkpoints/x/last.pt", epoch=2, step=2 * STEPS, reason="request")
    yield RunPaused(epoch=3, step=2 * STEPS + 40)
    yield RunUnpaused(epoch=3, step=2 * STEPS + 40)
    yield from events[10:]
    yield EarlyStopped(epoch=3, best_epoch=2, monitor="val_loss", best_value=0.95, patience=1, step=3 * STEPS)
    yield BestWeightsRestored(epoch=2, monitor="val_loss", value=0.95, last_epoch=3)
    yield evaluation()
    yield CommandIgnored(command="set_lr", value=0.01)
    yield RunFinished(epochs_done=3, seconds=1.0)


class PlayedRun(ScriptedRun):
    """Plays its script as it is: a pause and its resume come from the script, not from keys."""

    def events(self, stop=None):
        for event in self.script(self.config):
            yield self._track(event)


class PlayedLauncher(ScriptedLauncher):
    def start(self, config: TrainConfig) -> PlayedRun:
        self.handles.append(PlayedRun(self.script, config))
        return self.handles[-1]


def log_text(app) -> str:
    return "\n".join(str(line.text) for line in app.screen.query_one("#log").lines)


async def test_the_log_and_both_charts_show_each_change_at_its_step():
    app = TrainerApp(launcher=PlayedLauncher(steered), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        assert isinstance(app.screen, TrainScreen)
        await wait_for(pilot, lambda: app.run_view.state == "finished", timeout=20)
        await wait_for(pilot, lambda: "Test Accuracy" in log_text(app), timeout=5)
        shown = log_text(app)  # wrapped to the log's width
        assert "(plateau) at step 170" in shown and "Early stop after epoch 3" in shown
        log = "\n".join(app.run_view.log)  # the same lines, whole
        cut = next(line for line in app.run_view.log if line.startswith("Learning rate"))
        assert "0.003 → 0.0003 (plateau) at step 170" in cut  # the previous lr too, with the arrow `runs show` uses
        assert "Checkpoint saved after epoch 2 (request)" in log
        assert "Paused at step 210" in log and "Unpaused at step 210" in log
        assert "Early stop after epoch 3: val_loss has not improved for 1 epoch (best 0.9500 at epoch 2)" in log
        assert "Evaluating the weights of epoch 2 (best val_loss 0.9500), not those of the last epoch, 3" in log
        assert "schedule is rescaled" not in log  # a plateau cut is the schedule itself
        assert "set_lr 0.01 not applied: the run had ended" in log  # never silence

        loss, acc = app.screen.query_one(LossChart), app.screen.query_one(AccuracyChart)
        await wait_for(pilot, lambda: len(loss.marks_drawn) == 5 and len(acc.marks_drawn) == 5, timeout=5)
        expected = [(2.0, "lr"), (2.0, "checkpoint"), (210 / STEPS, "pause"), (3.0, "early_stop"), (2.0, "best")]
        assert loss.marks_drawn == expected
        assert acc.marks_drawn == expected
        await pilot.pause()
        # five kinds of change: one legend entry for them all at 80x24
        assert lines(loss)[0].strip() == "Loss ━ step ━ epoch ━ val │ changes"
        assert lines(acc)[0].strip().endswith("│ changes")


def waiting(config):
    yield started(config)
    yield from epoch_events(config, 2)
    yield KEEP_TRAINING


async def test_a_set_lr_under_onecycle_says_the_schedule_is_rescaled():
    app = TrainerApp(launcher=ScriptedLauncher(waiting), devices=DEVICES, dataset_status=dataset_status,
                     config=TrainConfig(schedule="onecycle"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(app.run_view.epochs) == 2, timeout=10)
        await pilot.press("right_square_bracket")  # double the lr: the scripted run answers with its change
        await wait_for(pilot, lambda: any(m.what == "lr" for m in app.run_view.marks), timeout=5)
        await wait_for(pilot, lambda: "rescaled" in log_text(app), timeout=5)
        assert "Learning rate set to 0.006 at step 0" in log_text(app)
        assert "The onecycle schedule is rescaled from here: it goes on from 0.006" in log_text(app)
        app.handle.send(Command("stop"))
        await wait_for(pilot, lambda: not app.run_view.is_active, timeout=5)


def test_a_user_change_names_what_it_was_and_the_rescale():
    history = RunView()
    history.apply(started(TrainConfig(schedule="cosine")))
    history.apply(LearningRateChanged(lr=0.001, step=120, previous=0.004))
    assert history.log[-2:] == ["Learning rate set to 0.001 (was 0.004) at step 120",
                                "The cosine schedule is rescaled from here: it goes on from 0.001 (every later lr ×0.25)"]
    assert history.marks == [ChangeMark(120 / STEPS, "lr", 120)]


def test_a_resume_drops_the_marks_after_its_checkpoint():
    history = RunView()
    config = TrainConfig()
    history.apply(started(config))
    history.apply(LearningRateChanged(lr=0.001, step=50))
    history.apply(LearningRateChanged(lr=0.002, step=150))
    history.apply(started(config).__class__(**{**started(config).__dict__, "resumed_from_epoch": 1,
                                               "resumed_from_step": STEPS}))
    assert [m.step for m in history.marks] == [50]


def test_pause_and_resume_at_one_step_draw_one_line():
    marks = [ChangeMark(1.5, "pause", 120), ChangeMark(1.5, "resume", 120), ChangeMark(1.5, "lr", 120)]
    assert chart_marks(marks) == [(1.5, "pause"), (1.5, "lr")]


async def test_the_loss_chart_places_a_marker_at_a_recorded_lr_change():
    history = plausible_history(3)
    history.apply(LearningRateChanged(lr=0.0015, step=STEPS + 17, previous=0.003))
    chart = LossChart()
    async with ChartApp(chart, history).run_test(size=(40, 13)) as pilot:
        await shown(pilot, chart)
        assert chart.marks_drawn == [((STEPS + 17) / STEPS, "lr")]
        monitor = chart.plt._active.monitor
        assert monitor.vcoord[0] == [(STEPS + 17) / STEPS]  # the line plotext draws
        builds = chart.builds
        assert not chart.show(history)  # no change, no rebuild
        assert chart.builds == builds
        history.apply(RunPaused(epoch=3, step=2 * STEPS + 10))
        assert chart.show(history)  # a new change redraws
        assert [kind for _, kind in chart.marks_drawn] == ["lr", "pause"]


# -- forks and checkpoints in the runs screen ---------------------------------------------------------------------

QUICK = dict(epochs=2, max_train_samples=400, device="cpu")


class ForkLauncher(ScriptedLauncher):
    """Forks through runs/fork.py's fork_run (the fork's row and ForkedFrom recorded, as RunLauncher.fork does);
    the run it returns trains when the test says, in this process, instead of in a child."""

    def __init__(self, store):
        super().__init__()
        self.store, self.forks, self.runs = store, [], []

    def fork(self, parent_id, epoch, changes):
        from tui_trainer.runs.fork import fork_run

        run = fork_run(self.store, parent_id, epoch, changes)
        self.forks.append((parent_id, epoch, changes))
        self.runs.append(run)
        handle = ScriptedRun(self.script, run.config, run_id=run.run_id)
        self.handles.append(handle)
        return handle


async def test_fork_a_run_from_an_epoch_overlay_it_and_prune_old_checkpoints(tmp_path):
    from textual.widgets import Input, Static

    from tui_trainer.engine.loop import TrainingRun
    from tui_trainer.runs.recording import recorded
    from tui_trainer.runs.retention import epoch_files
    from tui_trainer.runs.store import RunStore
    from tui_trainer.ui.screens.runs import RunsScreen
    from tui_trainer.ui.screens.setup import SetupScreen

    store = RunStore(tmp_path / "runs")
    for _ in recorded(TrainingRun(TrainConfig(name="parent", **QUICK)), store):
        pass
    parent = store.list_runs()[0].id
    launcher = ForkLauncher(store)
    app = TrainerApp(launcher=launcher, devices=DEVICES[1:], dataset_status=dataset_status, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        await pilot.press("f")  # fork the selected run: which epoch?
        prompt = app.screen.query_one("#prompt-input", Input)
        assert prompt.value == "2"  # its last checkpoint
        prompt.value = "7"
        await pilot.press("enter")
        assert "has no checkpoint of epoch 7; epochs with one: 1, 2" in str(
            app.screen.query_one("#prompt-error", Static).render())
        prompt.value = "1"
        await pilot.press("enter")
        setup = app.screen
        assert isinstance(setup, SetupScreen) and setup.fork == (parent, 1)
        assert f"Fork of run {parent} from epoch 1: F5 starts it" in str(setup.query_one("#mode-note", Static).render())
        assert setup.query_one("#model").disabled and setup.query_one("#dataset").disabled
        setup.query_one("#field-lr", Input).value = "0.01"
        setup.query_one("#field-epochs", Input).value = "3"
        await pilot.pause()
        keys = {key.description for key in setup.query("FooterKey")}
        assert {"Start", "Back"} <= keys and not {"Queue", "Mark", "Sweep"} & keys  # a fork starts, or goes back
        await pilot.press("f6")  # no queueing a fork
        assert app.screen is setup and not launcher.forks
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), timeout=10)
        assert launcher.forks == [(parent, 1, {"lr": 0.01, "epochs": 3})]
        fork = launcher.runs[0].run_id
        record = store.get_run(fork)
        assert record.parent_id == parent and record.parent_epoch == 1  # recorded by the fork itself
        assert record.train_config().lr == 0.01 and record.train_config().epochs == 3

    for _ in recorded(launcher.runs[0], store):  # the fork trains epochs 2 and 3
        pass
    parent_curve = [(e["epoch"], e["val_acc"]) for e in store.epochs(parent)]
    app = TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES[1:], dataset_status=dataset_status, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        table = runs.query_one("#runs-table")
        table.move_cursor(row=table.get_row_index(fork))
        await pilot.pause()
        assert f"fork of {parent} at epoch 1" in str(runs.query_one("#runs-detail", Static).render())
        await pilot.press("space")  # mark the fork alone: its parent comes along, and the fork starts from it
        (label, _, xs, ys, fork_at), (parent_label, _, pxs, pys, _) = runs.compare_series
        assert label == fork and parent_label == f"{parent} (parent)"
        assert fork_at == 1.0 and xs[0] == 1 and ys[0] == parent_curve[0][1] and list(xs[1:]) == [2, 3]
        assert list(zip(pxs, pys)) == parent_curve

        table.move_cursor(row=table.get_row_index(parent))
        await pilot.pause()
        before = set(epoch_files(store.checkpoint_dir(parent)))
        assert before == {1, 2}
        await pilot.press("c")  # delete old checkpoints: it asks first
        question = str(app.screen.query_one("Label").render())
        assert f"Run {parent}: 5 checkpoint files" in question and "epoch-0001.pt" in question
        app.screen.query_one("#prompt-input", Input).value = "no"
        await pilot.press("enter")
        assert set(epoch_files(store.checkpoint_dir(parent))) == before
        await pilot.press("c")
        app.screen.query_one("#prompt-input", Input).value = "yes"
        await pilot.press("enter")
        await pilot.pause()
        assert set(epoch_files(store.checkpoint_dir(parent))) == {2}  # the newest, also the best, stays
        assert any(f"of run {parent}" in n.message and "freed" in n.message for n in app._notifications)


async def test_fork_a_run_from_a_checkpoint_written_mid_epoch(tmp_path):
    """Issue 18: `f` takes the name of a checkpoint written on demand (step-N) as well as an epoch."""
    from textual.widgets import Input, Static

    from tui_trainer.engine.control import TrainingControl
    from tui_trainer.engine.loop import TrainingRun
    from tui_trainer.runs.recording import recorded
    from tui_trainer.runs.store import RunStore
    from tui_trainer.ui.screens.setup import SetupScreen

    store = RunStore(tmp_path / "runs")
    run = TrainingRun(TrainConfig(epochs=2, max_train_samples=800, batch_size=50, device="cpu"), TrainingControl(),
                      progress_seconds=0)
    run.control.request_checkpoint()  # written at the first progress report: step 25, part-way through epoch 2
    for _ in recorded(run, store):
        pass
    parent = run.run_id
    launcher = ForkLauncher(store)
    app = TrainerApp(launcher=launcher, devices=DEVICES[1:], dataset_status=dataset_status, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        await pilot.press("f")
        assert "on demand: step-25" in str(app.screen.query_one("Label").render())
        prompt = app.screen.query_one("#prompt-input", Input)
        prompt.value = "step-7"
        await pilot.press("enter")
        assert f"run {parent} has no checkpoint step-7.pt; on-demand checkpoints: step-25" in str(
            app.screen.query_one("#prompt-error", Static).render())
        prompt.value = "step-25"
        await pilot.press("enter")
        setup = app.screen
        assert isinstance(setup, SetupScreen) and setup.fork == (parent, "step-25")
        assert f"Fork of run {parent} from its checkpoint step-25.pt" in str(setup.query_one("#mode-note",
                                                                                             Static).render())
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), timeout=10)
        assert launcher.forks == [(parent, "step-25", {"epochs": 2})]
        assert (launcher.runs[0].epoch, launcher.runs[0].step) == (1, 25)
