"""Looking inside the network in the app: the Layers view of a live run, a layer's histograms, two runs compared."""

from __future__ import annotations

import time

from textual.widgets import DataTable, Static

from tui_trainer.engine.config import TrainConfig, preset
from tui_trainer.engine.events import Diagnosis, LayerStat, LayerStats, RunFinished
from tui_trainer.runs.store import RunStore
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.layers import HistogramScreen, LayersCompareScreen, LayersScreen
from tui_trainer.ui.screens.runs import RunsScreen
from tui_trainer.ui.screens.train import TrainScreen
from tui_trainer.ui.widgets.layers import histogram_lines, out_of_range, sparkline

from .fakes import DEVICES, KEEP_TRAINING, ScriptedLauncher, dataset_status, epoch_events, evaluation, started
from .test_app_flow import footer_keys_cut_off, wait_for

INIT_VERDICT = ("initial loss 1.35e+03 vs 2.30 expected for 10 classes; layers.0 output std 29 (≈1 expected): weights "
                "with std 1 are ~28× too large for 784 inputs; try `--init kaiming`")


def hist(centre: float, spread: float) -> list[float]:
    return [centre - 3 * spread, centre + 3 * spread, *(float(150 - (i - 12) ** 2) for i in range(24))]


def probe(step: int, epoch: int, scale: float, dead: float = 0.0, update: float | None = None) -> LayerStats:
    """Three layers of a scratch MLP; `scale`: how far the activations spread (28 for an unscaled randn init)."""
    layers = [LayerStat(name=f"layers.{i}", kind="ScratchLinear", act_mean=0.1, act_std=round(scale * (i + 1), 3),
                        dead=None if i == 2 else dead, weight_std=0.05 * scale, weight_norm=10.0,
                        grad_norm=0.5 / (i + 1), update_ratio=update, fan_in=784,
                        act_hist=hist(0, scale), weight_hist=hist(0, 0.05 * scale), grad_hist=hist(0, 0.01))
              for i in range(3)]
    return LayerStats(step=step, epoch=epoch, loss=round(2.3 * scale, 3), logits_std=scale * 3, expected_loss=2.303,
                      layers=layers)


def probed(config):
    """A run with a bad init: the probe at step 0 flags it, later probes see dead units."""
    yield started(config)
    yield probe(0, 1, 28.9)
    yield Diagnosis(step=0, text=INIT_VERDICT, key="loss")
    events = list(epoch_events(config, 2))
    yield from events[:5]
    yield probe(85, 2, 1.2, dead=0.6, update=1e-3)
    yield Diagnosis(step=85, text="layers.1: 60% of ReLUs dead", key="dead layers.1")
    yield from events[5:]
    yield evaluation()
    yield RunFinished(epochs_done=2, seconds=1.0)


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def row_text(table: DataTable, row: int) -> list[str]:
    return [str(cell) for cell in table.get_row_at(row)]


def fits(app) -> None:
    """Nothing on the screen reaches past 80×24, nor scrolls sideways."""
    for widget in app.screen.query("*"):
        region = widget.region
        if region.width and region.height:
            assert region.right <= 80 and region.bottom <= 24, widget
    for table in app.screen.query(DataTable):
        assert table.virtual_size.width <= table.size.width, "the table scrolls sideways"


def test_out_of_range_and_sparklines():
    layer = probe(0, 1, 28.9).layers[0]
    assert out_of_range(layer) == {"act_std"}
    assert out_of_range(probe(85, 2, 1.2, dead=0.6, update=0.5).layers[0]) == {"dead", "update_ratio"}
    assert sparkline([1, 2, 3]) == "▁▅█" and len(sparkline(range(100))) == 7 and sparkline([2, 2]) == "▄▄"
    rows = histogram_lines(hist(0, 1), width=48, height=4)
    assert len(rows) == 5 and len(rows[0]) == 48 and rows[-1].startswith("-3") and rows[-1].endswith("3")


