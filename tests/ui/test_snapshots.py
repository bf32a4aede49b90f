"""Each pane at 80x24 and 120x40, on fixed data (pytest-textual-snapshot).

Refresh after an intended change of the screens: pytest tests/ui --snapshot-update
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tui_trainer.ui.app import TrainerApp

from .fakes import DEVICES, ScriptedLauncher, dataset_status, scripted_engine
from .test_app_flow import wait_for

SIZES = [(80, 24), (120, 40)]


def make_app(**kwargs) -> TrainerApp:
    return TrainerApp(launcher=ScriptedLauncher(scripted_engine(**kwargs)), devices=DEVICES, dataset_status=dataset_status)


async def no_blink(pilot) -> None:
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


async def finished_run(pilot) -> None:
    await no_blink(pilot)
    await pilot.press("f5")
    await wait_for(pilot, lambda: pilot.app.run_view.state in ("finished", "failed"))
    await pilot.pause(0.3)  # one more redraw tick


@pytest.mark.parametrize("size", SIZES)
def test_setup(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=no_blink)


def test_setup_with_a_bad_field(snap_compare):
    async def bad_lr(pilot):
        await no_blink(pilot)
        field = pilot.app.screen.query_one("#field-lr", Input)
        field.focus()
        field.value = "-2"
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=bad_lr)


@pytest.mark.parametrize("size", SIZES)
def test_training_finished(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=finished_run)


def test_training_failed(snap_compare):
    assert snap_compare(make_app(end="failed"), terminal_size=(80, 24), run_before=finished_run)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tab", ["1", "2", "3"])
def test_evaluation(snap_compare, size, tab):
    async def open_tab(pilot):
        await finished_run(pilot)
        await pilot.press("e", tab)
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_tab)


def test_help(snap_compare):
    async def open_help(pilot):
        await finished_run(pilot)
        await pilot.press("question_mark")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=open_help)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare, size):
    from .fakes import FixedStore

    async def compare_two(pilot):
        await pilot.press("f2", "space", "down", "space")
        pilot.app.clear_notifications()  # "still training" for the running run: a test of its own says so
        await pilot.pause(0.2)

    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status,
                     store=FixedStore())
    assert snap_compare(app, terminal_size=size, run_before=compare_two)


async def test_opening_the_app_says_which_runs_are_still_training():
    from .fakes import FixedStore

    app = TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES, dataset_status=dataset_status, store=FixedStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert [n.message for n in app._notifications] == [
            "Still training: c9d0e1f2 (running). F2 lists them; Enter opens one."]
