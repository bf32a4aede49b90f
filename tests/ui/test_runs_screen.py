"""The runs screen and attaching to a run that another process trains."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from textual.widgets import DataTable, Input

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.store import RunStore
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.evaluate import EvaluationScreen
from tui_trainer.ui.screens.runs import RunsScreen
from tui_trainer.ui.screens.train import TrainScreen

from ..runs.test_store import made_by_another_version, record_whole_run
from .fakes import DEVICES, dataset_status
from .test_app_flow import text_of, wait_for

QUICK = dict(epochs=2, max_train_samples=400, device="cpu")


def two_finished_runs(store):
    for name, lr in (("slow", 0.001), ("fast", 0.01)):
        run = TrainingRun(TrainConfig(name=name, lr=lr, **QUICK))
        for _ in recorded(run, store):
            pass


@pytest.fixture
def store(tmp_path, built_store):
    store = built_store("two-finished", two_finished_runs, tmp_path / "runs")
    yield store
    store.close()


def make_app(store, **kwargs) -> TrainerApp:
    return TrainerApp(devices=DEVICES, dataset_status=dataset_status, store=store, **kwargs)


async def rename_selected(pilot, name: str) -> str:
    """From the runs screen: rename the selected run with `r`; returns its id."""
    run_id = pilot.app.screen.selected_id()
    await pilot.press("r")
    pilot.app.screen.query_one("#prompt-input", Input).value = name
    await pilot.press("enter")
    return run_id


async def test_runs_table_filter_compare_and_open(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, RunsScreen)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 2
        ids = {r.name: r.id for r in store.list_runs()}

        await pilot.press("slash", *"fast", "enter")
        assert table.row_count == 1 and app.screen.selected_id() == ids["fast"]
        app.screen.query_one("#runs-filter", Input).value = ""
        await pilot.pause()
        assert table.row_count == 2

        await pilot.press("space", "down", "space")
        assert set(app.screen.marked) == set(ids.values())
        diff = text_of(app, "#runs-diff")
        assert "lr: " in diff and "name: " in diff and "epochs" not in diff

        await pilot.press("enter")
        assert isinstance(app.screen, EvaluationScreen)
        assert "Test accuracy" in text_of(app, "#eval-summary")


async def test_rename_export_and_delete_with_confirmation(store, tmp_path):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        run_id = await rename_selected(pilot, "renamed")
        assert store.get_run(run_id).name == "renamed"

        await pilot.press("x")
        outside = tmp_path / "metrics.csv"  # neither the working directory nor the runs dir: refused
        app.screen.query_one("#prompt-input", Input).value = str(outside)
        await pilot.press("enter")
        assert "export path: " in text_of(app, "#prompt-error") and "is outside" in text_of(app, "#prompt-error")
        assert not outside.exists()
        out = tmp_path / "runs" / "metrics.csv"  # inside the runs dir
        app.screen.query_one("#prompt-input", Input).value = str(out)
        await pilot.press("enter")
        lines = out.read_text().splitlines()
        assert lines[0].startswith("epoch,epochs,train_loss") and len(lines) == 3

        await pilot.press("d")
        app.screen.query_one("#prompt-input", Input).value = "no"
        await pilot.press("enter")
        assert len(store.list_runs()) == 2
        await pilot.press("d")
        app.screen.query_one("#prompt-input", Input).value = "yes"
        await pilot.press("enter")
        assert [r.id for r in store.list_runs()] != [] and run_id not in {r.id for r in store.list_runs()}


async def test_in_app_runs_are_recorded_with_their_id(tmp_path):
    store = RunStore(tmp_path / "runs")
    app = make_app(store, config=TrainConfig(**QUICK))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.pause(0.2)
        run_id = app.run_view.started.run_id
        assert run_id
        await wait_for(pilot, lambda: f"run {run_id}" in text_of(app, "#run-title"), timeout=5)
    record = store.get_run(run_id)
    assert record.status == "finished" and record.epochs_done == 2
    assert store.evaluation(run_id).test_acc == pytest.approx(app.run_view.evaluation.test_acc)


async def test_attach_follows_a_detached_run_and_leaving_keeps_it_going(tmp_path):
    runs = tmp_path / "runs"
    started = subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--detach", "--runs-dir", str(runs),
                              "--epochs", "3000", "--max-train-samples", "300", "--device", "cpu"],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    store = RunStore(runs)
    run_id = store.list_runs()[0].id
    app = make_app(store, attach=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and len(app.run_view.epochs) >= 2)
        await wait_for(pilot, lambda: text_of(app, "#run-title").startswith(f"run {run_id} · attached"),
                       timeout=5)  # next redraw tick
        await pilot.press("space")  # pause through the store's control channel
        await wait_for(pilot, lambda: app.run_view.state == "paused")
        await pilot.press("space")
        await wait_for(pilot, lambda: app.run_view.state == "running")
    # the viewer is gone; the run is not
    assert store.get_run(run_id).status == "running"
    store.send(run_id, Command("stop"))
    import time

    for _ in range(200):
        if store.get_run(run_id).status != "running":
            break
        time.sleep(0.1)
    assert store.get_run(run_id).status == "stopped"


def stopped_after_one_epoch(tmp_path) -> tuple[RunStore, str]:
    """A real recorded run of three epochs, stopped after its first: resumable, with no evaluation."""
    from tui_trainer.engine.control import TrainingControl
    from tui_trainer.engine.events import EpochEnded

    store = RunStore(tmp_path / "runs")
    control = TrainingControl()
    run = TrainingRun(TrainConfig(epochs=3, max_train_samples=400, device="cpu"), control)
    for event in recorded(run, store):
        if isinstance(event, EpochEnded):
            control.stop()
    assert store.get_run(run.run_id).status == "stopped" and store.evaluation(run.run_id) is None
    return store, run.run_id


async def test_resume_from_the_runs_screen_continues_the_same_run(tmp_path):
    store, run_id = stopped_after_one_epoch(tmp_path)
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2", "u")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        assert [e.epoch for e in app.run_view.epochs] == [1, 2, 3]
        # the run replaced the setup and runs screens beneath it: one main screen, not a pile
        assert len(app.screen_stack) == 2 and isinstance(app.screen, TrainScreen)
        assert app.run_view.started.run_id == run_id
    record = store.get_run(run_id)
    assert record.status == "finished" and record.epochs_done == 3


async def test_a_resume_that_cannot_load_its_checkpoint_shows_why_on_the_runs_view(tmp_path):
    """The app no longer loads the checkpoint on its own thread to check it: the run's worker does, and the
    RunFailed it records is what the training screen shows."""
    store, run_id = stopped_after_one_epoch(tmp_path)
    last = store.checkpoint_dir(run_id) / "last.pt"
    for path in store.checkpoint_dir(run_id).iterdir():
        path.unlink()
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2", "u")
        await wait_for(pilot, lambda: app.run_view.state == "failed")
        assert isinstance(app.screen, TrainScreen) and app.run_view.started.run_id == run_id
        assert app.run_view.message == f"Failed: run {run_id} cannot be resumed: no checkpoint at {last}"
    record = store.get_run(run_id)
    assert (record.status, record.epochs_done) == ("failed", 1)  # what it had trained is kept
    names = [event.event_name for _, event in store.events(run_id)]
    assert names[-2:] == ["process_started", "run_failed"] and names.count("process_started") == 1


async def test_a_stopped_run_is_evaluated_from_its_best_checkpoint(tmp_path):
    store, run_id = stopped_after_one_epoch(tmp_path)
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluationScreen))
        summary = str(app.screen.query_one("#eval-summary").render())
        assert f"run {run_id}, best checkpoint (epoch 1" in summary
        assert summary.startswith("Test accuracy ") and "2,000 test images" in summary


async def test_a_name_with_brackets_shows_as_typed(store):
    # Textual markup reads any `[` as a tag: a name like this once crashed the runs screen for good
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        run_id = await rename_selected(pilot, "x[/b] [red]")
        await pilot.pause()
        row = app.screen.query_one("#runs-table", DataTable).get_row(run_id)
        assert "x[/b] [red]" in [str(cell) for cell in row]
        assert "x[/b] [red]" in text_of(app, "#runs-detail")
        await pilot.press("enter")
        assert isinstance(app.screen, EvaluationScreen)


async def test_the_table_follows_other_processes_and_is_left_alone_when_nothing_moved(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        screen = app.screen
        fills = []
        original = screen._fill_table
        screen._fill_table = lambda: (fills.append(1), original())
        await pilot.pause(2.5)  # a poll with nothing new: no rebuild
        assert fills == []
        run_id = screen.selected_id()
        store.rename(run_id, "renamed elsewhere")  # as `scratch-tui runs rename` in another shell would
        await wait_for(pilot, lambda: fills, timeout=5)
        row = screen.query_one("#runs-table", DataTable).get_row(run_id)
        assert "renamed elsewhere" in [str(cell) for cell in row]


# -- fitting the width, keys, the empty chart ------------------------------------------------------------------
MUST_SHOW = ("id", "status", "epochs", "best val", "test")


def table_lines(table: DataTable) -> list[str]:
    """What the table shows, as text: the header line, then one line per row."""
    return [table.render_line(y).text for y in range(table.row_count + 1)]


def assert_fits(table: DataTable) -> list[str]:
    labels = [str(column.label) for column in table.columns.values()]
    assert set(MUST_SHOW) <= set(labels), labels
    assert sum(column.get_render_width(table) for column in table.columns.values()) <= table.size.width
    assert table.max_scroll_x == 0  # nothing to scroll sideways to
    return labels


def long_named_store():
    from dataclasses import replace

    from .fakes import FixedStore

    store = FixedStore()
    store.records["a1b2c3d4"] = replace(store.records["a1b2c3d4"], name="ten-chars! and then some more")
    return store


async def test_at_80_columns_every_column_is_on_screen_with_the_accuracies():
    from tui_trainer.format import percent

    from .fakes import FixedStore

    store = FixedStore()
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        table = app.screen.query_one("#runs-table", DataTable)
        assert_fits(table)
        lines = table_lines(table)
        assert all(label in lines[0] for label in MUST_SHOW), lines[0]
        for run in store.list_runs():
            line = next(line for line in lines if run.id in line)
            assert percent(run.test_acc) in line and percent(run.best_val_acc) in line and run.status in line
        assert "88.40%" in next(line for line in lines if "a1b2c3d4" in line)  # a finished run's test accuracy


async def test_a_long_name_is_cut_short_and_started_stays_at_120_columns():
    store = long_named_store()
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        table = app.screen.query_one("#runs-table", DataTable)
        assert "started" in assert_fits(table)
        line = next(line for line in table_lines(table) if "a1b2c3d4" in line)
        assert "ten-chars!" in line and "…" in line and "and then some more" not in line
        # the cell keeps the whole name: only its drawing is cut
        assert "ten-chars! and then some more" in [str(cell) for cell in table.get_row("a1b2c3d4")]


async def test_the_columns_follow_the_terminal_width():
    app = make_app(long_named_store())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        table = app.screen.query_one("#runs-table", DataTable)
        wide = assert_fits(table)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        narrow = assert_fits(table)
        assert "started" in wide and "started" not in narrow and len(narrow) < len(wide)
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert assert_fits(table) == wide


async def test_escape_in_the_filter_leaves_the_filter_not_the_runs_screen():
    from .fakes import FixedStore

    app = make_app(FixedStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2", "slash", *"cnn")
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        await pilot.press("escape")
        assert app.screen is screen
        assert screen.query_one("#runs-filter", Input).value == "" and table.row_count == 3 and table.has_focus
        await pilot.press("escape")  # from the table, Esc goes back as before
        assert not isinstance(app.screen, RunsScreen)


async def test_end_and_home_go_to_the_last_and_first_run_without_scrolling_sideways():
    from .fakes import FixedStore

    app = make_app(FixedStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 == 2 and table.scroll_x == 0
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_x == 0


async def test_the_empty_compare_chart_says_to_mark_runs():
    from textual_plotext import PlotextPlot

    from .fakes import FixedStore

    app = make_app(FixedStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        chart = app.screen.query_one("#runs-chart", PlotextPlot)
        assert "Mark runs with space" in chart.render().plain
        run_id = app.screen.selected_id()
        await pilot.press("space")
        await pilot.pause()
        drawn = chart.render().plain
        assert "Mark runs with space" not in drawn and run_id in drawn  # the legend names the marked run
        await pilot.press("space")  # unmarked: empty again, and says so again
        await pilot.pause()
        assert "Mark runs with space" in chart.render().plain


async def test_a_run_resumed_while_its_delete_question_is_open_is_not_deleted(store):
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        run_id = app.screen.selected_id()
        await pilot.press("d")
        store.claim(run_id, os.getpid())  # another terminal resumes it meanwhile (this live process trains it)
        app.screen.query_one("#prompt-input", Input).value = "yes"
        await pilot.press("enter")
        await pilot.pause()
        assert store.get_run(run_id).status == "running"
        assert any("running again" in n.message for n in app._notifications)


async def test_a_run_this_version_cannot_read_is_listed_and_enter_says_why(tmp_path):
    store = RunStore(tmp_path / "runs")
    mine, theirs = store.create_run(TrainConfig(name="mine")), store.create_run(TrainConfig(name="theirs"))
    record_whole_run(store, theirs)  # finished, with an evaluation that Enter would open
    made_by_another_version(store, theirs)
    line = f"Run {theirs} cannot be opened: model 'foo' is not known to this version of scratch-tui."
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert isinstance(screen, RunsScreen) and table.row_count == 2
        table.move_cursor(row=table.get_row_index(theirs))
        await pilot.pause()
        assert "cannot be opened: model 'foo' is not known to this version of scratch-tui" in text_of(
            app, "#runs-detail")
        await pilot.press("space", "enter")  # marked to compare, then opened
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert isinstance(app.screen, RunsScreen) and said[-1] == line
        await pilot.press("u")  # resuming says the same, before asking for epochs
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and [n.message for n in app._notifications] == said + [line]
    store.close()


async def test_damaged_rows_are_listed_marked_and_the_app_goes_on(tmp_path):
    """A config that is not JSON, an unknown status and an evaluation blob that cannot be read: each run is listed,
    highlighting it says what is wrong, marking and opening it says so in one line, and the app stays up."""
    import sqlite3

    store = RunStore(tmp_path / "runs")
    ids = {}
    for name in ("sound", "config", "status", "blob"):
        ids[name] = store.create_run(TrainConfig(name=name))
        record_whole_run(store, ids[name])
    with sqlite3.connect(tmp_path / "runs" / "runs.sqlite3") as db:
        db.execute("UPDATE runs SET config = '{oops' WHERE id = ?", (ids["config"],))
        db.execute("UPDATE runs SET status = 'weird' WHERE id = ?", (ids["status"],))
        db.execute("UPDATE run_events SET data = x'0011' WHERE run_id = ? AND name = 'eval_end'", (ids["blob"],))
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert isinstance(screen, RunsScreen) and table.row_count == 4
        for name, why in (("config", "its config in the store is not JSON"),
                          ("status", "its status 'weird' is not one scratch-tui knows")):
            table.move_cursor(row=table.get_row_index(ids[name]))
            await pilot.pause()
            assert "damaged" in " ".join(str(c) for c in table.get_row(ids[name]))
            assert f"cannot be opened: damaged: {why}" in text_of(app, "#runs-detail")
            await pilot.press("space", "enter")  # marked to compare, then opened
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)
            assert app._notifications and why in list(app._notifications)[-1].message
        table.move_cursor(row=table.get_row_index(ids["blob"]))
        await pilot.pause()
        await pilot.press("space", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert f"run {ids['blob']} is damaged: event" in list(app._notifications)[-1].message
        table.move_cursor(row=table.get_row_index(ids["sound"]))
        await pilot.press("enter")  # the sound run still opens its evaluation
        await pilot.pause()
        assert isinstance(app.screen, EvaluationScreen)
    store.close()
