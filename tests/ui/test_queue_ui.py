"""The queue and sweeps from the app, keys only, at 80x24 (Pilot), on a real RunStore.

No test here starts a real runner: ensure_runner is replaced by one that records its calls.
"""

from __future__ import annotations

import os

import pytest
from textual.widgets import DataTable, Input, Static

import tui_trainer.runs.queue as run_queue
from tui_trainer.runs.queue import queued, runner_status
from tui_trainer.runs.store import RunStore
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.help import HelpScreen
from tui_trainer.ui.screens.prompt import PromptScreen
from tui_trainer.ui.screens.queue import QueueScreen
from tui_trainer.ui.screens.setup import SetupScreen
from tui_trainer.ui.screens.train import TrainScreen

from ..runs.test_store import made_by_another_version
from .fakes import DEVICES, ScriptedLauncher, dataset_status
from .test_app_flow import footer_keys_cut_off, wait_for

SIZE = (80, 24)


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs")
    yield store
    store.close()


@pytest.fixture
def runner(monkeypatch):
    """ensure_runner as the app calls it, recording each call instead of starting a process."""
    calls = []

    def ensure(store):
        calls.append(store)
        return 4242

    monkeypatch.setattr(run_queue, "ensure_runner", ensure)
    return calls


def make_app(store) -> TrainerApp:
    return TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES[1:], dataset_status=dataset_status, store=store)


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def answer(pilot, text: str, typed: bool = False) -> None:
    """Fill the prompt on screen (`typed`: key by key, as a user would) and press Enter."""
    app = pilot.app
    assert isinstance(app.screen, PromptScreen), f"no prompt on screen, but {app.screen!r}"
    field = app.screen.query_one("#prompt-input", Input)
    field.value = "" if typed else text
    if typed and text:
        await pilot.press(*text)
    await pilot.press("enter")
    await pilot.pause()


async def mark(pilot, field: str, text: str, typed: bool = False) -> None:
    """F4 on the field, then its values into the prompt."""
    pilot.app.screen.query_one(f"#field-{field}").focus()
    await pilot.pause()
    await pilot.press("f4")
    await pilot.pause()
    await answer(pilot, text, typed)


