"""The LR finder in setup: a real range test on the bundled data, its curve, Apply, Escape; and save-config
refusing a path outside the working directory (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from tui_trainer.engine.config import TrainConfig
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.paths import inside
from tui_trainer.ui.screens.lr_find import LrFindScreen, two_figures
from tui_trainer.ui.screens.prompt import PromptScreen
from tui_trainer.ui.screens.setup import SetupScreen

from .fakes import DEVICES, ScriptedLauncher, dataset_status
from .test_app_flow import wait_for

TINY = TrainConfig(dataset="fashion-mnist-mini", max_train_samples=512, device="cpu", batch_size=64)


def tiny_app() -> TrainerApp:
    return TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES[1:], dataset_status=dataset_status, config=TINY)


async def test_the_finder_shows_a_curve_and_apply_sets_the_forms_lr():
    app = tiny_app()
    async with app.run_test(size=(80, 24)) as pilot:
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        setup.lr_find_range = (1e-5, 1.0, 30)
        await pilot.press("f8")
        finder = app.screen
        assert isinstance(finder, LrFindScreen)
        await wait_for(pilot, lambda: finder.result is not None or finder.error, timeout=60)
        assert not finder.error
        result = finder.result
        lrs, losses = finder.curve
        assert len(lrs) == len(result.lrs) >= 10 and len(losses) == len(lrs)
        assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-5)
        await pilot.pause()
        chart = str(finder.query_one("#lr-find-chart").render())
        assert any("\u2800" < ch <= "\u28ff" for ch in chart), "no braille curve drawn"
        said = str(finder.query_one("#lr-find-result", Static).render())
        assert f"suggested lr: {two_figures(result.suggestion):g}" in said
        assert ("stopped early: the loss diverged" in said) == result.stopped_early

        await pilot.press("a")
        await wait_for(pilot, lambda: app.screen is setup, timeout=5)
        assert setup.query_one("#field-lr", Input).value == f"{two_figures(result.suggestion):g}"
        assert setup.config is not None and setup.config.lr == two_figures(result.suggestion)
        assert app.store is None and not app.launcher().handles, "the finder records no run"


async def test_escape_cancels_a_running_finder_and_keeps_the_lr():
    app = tiny_app()
    async with app.run_test(size=(80, 24)) as pilot:
        setup = app.screen
        setup.lr_find_range = (1e-5, 1.0, 5000)  # long enough to be running when Escape comes
        await pilot.press("ctrl+b")
        finder = app.screen
        assert isinstance(finder, LrFindScreen)
        await pilot.press("a")  # nothing to apply yet: it stays
        assert app.screen is finder
        await pilot.press("escape")
        assert app.screen is setup
        assert finder._cancel.is_set()
        assert setup.query_one("#field-lr", Input).value == "0.003"
        workers = [w for w in app.workers if w.group == "lr-find"]
        await wait_for(pilot, lambda: all(w.is_finished for w in workers), timeout=20)


async def test_the_finder_refuses_a_form_with_a_bad_field():
    app = tiny_app()
    async with app.run_test(size=(80, 24)) as pilot:
        setup = app.screen
        setup.query_one("#field-lr", Input).value = "-1"
        await pilot.pause()
        await pilot.press("f8")
        assert app.screen is setup


# -- save-config stays inside the working directory ---------------------------------------------------------------


async def test_save_config_refuses_a_path_outside_the_working_directory(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    app = tiny_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+s")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        field = prompt.query_one("#prompt-input", Input)
        field.value = "../outside.toml"
        await pilot.press("enter")
        assert app.screen is prompt, "the prompt stays open with the reason"
        error = str(prompt.query_one("#prompt-error", Static).render())
        assert error == f"config path: {tmp_path / 'outside.toml'} is outside {project}; save inside it"
        assert not (tmp_path / "outside.toml").exists()
        assert list(tmp_path.iterdir()) == [project] and not list(project.iterdir())

        field.value = "runs.toml"
        await pilot.press("enter")
        assert app.screen is not prompt
        assert TrainConfig.load(project / "runs.toml") == TINY


def test_inside_resolves_and_refuses(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert inside(root, "a.toml") == root.resolve() / "a.toml"
    assert inside(root, "sub/../b.toml") == root.resolve() / "b.toml"
    assert inside(root, str(root / "sub" / "c.toml")) == root.resolve() / "sub" / "c.toml"
    for typed in ("../x.toml", "/etc/passwd", "sub/../../x", "~/x.toml" if not str(root).startswith(str(Path.home()))
                  else "/tmp/../etc/x"):
        with pytest.raises(ValueError, match="is outside"):
            inside(root, typed, "config path")
    with pytest.raises(ValueError, match="give a file name"):
        inside(root, "  ")
    with pytest.raises(ValueError, match="config path: .* is outside"):
        inside(root, ".", "config path")  # the folder itself is no file
    (root / "link").symlink_to(tmp_path)  # a link out of the folder is followed, and refused
    with pytest.raises(ValueError, match="is outside"):
        inside(root, "link/x.toml")
    other = tmp_path / "runs"
    other.mkdir()
    assert inside([root, other], str(other / "r.csv")) == other.resolve() / "r.csv"
    with pytest.raises(ValueError, match=f"is outside {root.resolve()} or {other.resolve()}; save inside one of them"):
        inside([root, other], "/elsewhere.csv", "export path")
