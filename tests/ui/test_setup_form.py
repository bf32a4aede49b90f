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
        from tui_trainer.engine.config import SETTINGS

        for field in dataclasses.fields(TrainConfig):
            found = screen.query(f"#field-{field.name}") or screen.query(f"#{field.name}")
            # but what nobody types: a model file's source, kept with the run
            assert bool(found) == SETTINGS[field.name].typed, f"{field.name} has no control"
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


# -- keyboard use at 80x24: focus, footer, presets ---------------------------------------------------------------
import pytest  # noqa: E402  (imports for the tests appended below)
from textual.widgets import RadioButton  # noqa: E402
from textual.widgets._footer import FooterKey  # noqa: E402
from textual.widgets._select import SelectCurrent  # noqa: E402

from tui_trainer import cli  # noqa: E402
from tui_trainer.cli.flags import config_from_args  # noqa: E402
from tui_trainer.engine.config import PRESETS, SETTINGS, applies, preset  # noqa: E402
from tui_trainer.ui.screens.setup import FIELDS  # noqa: E402


def focus_look(widget):
    """What marks a control as focused: the selected radio's label, or the control's and its row label's colours."""
    if isinstance(widget, RadioSet):
        selected = widget.query("RadioButton.-selected")
        return selected.first().get_component_rich_style("toggle--label") if selected else None
    face = widget.query_one(SelectCurrent) if isinstance(widget, Select) else widget
    return face.styles.background, widget.parent.styles.background, widget.parent.query_one(".field-label").styles.color


async def test_tab_visits_every_shown_control_once_and_each_looks_focused():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        for setup in ({}, {"optimizer": "sgd", "model": "cnn"}):  # the rows shown change with these two
            if setup:
                screen.query_one("#field-optimizer", Select).value = setup["optimizer"]
                next(b for b in screen.query_one("#model", RadioSet).query(RadioButton) if b.name == "cnn").value = True
                await pilot.pause()
            picked = screen._picked()
            # the fake machine has one GPU: no GPUs row
            expected = ["device", "dataset", "model"] + [f"field-{s.name}" for s in FIELDS
                                                          if applies(s.name, picked) and s.name != "gpus"]
            screen.query_one("#device").focus()
            await pilot.pause()
            visited = []
            for _ in range(len(expected)):
                widget = app.focused
                visited.append(widget.id)
                # on screen, where a person can see it: nothing between Model and Hidden sizes takes a Tab stop
                assert screen.get_widget_at(*widget.region.offset)[0] in (widget, *widget.walk_children()), widget.id
                focused_look = focus_look(widget)
                await pilot.press("tab")
                assert focus_look(widget) != focused_look, f"{widget.id} looks the same focused and not"
            assert visited == expected
            assert app.focused.id == "device"  # round again
            assert ("field-momentum" in visited) == bool(setup) and ("field-hidden" in visited) == (not setup)


async def test_the_footer_keys_stay_put_wherever_the_focus_is():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen

        def footer():
            return [(key.key, key.description) for key in screen.query(FooterKey)]

        await pilot.pause()
        first = footer()
        assert [d for _, d in first][:6] == ["Start", "Queue", "Mark", "Sweep", "Help", "Recommended"]
        for selector in ("#field-lr", "#field-optimizer", "#field-nesterov", "#model", "#field-name"):
            if selector == "#field-nesterov":
                screen.query_one("#field-optimizer", Select).value = "sgd"
                await pilot.pause()
            screen.query_one(selector).focus()
            await pilot.pause()
            assert footer() == first, selector
        screen.query_one("#field-lr", Input).focus()
        await pilot.press("1", "left")  # typing into an input
        await pilot.pause()
        assert footer() == first
        screen.query_one("#field-schedule", Select).focus()
        await pilot.press("enter")  # the dropdown opens
        await pilot.pause()
        assert screen.query_one("#field-schedule", Select).expanded
        assert footer() == first
        await pilot.press("escape")  # still closes it
        await pilot.pause()
        assert not screen.query_one("#field-schedule", Select).expanded and footer() == first


