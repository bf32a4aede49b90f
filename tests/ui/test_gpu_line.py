"""The GPU line: a CUDA run's card, read about once a second off the UI thread; nothing, and no polling, otherwise."""

import dataclasses

import pytest

from tui_trainer.engine.commands import Command
from tui_trainer.engine.devices import GpuStats
from tui_trainer.engine.events import BatchProgress
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.setup import SetupScreen
from tui_trainer.ui.screens.train import TrainScreen
from tui_trainer.ui.widgets.gpu_line import cuda_index, gpu_line, GpuLine

from ..fake_pynvml import card, install
from .fakes import DEVICES, KEEP_TRAINING, ScriptedLauncher, dataset_status, started
from .test_app_flow import text_of, wait_for


def run_on(device: str):
    def script(config):
        yield dataclasses.replace(started(config), device=device, device_name="NVIDIA H100 80GB HBM3")
        yield BatchProgress(step=20, epoch=1, epochs=config.epochs, batch=20, batches=85, loss=1.2, acc=60.0,
                            lr=0.003, samples_per_s=90000.0, memory_mib=412.4, peak_memory_mib=1536.0)
        yield KEEP_TRAINING  # still running while the test reads the screen
    return script


class stopping:
    """Stops the scripted run on leaving, an assertion failed or not: a run left training keeps the app open."""

    def __init__(self, app) -> None:
        self.app = app

    async def __aenter__(self):
        return self.app

    async def __aexit__(self, *exc) -> None:
        if self.app.handle is not None:
            self.app.handle.send(Command("stop"))


def line_of(app) -> str:
    return str(app.screen.query_one(GpuLine).render())


async def test_a_cuda_run_shows_its_cards_live_line_at_80x24(monkeypatch):
    # CUDA_VISIBLE_DEVICES=1: the run's cuda:0 is NVML's card 1, whose readings must be the ones shown
    cards = [card(0, util=5, temperature=30), card(1)]
    install(monkeypatch, cards, cuda=[1])
    app = TrainerApp(launcher=ScriptedLauncher(run_on("cuda:0")), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot, stopping(app):
        await pilot.press("f5")
        # each wait is for a condition, with the helper's generous bound: a loaded machine only makes it slower
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.query_one(GpuLine).display)
        gpu = app.screen.query_one(GpuLine)
        await wait_for(pilot, lambda: "peak" in line_of(app))
        assert line_of(app) == "GPU 0 87% · 3.1/79.2 GiB · 61°C · 312/700 W · run peak 1,536 MiB"
        assert gpu.region.height == 1 and gpu.region.width == 80 and len(line_of(app)) <= gpu.content_size.width
        # said once, on the GPU line (the stats drop it at their next draw after the line's first reading)
        await wait_for(pilot, lambda: "GPU mem" not in text_of(app, "#stats"))
        cards[1].util = 42
        await wait_for(pilot, lambda: line_of(app).startswith("GPU 0 42% "))  # the timer reads again
        assert gpu.reads >= 2
        await pilot.press("question_mark")  # help covers the screen: no readings while it is out of sight
        await wait_for(pilot, lambda: gpu.paused)
        reads = gpu.reads
        await pilot.pause(1.5)  # longer than a reading's interval: one would have come
        assert gpu.reads == reads
        await pilot.press("escape")
        await wait_for(pilot, lambda: gpu.reads > reads)
        app.handle.send(Command("stop"))  # an ended run's line goes, and its card is read no more
        await wait_for(pilot, lambda: not gpu.display and not gpu.polling)
        assert "GPU mem" not in text_of(app, "#stats")


async def test_a_cpu_run_shows_no_gpu_line_and_reads_nothing(monkeypatch):
    install(monkeypatch, [card(0)], cuda=[0])  # a GPU is there: the run just does not use it
    app = TrainerApp(launcher=ScriptedLauncher(run_on("cpu")), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot, stopping(app):
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and "GPU mem" in text_of(app, "#stats"))
        gpu = app.screen.query_one(GpuLine)
        assert not gpu.display and not gpu.polling and gpu.reads == 0
        app.handle.send(Command("stop"))  # the run's memory is not shown once it has ended
        await wait_for(pilot, lambda: not app.run_view.is_active)
        await wait_for(pilot, lambda: "GPU mem" not in text_of(app, "#stats"))


async def test_setup_shows_the_chosen_cards_line_and_stops_for_the_cpu(monkeypatch):
    install(monkeypatch, [card(0)], cuda=[0])
    app = TrainerApp(launcher=ScriptedLauncher(run_on("cpu")), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        gpu = screen.query_one(GpuLine)
        await wait_for(pilot, lambda: gpu.display, timeout=5)  # auto → cuda:0
        # the left column is narrow at 80 columns: power goes, the line stays one line
        assert line_of(app) == "GPU 0 87% · 3.1/79.2 GiB · 61°C"
        assert gpu.region.height == 1 and len(line_of(app)) <= gpu.content_size.width
        cpu = next(b for b in screen.query("#device RadioButton") if b.name == "cpu")
        cpu.value = True
        await wait_for(pilot, lambda: not gpu.display, timeout=5)
        assert not gpu.polling


async def test_without_pynvml_nothing_shows_and_nothing_polls():
    # tests/ui/conftest.py hides pynvml from every UI test
    app = TrainerApp(launcher=ScriptedLauncher(run_on("cuda:0")), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot, stopping(app):
        gpu = app.screen.query_one(GpuLine)
        await wait_for(pilot, lambda: gpu.reads == 1 and not gpu.polling, timeout=5)  # one try, then no timer
        assert not gpu.display
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and "GPU mem" in text_of(app, "#stats"),
                       timeout=10)
        await pilot.pause(0.3)
        train_gpu = app.screen.query_one(GpuLine)
        assert not train_gpu.display and not train_gpu.polling and train_gpu.reads <= 1


def test_the_line_is_shortened_to_its_width_never_wrapped():
    s = GpuStats(3, "NVIDIA H200", 100, int(139.8 * 2**30), int(139.8 * 2**30), 100, 1000.0, 1000.0, cuda_index=0)
    full = gpu_line(s, 99999)
    assert full == "GPU 0 100% · 139.8/139.8 GiB · 100°C · 1000/1000 W · run peak 99,999 MiB" and len(full) <= 78
    assert gpu_line(s, 99999, 60) == "GPU 0 100% · 139.8/139.8 GiB · 100°C · run peak 99,999 MiB"
    assert gpu_line(s, 99999, 50) == "GPU 0 100% · 139.8/139.8 GiB · run peak 99,999 MiB"
    assert gpu_line(s, None, 36) == "GPU 0 100% · 139.8/139.8 GiB · 100°C"
    assert gpu_line(s, None, 12) == "GPU 0 100%"
    assert gpu_line(s, None, 3) == "GPU"


def test_missing_readings_are_left_out_of_the_line():
    s = GpuStats(1, "Tesla T4", 7, None, None, None, None, None, cuda_index=None)
    assert gpu_line(s, 12.0) == "GPU 1 7% · run peak 12 MiB"


@pytest.mark.parametrize("device, index", [("cuda:0", 0), ("cuda:3", 3), ("cuda", 0), ("cpu", None), ("mps", None),
                                           (None, None), ("cudax", None)])
def test_which_card_a_device_names(device, index):
    assert cuda_index(device) == index
