"""Setup with the user's own model files and data: listed from the working directory, checked and shown in a
worker, their keyword arguments as fields; files outside the allowed folders refused; a data path as a dataset."""

from __future__ import annotations

import textwrap

import pytest
from textual.widgets import Input, RadioButton, RadioSet

from tui_trainer.ui.app import TrainerApp

from .fakes import DEVICES, STATUS, ScriptedLauncher, scripted_engine
from .test_app_flow import text_of

NET = textwrap.dedent("""
    from torch import nn

    class Net(nn.Module):
        def __init__(self, image_shape, num_classes, width: int = 32, scale=0.5, act="relu"):
            super().__init__()
            c, h, w = image_shape
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(),
                                      nn.Linear(width, num_classes))

        def forward(self, x):
            return self.body(x)
    """)
BROKEN = textwrap.dedent("""
    from torch import nn

    class Wrong(nn.Module):
        def __init__(self, image_shape, num_classes):
            super().__init__()
            self.fc = nn.Linear(784, 5)

        def forward(self, x):
            return self.fc(x.flatten(1))
    """)


def status(name: str) -> str:
    return STATUS.get(name, "your image folder")


def make_app(**kwargs) -> TrainerApp:
    return TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=status,
                      **kwargs)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(NET)
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "notes.py").write_text("def helper(x):\n    return x\n")  # no model in it
    monkeypatch.chdir(tmp_path)
    return tmp_path


def press(screen, set_id: str, name: str) -> None:
    next(b for b in screen.query_one(f"#{set_id}", RadioSet).query(RadioButton) if b.name == name).value = True


async def settle(pilot, test, tries: int = 100) -> None:
    for _ in range(tries):
        await pilot.pause(0.05)
        if test():
            return
    raise AssertionError("not reached")


async def test_a_model_file_is_listed_checked_shown_and_its_arguments_reach_the_config(workdir):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        names = [b.name for b in screen.query_one("#model", RadioSet).query(RadioButton)]
        assert names[:3] == ["scratch-mlp", "sequential-mlp", "cnn"]
        assert "nets.py:Net" in names and "broken.py:Wrong" in names and not any("helper" in n for n in names)
        press(screen, "model", "nets.py:Net")
        await settle(pilot, lambda: "parameters" in text_of(app, "#model-note"))
        assert f"{784 * 32 + 32 + 32 * 10 + 10:,} parameters" in text_of(app, "#model-note")
        assert "sha256 " in text_of(app, "#model-note")
        layers = text_of(app, "#model-layers")
        assert "body.1" in layers and "Linear" in layers and "25,120" in layers
        # the keyword arguments are fields, typed
        width = screen.query_one("#arg-width", Input)
        assert width.value == "32" and screen.query_one("#arg-act", Input).value == "relu"
        width.value = "16"
        await settle(pilot, lambda: "--model-arg width=16" in text_of(app, "#command"))
        assert screen.config.model_args == {"width": 16}
        await settle(pilot, lambda: "12,730 parameters" in text_of(app, "#model-note"))
        width.value = "wide"
        await pilot.pause()
        assert screen.config is None and "whole number" in screen.errors["model_args"]
        width.value = "32"  # the default again: no argument
        await settle(pilot, lambda: screen.config is not None and screen.config.model_args == {})
        await pilot.press("f5")
        await settle(pilot, lambda: app.launcher().handles)
        started = app.launcher().handles[-1].config
        assert started.model == "nets.py:Net" and "class Net" in started.model_source


async def test_a_broken_model_file_says_why_and_start_is_refused(workdir):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        press(screen, "model", "broken.py:Wrong")
        await settle(pilot, lambda: "forward returned shape" in text_of(app, "#model-note"))
        note = text_of(app, "#model-note")
        assert "broken.py:9" in note and "(2, 10)" in note and "\n" not in note.strip()
        assert screen.config is None and screen.errors["model"].startswith("model: broken.py")
        await pilot.press("f5")
        await pilot.pause()
        assert not app.launcher().handles


async def test_a_model_file_outside_the_allowed_folders_is_refused(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "net.py").write_text(NET)
    from tui_trainer.engine.config import TrainConfig

    app = make_app(config=TrainConfig(model=f"{elsewhere}/net.py:Net"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.pause()
        assert "only from inside" in screen.errors["model"]
        assert "only from inside" in text_of(app, "#model-note")
        await pilot.press("f5")
        await pilot.pause()
        assert not app.launcher().handles
    # --models-dir makes it one of the app's: listed, and allowed
    app = make_app(models_dir=str(elsewhere))
    async with app.run_test(size=(80, 24)) as pilot:
        names = [b.name for b in app.screen.query_one("#model", RadioSet).query(RadioButton)]
        assert f"{elsewhere}/net.py:Net" in names
        press(app.screen, "model", f"{elsewhere}/net.py:Net")
        await settle(pilot, lambda: "parameters" in text_of(app, "#model-note"))
        assert "model" not in app.screen.errors


async def test_a_data_path_reaches_the_config(workdir):
    (workdir / "my-images" / "train").mkdir(parents=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert not screen.query_one("#row-data-path").display and not screen.query_one("#row-image_shape").display
        press(screen, "dataset", "your-data")
        await pilot.pause()
        assert screen.query_one("#row-data-path").display and "dataset" in screen.errors
        path = screen.query_one("#data-path", Input)
        path.focus()
        await pilot.press(*"my-i")
        await pilot.pause(0.2)
        await pilot.press("right")  # takes the suggestion
        await settle(pilot, lambda: path.value == "my-images/")
        await settle(pilot, lambda: screen.config is not None)
        assert screen.config.dataset == "my-images/" and "--dataset my-images/" in text_of(app, "#command")
        assert "your image folder" in text_of(app, "#dataset-note")
        assert screen.query_one("#row-image_shape").display and screen.query_one("#row-resize").display
        screen.query_one("#field-resize", Input).value = "28,28"
        await settle(pilot, lambda: screen.config is not None and screen.config.resize == (28, 28))