async def _form_with_a_cnn(pilot, screen):
    for set_id, name in (("model", "cnn"), ("dataset", "fashion-mnist")):
        next(b for b in screen.query_one(f"#{set_id}", RadioSet).query(RadioButton) if b.name == name).value = True
    screen.query_one("#field-optimizer", Select).value = "sgd"
    await pilot.pause()
    for field, text in (("momentum", "0.5"), ("lr", "0.02"), ("seed", "7"), ("epochs", "3")):
        screen.query_one(f"#field-{field}", Input).value = text
    await pilot.pause()


@pytest.mark.parametrize("name", ["recommended", "tutorial"])
async def test_ctrl_r_and_ctrl_t_apply_a_preset_as_train_preset_does(name, tmp_path):
    """Both keys follow one rule, the CLI's: `--config FILE --preset NAME` is preset(NAME, FILE), and the form
    is the file. A preset sets what it names and keeps the rest; tutorial names the model, recommended does not."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _form_with_a_cnn(pilot, screen)
        base = screen.config
        assert base is not None and (base.model, base.lr, base.seed) == ("cnn", 0.02, 7)
        said = []
        screen.notify = lambda message, **kw: said.append((kw.get("title"), message))
        await pilot.press("ctrl+r" if name == "recommended" else "ctrl+t")
        await pilot.pause()
        after = screen.config
        assert after == preset(name, base)
        path = tmp_path / "form.toml"
        base.save(path)
        assert after == config_from_args(cli.build_parser().parse_args(["train", "--config", str(path),
                                                                            "--preset", name]))
        if name == "tutorial":  # sets what it names, keeps every other field as the form had it
            assert all(getattr(after, k) == v for k, v in PRESETS[name].items())
            assert all(getattr(after, k) == getattr(base, k) for k in SETTINGS if k not in PRESETS[name])
        else:  # the training knobs back to their defaults and the CNN's sweep winner; what to train on stays
            assert (after.optimizer, after.epochs) == (TrainConfig().optimizer, TrainConfig().epochs)
            assert (after.lr, after.batch_size, after.augment) == (0.002, 64, "flip")
        assert (after.model == "scratch-mlp") == (name == "tutorial")  # only tutorial names a model
        assert (after.seed, after.dataset) == (7, "fashion-mnist")
        title, message = said[-1]
        assert title == f"Preset {name!r}"
        assert ("model scratch-mlp" in message) == (name == "tutorial") and "learning rate" in message


async def test_a_preset_keeps_the_forms_choices_while_a_field_is_refused():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _form_with_a_cnn(pilot, screen)
        screen.query_one("#field-lr", Input).value = "abc"
        await pilot.pause()
        assert screen.config is None
        await pilot.press("ctrl+r")
        await pilot.pause()
        after = screen.config
        assert after is not None and (after.model, after.dataset, after.seed) == ("cnn", "fashion-mnist", 7)
        recommended = preset("recommended", TrainConfig(model="cnn")).lr  # the CNN's own, from its sweep
        assert after.lr == recommended and screen.query_one("#field-lr", Input).value == str(recommended)


async def test_a_machine_with_several_gpus_offers_them_and_f5_starts_the_run_on_them():
    from tui_trainer.engine.devices import DeviceInfo
    from tui_trainer.ui.app import TrainerApp

    from .fakes import DEVICES, ScriptedLauncher, dataset_status
    from .test_app_flow import type_into

    one_gpu = make_app()
    async with one_gpu.run_test(size=(120, 40)):
        assert not one_gpu.screen.query_one("#row-gpus").display  # nothing to choose with one GPU

    two = [DEVICES[0], DeviceInfo("cuda:1", "NVIDIA H100 80GB HBM3", "cuda", 85_045_346_304, "9.0"), *DEVICES[1:]]
    launcher = ScriptedLauncher()
    app = TrainerApp(launcher=launcher, devices=two, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert screen.query_one("#row-gpus").display
        await type_into(pilot, app, "gpus", "3")
        assert text_of(app, "#error-gpus") == "gpus: got 3; this machine has 2 CUDA GPUs, so choose 1 to 2"
        await pilot.press("f5")
        assert launcher.handles == []  # refused until fixed
        await type_into(pilot, app, "gpus", "2")
        assert not screen.query_one("#error-gpus").display and "--gpus 2" in text_of(app, "#command")
        await pilot.press("f5")
        await pilot.pause()
        assert [h.config.gpus for h in launcher.handles] == [2]
