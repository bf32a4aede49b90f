"""The setup form is built from the config's settings: a control per field, rows that follow the choices."""

from __future__ import annotations

import dataclasses

from textual.widgets import Input, Label, RadioSet, Select, Switch

from tui_trainer.engine.config import TrainConfig

from .test_app_flow import text_of
from .test_snapshots import make_app


async def test_every_setting_has_a_control_on_the_form():
    app = make_app()
    async with app.run_test(size=(120, 40)):
        screen = app.screen
        for field in dataclasses.fields(TrainConfig):
            found = screen.query(f"#field-{field.name}") or screen.query(f"#{field.name}")
            assert found, f"{field.name} has no control"
        kinds = {"lr": Input, "hidden": Input, "optimizer": Select, "nesterov": Switch, "model": RadioSet,
                 "device": RadioSet}
        for name, kind in kinds.items():
            assert isinstance((screen.query(f"#field-{name}") or screen.query(f"#{name}")).first(), kind), name
        assert str(screen.query_one("#row-lr Label", Label).render()) == "Learning rate"


async def test_rows_and_the_command_line_follow_the_optimizer_and_model():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen

        def shown(name):
            return screen.query_one(f"#row-{name}").display

        assert not shown("momentum") and not shown("nesterov")  # adamw
        screen.query_one("#field-optimizer", Select).value = "sgd"
        await pilot.pause()
        assert shown("momentum") and shown("nesterov")
        screen.query_one("#field-momentum", Input).value = "0.5"
        await pilot.pause()
        assert "--optimizer sgd --momentum 0.5" in text_of(app, "#command")

        screen.query_one("#field-optimizer", Select).value = "adam"
        screen.query_one("#field-momentum", Input).value = "2"  # refused for SGD, harmless for Adam
        await pilot.pause()
        assert not shown("momentum")
        assert screen.config is not None and text_of(app, "#command").endswith("--optimizer adam")

        screen.query_one("#model", RadioSet).query("RadioButton").last().value = True  # cnn
        await pilot.pause()
        assert not shown("hidden") and not shown("init") and shown("lr")
        assert "--model cnn" in text_of(app, "#command") and "--hidden" not in text_of(app, "#command")