async def test_f6_queues_the_forms_config_and_starts_the_runner(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        setup = app.screen
        field = setup.query_one("#field-epochs", Input)
        field.value = "3"
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()
        assert app.screen is setup, "queueing stays in setup: the run trains in the background"
        waiting = queued(store)
        assert len(waiting) == 1
        assert waiting[0].config == setup.config and waiting[0].config.epochs == 3
        assert len(runner) == 1
        said = messages(app)[-1]
        assert f"Queued run {waiting[0].id} next" in said and "runner (pid 4242)" in said
        await pilot.press("f6")  # a second: behind the first
        await pilot.pause()
        assert len(queued(store)) == 2 and "at position 2" in messages(app)[-1]


async def test_a_bad_form_queues_nothing(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#field-epochs", Input).value = "abc"
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()
        assert queued(store) == [] and runner == []
        assert any("epochs" in m for m in messages(app))


async def test_a_sweep_of_lr_over_4_log_values_and_2_seeds_queues_8_runs(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await mark(pilot, "lr", "log 1e-4 1e-1 4", typed=True)
        await mark(pilot, "seed", "0,1", typed=True)
        assert isinstance(app.screen, SetupScreen)
        # what will be swept shows on the form, and how many runs it makes
        marker = text_of(app, "#sweep-lr")
        assert "log" in marker and "0.0001" in marker and "0.1" in marker and "4" in marker
        assert app.screen.query_one("#sweep-lr").display and app.screen.query_one("#sweep-lr").region.height
        assert "0, 1" in text_of(app, "#sweep-seed")
        assert not app.screen.query_one("#sweep-epochs").display
        assert "sweep: 4 × 2 seeds = 8 runs" in text_of(app, "#sweep-summary")
        assert app.screen.query_one("#sweep-summary").region.height == 1

        await pilot.press("f7")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)  # the sweep's name, with a default
        assert app.screen.query_one("#prompt-input", Input).value == "sweep-lr"
        await answer(pilot, "lr4")
        runs = queued(store)
        assert len(runs) == 8
        assert len({r.sweep_id for r in runs}) == 1 and runs[0].sweep_id
        assert {r.sweep_name for r in runs} == {"lr4"}
        assert [r.config.lr for r in runs] == [0.0001, 0.001, 0.01, 0.1] * 2
        assert [r.config.seed for r in runs] == [0] * 4 + [1] * 4
        assert runs[0].name == "lr4 lr=0.0001 seed=0"
        assert len(runner) == 1
        said = messages(app)[-1]
        assert f"Queued sweep {runs[0].sweep_id}" in said and "8 runs" in said and "F3" in said and "F2" in said


async def test_a_bad_axis_shows_its_error_and_leaves_the_field_unmarked(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#field-lr").focus()
        await pilot.press("f4")
        await pilot.pause()
        await answer(pilot, "log 0 1 4")
        assert isinstance(app.screen, PromptScreen), "a bad axis keeps the prompt open"
        error = text_of(app, "#prompt-error")
        assert error.startswith("sweep.lr: log range needs 0 < lo < hi")
        await pilot.press("escape")
        await pilot.pause()
        setup = app.screen
        assert isinstance(setup, SetupScreen) and setup.axes == {}
        assert not setup.query_one("#sweep-lr").display and not setup.query_one("#sweep-summary").display
        await pilot.press("f7")  # nothing marked: nothing to queue
        await pilot.pause()
        assert queued(store) == [] and runner == []
        assert "No field is marked" in messages(app)[-1]


async def test_an_empty_answer_unmarks_and_a_sweep_too_large_is_refused(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await mark(pilot, "lr", "log 1e-5 1e-1 40")
        await mark(pilot, "batch_size", "lin 16 512 30")
        assert "= 1200 runs" in text_of(app, "#sweep-summary") and "more than 1000" in text_of(app, "#sweep-summary")
        await pilot.press("f7")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen), "no name is asked for a sweep that is refused"
        assert queued(store) == [] and "more than 1000" in messages(app)[-1]
        await mark(pilot, "batch_size", "")
        assert set(app.screen.axes) == {"lr"} and "= 40 runs" in text_of(app, "#sweep-summary")


async def test_an_axis_that_no_run_uses_is_refused_with_one_line(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await mark(pilot, "momentum", "0.8, 0.9")  # the default optimizer is adamw: momentum changes nothing
        await pilot.press("f7")
        await pilot.pause()
        assert queued(store) == []
        assert any("sweep.momentum: only matters with optimizer sgd" in m for m in messages(app))


async def test_the_queue_screen_lists_moves_cancels_and_pauses(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await mark(pilot, "lr", "0.001, 0.01, 0.1")
        await pilot.press("f7")
        await pilot.pause()
        await answer(pilot, "three")
        ids = [r.id for r in queued(store)]
        assert len(ids) == 3

        await pilot.press("f3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        table = screen.query_one("#queue-table", DataTable)
        assert [table.get_row_at(i)[1].plain for i in range(table.row_count)] == ids
        assert "3 waiting" in text_of(app, "#queue-status") and "not paused" in text_of(app, "#queue-status")
        assert footer_keys_cut_off(app) == []

        await pilot.press("down", "shift+up")  # the second run to the front
        await pilot.pause()
        assert [r.id for r in queued(store)] == [ids[1], ids[0], ids[2]]
        assert table.get_row_at(table.cursor_row)[1].plain == ids[1], "the cursor follows the moved run"
        await pilot.press("right_square_bracket", "right_square_bracket")  # and to the back
        await pilot.pause()
        assert [r.id for r in queued(store)] == [ids[0], ids[2], ids[1]]

        await pilot.press("home")
        await pilot.press("x")
        await pilot.pause()
        await answer(pilot, "no")
        assert len(queued(store)) == 3, "no keeps it"
        await pilot.press("x")
        await pilot.pause()
        await answer(pilot, "yes")
        assert [r.id for r in queued(store)] == [ids[2], ids[1]]
        await wait_for(pilot, lambda: table.row_count == 2, timeout=10)  # the table redraws on its next look

        await pilot.press("p")
        await pilot.pause()
        assert runner_status(store).paused and "PAUSED" in text_of(app, "#queue-status")
        calls = len(runner)
        await pilot.press("p")
        await pilot.pause()
        assert not runner_status(store).paused and len(runner) == calls + 1, "resuming starts the runner"
        await pilot.press("s")
        await pilot.pause()
        assert len(runner) == calls + 2 and "pid 4242" in messages(app)[-1]

        await pilot.press("enter")  # a waiting run: its place is said
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen) and "position 1 of 2" in messages(app)[-1]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)


async def test_the_queue_screen_follows_the_store_and_opens_a_training_run(store, runner):
    from tui_trainer.runs.queue import enqueue
    from tui_trainer.engine.config import TrainConfig

    first, second = enqueue(store, [TrainConfig(name="one"), TrainConfig(name="two")])
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        table = app.screen.query_one("#queue-table", DataTable)
        assert table.row_count == 2
        enqueue(store, [TrainConfig(name="three")])  # another terminal queues one: it shows within a second
        await wait_for(pilot, lambda: table.row_count == 3, timeout=5)
        # the runner takes the first: it is listed after the waiting ones, training
        assert store.take_queued(first, os.getpid())
        await wait_for(pilot, lambda: table.row_count == 3 and table.get_row_at(2)[1].plain == first, timeout=5)
        await pilot.press("end", "x")
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen) and "training already" in messages(app)[-1]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        assert app.handle is not None and app.handle.run_id == first


async def test_a_queued_run_this_version_cannot_read_is_listed_and_enter_says_why(store, runner):
    from tui_trainer.runs.queue import enqueue
    from tui_trainer.engine.config import TrainConfig

    theirs, mine = enqueue(store, [TrainConfig(name="theirs"), TrainConfig(name="mine")])
    made_by_another_version(store, theirs)
    why = "model 'foo' is not known to this version of scratch-tui"
    app = make_app(store)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        table = app.screen.query_one("#queue-table", DataTable)
        assert [table.get_row_at(i)[1].plain for i in range(table.row_count)] == [theirs, mine]
        assert table.get_row_at(0)[-1].plain == f"cannot be opened: {why}"
        await pilot.press("enter")
        assert isinstance(app.screen, QueueScreen) and messages(app)[-1] == f"Run {theirs} cannot be opened: {why}."


async def test_help_lists_the_queue_and_sweep_keys_and_setup_fits_80_columns(store, runner):
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        assert footer_keys_cut_off(app) == []
        shown = {k.description for k in app.screen.query("FooterKey")}
        assert {"Start", "Queue", "Mark", "Sweep", "Help"} <= shown
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help Static").render())
        for line in ("f6, ^y", "Queue this config", "f4, ^f", "Sweep the focused field", "f7, ^l",
                     "Queue the sweep", "f3", "log 1e-4 1e-1 4"):
            assert line in text, line
        await pilot.press("escape", "f3", "f1")
        await pilot.pause()
        text = str(app.screen.query_one("#help Static").render())
        for line in ("Move the run up", "Cancel the waiting run", "Pause/Resume the queue", "Start the queue's runner"):
            assert line in text, line


async def test_coming_back_says_how_many_runs_wait_in_the_queue(store, runner):
    from tui_trainer.engine.config import TrainConfig
    from tui_trainer.runs.queue import enqueue, pause_queue

    enqueue(store, [TrainConfig(), TrainConfig(seed=1)])
    pause_queue(store)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "2 runs wait in the queue (the queue is paused). F3 shows it." in messages(app)
