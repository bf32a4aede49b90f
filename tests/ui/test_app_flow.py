"""The app driven with the keyboard, as a user would (Textual's Pilot)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from textual.widgets import Input, RadioSet, Static

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import BatchProgress, EpochEnded, RunFailed, RunStopped
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.evaluate import EvaluationScreen
from tui_trainer.ui.screens.help import HelpScreen, TooSmallScreen
from tui_trainer.ui.screens.setup import SetupScreen
from tui_trainer.ui.screens.stop import StopScreen
from tui_trainer.ui.screens.train import TrainScreen

from tui_trainer.ui.widgets.charts import AccuracyChart, LossChart

from .fakes import (DEVICES, KEEP_TRAINING, ScriptedLauncher, ScriptedRun, dataset_status, epoch_events,
                    scripted_engine, started)


async def wait_for(pilot, predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def type_into(pilot, app, field: str, text: str) -> None:
    widget = app.screen.query_one(f"#field-{field}", Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def test_full_flow_with_the_real_engine():
    """Preset, a refused bad value, start, epochs arrive, pause/resume, finish, evaluation."""
    app = TrainerApp(devices=DEVICES[1:], dataset_status=dataset_status)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("ctrl+t")  # the tutorial preset
        setup = app.screen
        assert setup.query_one("#field-init").value == "randn"
        assert setup.query_one("#field-lr", Input).value == "0.01"

        await type_into(pilot, app, "epochs", "abc")
        assert "epochs: got 'abc'; must be a whole number" in text_of(app, "#error-epochs")
        assert "1 field to fix" in text_of(app, "#command")
        await pilot.press("f5")
        assert isinstance(app.screen, SetupScreen), "Start must be refused while a field is bad"

        await type_into(pilot, app, "epochs", "5000")
        await type_into(pilot, app, "max_train_samples", "600")
        setup.query_one("#field-init").value = "kaiming"
        await pilot.pause()
        assert text_of(app, "#error-epochs") == ""
        assert "--epochs 5000" in text_of(app, "#command")
        assert "--max-train-samples 600" in text_of(app, "#command")

        await pilot.press("f5")
        assert isinstance(app.screen, TrainScreen)
        await wait_for(pilot, lambda: len(app.run_view.epochs) >= 1)
        log = app.screen.query_one("#log")
        await wait_for(pilot, lambda: "Epoch 1/5000" in "\n".join(str(line.text) for line in log.lines), timeout=5)

        await pilot.press("space")
        await wait_for(pilot, lambda: app.run_view.state == "paused")
        await wait_for(pilot, lambda: "Paused" in text_of(app, "#status"), timeout=5)  # the next redraw tick
        epochs_at_pause = len(app.run_view.epochs)
        await pilot.pause(0.3)
        assert len(app.run_view.epochs) == epochs_at_pause, "a paused run must not train"

        await pilot.press("right_square_bracket")  # double the learning rate while paused
        await pilot.press("space")
        await wait_for(pilot, lambda: app.run_view.state == "running")
        await wait_for(pilot, lambda: app.run_view.lr == 0.02)

        await pilot.press("s")  # asks first: one stray key must not end hours of training
        assert isinstance(app.screen, StopScreen)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert isinstance(app.screen, TrainScreen) and app.run_view.state == "running"
        await pilot.press("s", "s")  # s again confirms
        await wait_for(pilot, lambda: app.run_view.state == "stopped")
        await wait_for(pilot, lambda: "Stopped after" in text_of(app, "#status"), timeout=5)
        assert app.run_view.evaluation is None


async def test_a_short_real_run_finishes_and_shows_its_evaluation():
    config = TrainConfig(epochs=2, max_train_samples=2000)
    app = TrainerApp(devices=DEVICES[1:], dataset_status=dataset_status, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.pause(0.2)
        accuracy = app.run_view.evaluation.test_acc
        assert accuracy > 60
        await wait_for(pilot, lambda: f"test accuracy {accuracy:.2f}%" in text_of(app, "#status"), timeout=5)
        await pilot.press("e")
        assert isinstance(app.screen, EvaluationScreen)
        assert f"Test accuracy {accuracy:.2f}%" in text_of(app, "#eval-summary")
        await pilot.press("3")
        heading = text_of(app, "#gallery-heading")
        total = len(app.run_view.evaluation.samples)
        assert heading.startswith(f"{total} samples")
        await pilot.press("m")
        mistakes = sum(s.true_label != s.predicted_label for s in app.run_view.evaluation.samples)
        assert text_of(app, "#gallery-heading").startswith(f"{mistakes} mistakes")


async def test_confusion_cell_selects_its_samples():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.press("e")
        await pilot.press("2")
        evaluation = app.run_view.evaluation
        # move to true class 0 (row 0), predicted class 1 (column 2: column 0 holds the labels)
        await pilot.press("right", "right", "enter")
        expected = [s for s in evaluation.samples if (s.true_label, s.predicted_label) == (0, 1)]
        heading = text_of(app, "#gallery-heading")
        assert heading.startswith(f"Kept {len(expected)} of the {evaluation.confusion[0][1]} test images "
                                  "of true 'T-shirt/top' predicted 'Trouser'")
        await pilot.press("a")
        assert text_of(app, "#gallery-heading").startswith(f"{len(evaluation.samples)} samples")


async def test_a_failed_run_shows_the_engines_message():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine(end="failed")), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "failed")
        await wait_for(pilot, lambda: "Failed: training loss became nan" in text_of(app, "#status"), timeout=5)
        await pilot.press("e")
        assert isinstance(app.screen, TrainScreen)  # nothing to evaluate
        await pilot.press("n")
        assert isinstance(app.screen, SetupScreen)


async def test_an_engine_crash_is_reported_not_raised():
    def broken(config):
        raise RuntimeError("CUDA error: device-side assert triggered")
        yield  # pragma: no cover

    app = TrainerApp(launcher=ScriptedLauncher(broken), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "failed")
        assert "device-side assert" in app.run_view.message


async def test_help_lists_every_binding_and_closes():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#field-name", Input).focus()
        await pilot.press("f1")  # from a text field too, where `?` is just typed
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help Static").render())
        for words in ("Start", "Recommended", "Tutorial", "Save TOML", "Load TOML", "Quit", "Command palette"):
            assert words in text
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("f5")  # the training screen's keys include [ and ], which markup must not eat
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.press("question_mark")
        text = str(app.screen.query_one("#help Static").render())
        assert "[, -" in text and "LR ÷2" in text and "], +" in text and "LR ×2" in text


async def test_dataset_choice_and_parameter_count_follow_the_selection():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        labels = [str(b.label) for b in app.screen.query_one("#dataset", RadioSet).query("RadioButton")]
        assert "cifar10  needs download (163 MB)" in labels
        assert "109,386 parameters" in text_of(app, "#model-note")
        await type_into(pilot, app, "hidden", "32")
        assert f"{784 * 32 + 32 + 32 * 10 + 10:,} parameters" in text_of(app, "#model-note")
        models = app.screen.query_one("#model", RadioSet)
        models.focus()
        await pilot.press("down", "down", "enter")  # cnn
        assert "Small CNN" in text_of(app, "#model-note")
        assert not app.screen.query_one("#row-hidden").display


async def test_config_saves_and_loads_as_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the app saves inside the working directory only
    path = tmp_path / "mine.toml"
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, app, "lr", "0.05")
        await pilot.press("ctrl+s")
        prompt = app.screen.query_one("#prompt-input", Input)
        prompt.value = str(path)
        await pilot.press("enter")
        assert TrainConfig.load(path).lr == 0.05
        await type_into(pilot, app, "lr", "0.1")
        path.write_text(path.read_text().replace("lr = 0.05", "lr = 0.07"))
        await pilot.press("ctrl+o")
        app.screen.query_one("#prompt-input", Input).value = str(path)
        await pilot.press("enter")
        assert app.screen.query_one("#field-lr", Input).value == "0.07"
        # a device this machine lacks is named, not dropped in silence
        path.write_text(path.read_text().replace('device = "auto"', 'device = "mps"'))
        await pilot.press("ctrl+o")
        app.screen.query_one("#prompt-input", Input).value = str(path)
        await pilot.press("enter")
        warnings = [n.message for n in app._notifications if n.severity == "warning"]
        assert any("device 'mps'" in m and "kept 'auto'" in m for m in warnings), warnings
        # a bad file keeps the prompt open with the engine's message
        path.write_text("lr = -1\n")
        await pilot.press("ctrl+o")
        app.screen.query_one("#prompt-input", Input).value = str(path)
        await pilot.press("enter")
        assert "lr: got -1" in text_of(app, "#prompt-error")


async def test_too_small_terminal_shows_a_notice():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        assert "at least 70x20" in text_of(app, "#too-small")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)


async def test_no_color_draws_images_with_characters(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    assert app.no_color
    async with app.run_test(size=(100, 30)) as pilot:
        # a switch's state was its colour alone: under NO_COLOR it says it
        switch = app.screen.query_one("#field-restore_best")
        before = switch.value
        assert switch.render().plain == ("on" if before else "off")
        switch.toggle()
        await pilot.pause()
        assert switch.render().plain == ("off" if before else "on")
        switch.toggle()
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.pause(0.3)
        loss = app.screen.query_one(LossChart).render().plain
        assert "x validation" in loss and "• train (epoch)" in loss  # series told apart without colour
        await pilot.press("e", "3")
        await pilot.pause(0.2)
        drawn = str(app.screen.query_one("#gallery", Static).render())
        assert "▀" not in drawn
        assert "@" in drawn or "%" in drawn  # dense pixels of the clothes


async def test_command_palette_lists_the_screens_actions():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Start", "Recommended", "Tutorial", "Save TOML", "Load TOML"} <= set(titles)
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert {"Pause/Resume", "Stop", "LR ×2", "LR ÷2", "Set LR", "Evaluation"} <= set(commands)
        assert commands["LR ×2"] == "key: ], +" and commands["Pause/Resume"] == "key: p, space"  # as the footer


async def test_cuda_memory_reported_by_the_training_process_is_shown():
    def cuda_run(config):
        yield dataclasses.replace(started(config), device="cuda:0", device_name="NVIDIA H200")
        yield BatchProgress(step=20, epoch=1, epochs=config.epochs, batch=20, batches=85, loss=1.2, acc=60.0,
                            lr=0.003, samples_per_s=90000.0, memory_mib=412.4, peak_memory_mib=1536.0)
        yield KEEP_TRAINING  # still running while the test reads the screen

    app = TrainerApp(launcher=ScriptedLauncher(cuda_run), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and "GPU mem" in text_of(app, "#stats"),
                       timeout=10)
        assert "GPU mem 412 MiB (peak 1,536)" in text_of(app, "#stats")
        app.handle.send(Command("stop"))


async def test_charts_rebuild_only_when_their_data_moves():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.pause(0.3)
        loss, acc = app.screen.query_one(LossChart), app.screen.query_one(AccuracyChart)
        assert "train (epoch)" in "".join(s.text for s in loss.render_lines(loss.region)) or loss.builds
        builds = (loss.builds, acc.builds)
        app.screen.query_one("#log").write("a line that repaints the screen")
        await pilot.press("question_mark")  # the help screen over the charts, then back
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert (loss.builds, acc.builds) == builds
        await pilot.resize_terminal(100, 40)  # a new width is a new plot
        await pilot.pause(0.3)
        assert loss.builds > builds[0] and acc.builds > builds[1]


async def test_brackets_in_fields_are_text_not_markup():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, app, "name", "a[/]")
        assert "--name 'a[/]'" in text_of(app, "#command")
        await type_into(pilot, app, "epochs", "[/b]")
        assert "[/b]" in text_of(app, "#error-epochs")
        await pilot.press("f5")  # refused, with the field's message in a notification
        assert isinstance(app.screen, SetupScreen)


async def test_a_bad_hidden_size_does_not_block_a_model_without_hidden_layers():
    app = TrainerApp(launcher=ScriptedLauncher(scripted_engine()), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, app, "hidden", "abc")
        assert "hidden" in app.screen.errors
        models = app.screen.query_one("#model", RadioSet)
        models.focus()
        await pilot.press("down", "down", "enter")  # cnn: the hidden row disappears, and so does its error
        assert not app.screen.errors and app.screen.config.model == "cnn"
        await pilot.press("up", "up", "enter")  # back to scratch-mlp: the bad value is marked again
        assert "hidden" in app.screen.errors


async def test_a_message_ending_in_a_backslash_does_not_eat_the_markup_after_it():
    def failing(config):
        yield started(config)
        yield RunFailed(message="cannot read C:\\data\\", epochs_done=0)

    app = TrainerApp(launcher=ScriptedLauncher(failing), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "failed")
        await wait_for(pilot, lambda: "— n: new run" in text_of(app, "#status"), timeout=10)
        assert "cannot read C:\\data\\ — n: new run" in text_of(app, "#status")


async def test_a_resume_that_drops_epochs_redraws_them_with_the_new_values():
    config = TrainConfig(epochs=5)
    first = [e for e in epoch_events(config, 5) if isinstance(e, EpochEnded)]
    retrained = [dataclasses.replace(e, train_acc=50.0 + e.epoch) for e in first[3:]]
    first_try_drawn = threading.Event()

    def resumed(config):
        yield started(config)
        yield from first
        first_try_drawn.wait(30)
        # the process died after recording epoch 5 but before its checkpoint: it resumes from epoch 3
        yield dataclasses.replace(started(config), resumed_from_epoch=3, resumed_from_step=3 * 85)
        yield from retrained
        yield RunStopped(epochs_done=5, seconds=1.0)

    def log_lines():
        screen = app.screen
        return [str(line.text) for line in screen.query_one("#log").lines] if isinstance(screen, TrainScreen) else []

    app = TrainerApp(launcher=ScriptedLauncher(resumed), devices=DEVICES, dataset_status=dataset_status, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("Epoch 5/5" in line for line in log_lines()), timeout=30)
        first_try_drawn.set()
        await wait_for(pilot, lambda: app.run_view.state == "stopped")
        await pilot.pause(0.3)
        acc = app.screen.query_one(AccuracyChart)
        assert acc.plt._active.monitor.y[0] == [e.train_acc for e in first[:3] + retrained]
        assert sum("Epoch 4/5" in line for line in log_lines()) == 2  # the first try and the retrained one


def endless(config):
    """Trains until stopped, so the app has a run in progress to quit from."""
    yield started(config)
    yield KEEP_TRAINING


async def test_quitting_with_a_run_in_progress_asks_and_leaves_it_running_by_default():
    from tui_trainer.ui.screens.quit import QuitScreen

    launcher = ScriptedLauncher(endless)
    app = TrainerApp(launcher=launcher, devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "running")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")  # cancel: still viewing the run
        assert isinstance(app.screen, TrainScreen) and app.is_running
        await pilot.press("ctrl+q", "enter")  # Enter takes the default: leave it running
        await pilot.pause()
    assert launcher.handles[0].sent == []  # nothing asked the run to stop
    launcher.handles[0].send(Command("stop"))


async def test_quitting_and_choosing_stop_sends_the_run_a_stop():
    launcher = ScriptedLauncher(endless)
    app = TrainerApp(launcher=launcher, devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "running")
        await pilot.press("ctrl+q", "s")
        await pilot.pause()
    assert launcher.handles[0].sent == [Command("stop")]


async def test_the_header_names_the_run_whether_this_app_started_it_and_the_device_at_80x24():
    launcher = ScriptedLauncher()
    # a run another app started, with its own config
    launcher.open = lambda run_id: ScriptedRun(scripted_engine(), TrainConfig(lr=0.05, epochs=7), run_id=run_id,
                                               started_here=False)
    app = TrainerApp(launcher=launcher, devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await wait_for(pilot, lambda: text_of(app, "#run-title").startswith("run 5c417ed0 · started here"), timeout=5)
        first = app.screen
        app.attach("5c417ed0")
        await wait_for(pilot, lambda: app.screen is not first and app.run_view.state == "finished")
        await wait_for(pilot, lambda: text_of(app, "#run-title").startswith("run 5c417ed0 · attached"), timeout=5)
        # where it trains is never cut: the 80-column line is cut at its end, and the device comes first
        assert text_of(app, "#run-title").startswith("run 5c417ed0 · attached · cpu (CPU (16 threads)) · ")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluationScreen))
        await pilot.pause()
        summary = app.screen.query_one("#eval-summary")
        assert summary.region.height == 2 and "cpu (CPU (16 threads))" in text_of(app, "#eval-summary")
        await pilot.press("escape")
        await pilot.press("n")  # a new run from the attached one: its config, not the form's defaults
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.pause()
        assert app.screen.query_one("#field-lr", Input).value == "0.05"
        assert app.screen.query_one("#field-epochs", Input).value == "7"


def footer_keys_cut_off(app) -> list[str]:
    """The footer keys (and the palette's) that do not fit whole within the screen's width."""
    from textual.widgets._footer import FooterKey

    keys = list(app.screen.query(FooterKey))
    width = app.screen.size.width
    palette = [k for k in keys if k.has_class("-command-palette")]
    limit = palette[0].region.x if palette else width
    return [f"{k.key_display} {k.description}" for k in keys
            if k.region.width == 0 or k.region.right > (width if k in palette else limit)]


async def test_at_80_columns_every_footer_key_fits_whole():
    app = TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert footer_keys_cut_off(app) == []
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished" and isinstance(app.screen, TrainScreen))
        def shown() -> set[str]:
            return {k.description for k in app.screen.query("FooterKey")}

        # an ended run offers no steering (a training run's keys: tests/ui/test_layers_ui.py)
        await wait_for(pilot, lambda: {"Eval", "New", "Help"} <= shown()
                       and not shown() & {"Pause", "Stop", "Set LR", "Checkpoint"}, timeout=10)
        assert footer_keys_cut_off(app) == []
        await pilot.press("e")
        await pilot.pause()
        assert footer_keys_cut_off(app) == []


async def test_the_palette_lists_quit_once():
    app = TrainerApp(launcher=ScriptedLauncher(), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert sum("quit" in t.lower() for t in titles) == 1


async def test_n_brings_back_the_same_setup_form_filled_with_the_last_runs_config():
    launcher = ScriptedLauncher()
    app = TrainerApp(launcher=launcher, devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await type_into(pilot, app, "lr", "0.01")
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is setup  # kept, not built again
        assert setup.query_one("#field-lr", Input).value == "0.01" and "--lr 0.01" in text_of(app, "#command")
        await type_into(pilot, app, "lr", "0.2")
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(launcher.handles) == 2 and app.run_view.state == "finished")
        assert launcher.handles[1].config.lr == 0.2
        await pilot.press("n")
        await pilot.pause()
        assert setup.query_one("#field-lr", Input).value == "0.2"  # the config the last run started with