async def test_layers_view_follows_the_run_marks_and_opens_histograms():
    app = TrainerApp(launcher=ScriptedLauncher(probed), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        assert isinstance(app.screen, TrainScreen)
        await wait_for(pilot, lambda: app.run_view.state == "finished", timeout=20)
        assert "Layers" in {k.description for k in app.screen.query("FooterKey")}
        assert footer_keys_cut_off(app) == []
        await pilot.press("i")
        assert isinstance(app.screen, LayersScreen)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, timeout=5)
        assert "step 85 (epoch 2)" in text(app, "#layers-title")
        verdict = text(app, "#layers-verdict")
        assert "Init check: initial loss 1.35e+03" in verdict and "Probe at step 85: layers.1: 60% of ReLUs" in verdict
        first = row_text(table, 0)
        assert first[0] == "layers.0" and first[2].startswith("60%!")  # dead ≥ 50%: marked
        assert not first[1].startswith("1.2!")  # a healthy spread is not
        assert "█" in first[1] or "▁" in first[1]  # its sparkline over the two probes
        fits(app)
        assert footer_keys_cut_off(app) == []

        # live: a new probe redraws the table
        app.run_view.apply(probe(170, 3, 0.05))
        await wait_for(pilot, lambda: "step 170" in text(app, "#layers-title"), timeout=5)
        assert row_text(table, 0)[1].startswith("0.05!")  # a spread below 0.1

        await pilot.press("enter")
        assert isinstance(app.screen, HistogramScreen)
        await wait_for(pilot, lambda: "activations" in text(app, "#hist-body"), timeout=5)
        body = text(app, "#hist-body")
        assert "weights" in body and "gradients" in body and "█" in body
        assert "layers.0 (ScratchLinear) at step 170" in text(app, "#hist-title")
        fits(app)
        await pilot.press("escape")
        assert isinstance(app.screen, LayersScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen)


def training(config):
    yield started(config)
    yield probe(0, 1, 28.9)
    yield KEEP_TRAINING


async def test_a_running_run_shows_its_layers_key_with_every_steering_key():
    app = TrainerApp(launcher=ScriptedLauncher(training), devices=DEVICES, dataset_status=dataset_status)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.run_view.state == "running" and app.run_view.layer_stats, timeout=20)
        await pilot.pause()
        shown = {k.description for k in app.screen.query("FooterKey")}
        assert {"Pause", "Stop", "Set LR", "Checkpoint", "Eval", "Layers", "New", "Help"} <= shown
        assert footer_keys_cut_off(app) == []
        await pilot.press("i")
        assert isinstance(app.screen, LayersScreen)
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 3, timeout=5)
        assert "No probe yet" in text(app, "#layers-verdict")  # no Diagnosis in this script
        await pilot.press("i", "s", "s")  # back, stop, and yes
        await wait_for(pilot, lambda: app.run_view.state == "stopped", timeout=10)


def record(store: RunStore, config: TrainConfig, events) -> str:
    run_id = store.create_run(config)
    for event in events:
        store.append(run_id, event)
    return run_id


async def test_two_marked_runs_compared_layer_by_layer(tmp_path):
    store = RunStore(tmp_path / "runs")
    base = TrainConfig(max_train_samples=2000, device="cpu")
    tutorial, recommended = preset("tutorial", base).replace(name="tutorial"), preset("recommended", base)
    bad = record(store, tutorial, [started(tutorial), probe(0, 1, 28.9),
                                   Diagnosis(step=0, text=INIT_VERDICT, key="loss"), probe(300, 2, 9.5, update=0.4)])
    good = record(store, recommended.replace(name="recommended"),
                  [started(recommended), probe(0, 1, 0.8),
                   Diagnosis(step=0, text="init looks healthy (loss 2.31 vs 2.30 expected for 10 classes)",
                             healthy=True, key="healthy"),
                   probe(300, 2, 1.1, update=1e-3)])
    app = TrainerApp(devices=DEVICES, dataset_status=dataset_status, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("l")
        assert isinstance(app.screen, RunsScreen)  # nothing marked: it says to mark two
        await pilot.press("space", "down", "space")
        assert len(app.screen.marked) == 2
        assert "Layers" in {k.description for k in app.screen.query("FooterKey")}
        assert footer_keys_cut_off(app) == []
        await pilot.press("l")
        assert isinstance(app.screen, LayersCompareScreen)
        await pilot.pause()
        left, right = (text(app, f"#compare-{run_id}") for run_id in app.screen.run_ids)
        both = {app.screen.run_ids[0]: left, app.screen.run_ids[1]: right}
        assert "init randn" in both[bad] and "28.9!" in both[bad] and "step 300" in both[bad]
        assert "4e-01!" in both[bad] and "initial loss 1.35e+03" in both[bad]
        assert "0.8" in both[good] and "!" not in both[good].split("step 0")[1].split("step 300")[0]
        assert "init looks healthy" in both[good] and "step 300" in both[good]
        fits(app)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
    store.close()
