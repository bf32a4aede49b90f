"""Sweeps in the app: the runs screen groups a sweep's runs, the sweep view shows its table (as sweep_table makes
it), its charts, exports it, opens the best run; a queued run says so. A real store, written directly: no training."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace

import pytest
from textual.widgets import DataTable

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import EpochEnded, RunFinished, RunState
from tui_trainer.runs.queue import enqueue, sweep_results
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.sweep import metric_by_field, sweep_table
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.evaluate import EvaluationScreen
from tui_trainer.ui.screens.runs import RunsScreen
from tui_trainer.ui.screens.sweep import SweepScreen
from tui_trainer.ui.screens.train import TrainScreen
from tui_trainer.ui.widgets.charts import CurvesChart, FieldChart

from ..runs.test_store import made_by_another_version
from .fakes import DEVICES, dataset_status, evaluation, started
from .test_app_flow import text_of, wait_for
from .test_runs_screen import assert_fits, table_lines

SWEEP = "5eed5eed"
BASE = TrainConfig(epochs=2, device="cpu", max_train_samples=256)
# test accuracy of (lr, weight_decay): seed 0 one point below, seed 1 one above
TEST_ACC = {(0.01, 0.0): 89.0, (0.01, 0.01): 88.0, (0.001, 0.0): 85.0, (0.001, 0.01): 84.0}
EVALUATION = evaluation()


def train(store: RunStore, run_id: str, config: TrainConfig, epochs: int = 2, finish: bool = True,
          pack: str = "", pack_with: tuple[str, ...] = ()) -> None:
    """Record a run's log as its training process would: started, epochs, evaluation, finished."""
    test = TEST_ACC[(config.lr, config.weight_decay)] + (1 if config.seed else -1)
    store.append(run_id, replace(started(config), pack=pack, pack_with=list(pack_with)))
    for epoch in range(1, epochs + 1):
        store.append(run_id, EpochEnded(epoch=epoch, epochs=2, train_loss=1.0, train_acc=80.0, val_loss=0.5,
                                        val_acc=test - 3 + epoch, lr=config.lr, seconds=1.0, samples_per_s=100.0,
                                        step=epoch))
    if finish:
        store.append(run_id, replace(EVALUATION, test_acc=test))
        store.append(run_id, RunFinished(epochs_done=epochs, seconds=10.0 + 2 * config.seed))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # exports go to the current folder
    store = RunStore(tmp_path / "runs")
    alone = BASE.replace(name="alone", lr=0.01, weight_decay=0.0)
    train(store, enqueue(store, [alone])[0], alone)  # a run of no sweep
    configs = [BASE.replace(lr=lr, weight_decay=wd, seed=seed, name=f"lrs lr={lr} wd={wd} seed={seed}")
               for seed in (0, 1) for lr in (0.001, 0.01) for wd in (0.0, 0.01)]
    ids = enqueue(store, configs, SWEEP, "lrs")
    for run_id, config in zip(ids, configs):
        # the last config's second seed is still training: one epoch in
        still = (config.lr, config.weight_decay, config.seed) == (0.001, 0.01, 1)
        train(store, run_id, config, epochs=1 if still else 2, finish=not still)
    yield store
    store.close()


def make_app(store) -> TrainerApp:
    return TrainerApp(devices=DEVICES, dataset_status=dataset_status, store=store)


def sweep_ids(store) -> dict[tuple, str]:
    return {(r.config["lr"], r.config["weight_decay"], r.config["seed"]): r.id
            for r in (store.get_run(s.id) for s in store.list_runs(sweep=SWEEP))}


async def open_sweep_view(pilot) -> SweepScreen:
    await pilot.press("f2")
    screen = pilot.app.screen
    table = screen.query_one("#runs-table", DataTable)
    table.move_cursor(row=table.get_row_index(f"sweep:{SWEEP}"))
    await pilot.press("w")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SweepScreen), timeout=5)
    await pilot.pause()
    return pilot.app.screen


def test_a_sweeps_runs_are_named_by_what_sets_them_apart():
    from tui_trainer.ui.screens.runs import swept_names

    assert swept_names(["sw lr=0.001 seed=0", "sw lr=0.01 seed=0"], "sw") == ["lr=0.001 seed=0", "lr=0.01 seed=0"]
    assert swept_names(["sw lr=0.001"], "sw") == ["lr=0.001"]  # one run: only the sweep's name goes
    assert swept_names(["a b", "a b"], "") == ["b", "b"]  # never every word


async def test_the_runs_screen_keeps_a_sweeps_runs_together_under_its_name(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert_fits(table)
        keys = [row.key.value for row in table.ordered_rows]
        members = set(sweep_ids(store).values())
        start = keys.index(f"sweep:{SWEEP}")
        assert set(keys[start + 1:start + 1 + len(members)]) == members  # together, right under the header
        assert len(keys) == len(members) + 2  # the header, the sweep's runs, the run of no sweep
        header = next(line for line in table_lines(table) if SWEEP in line)
        assert header.split()[:3] == ["▾", SWEEP, "lrs"] and "7/8 done" in header
        # its runs read by what sets them apart, whole, not "lrs lr…" eight times
        shown = "\n".join(table_lines(table))
        for lr in (0.001, 0.01):
            for wd in (0.0, 0.01):
                assert shown.count(f"lr={lr} wd={wd} seed=") == 2, shown
        # two runs marked: the config diff fits the pane or scrolls to its last line (it ran off the screen)
        ids = sweep_ids(store)
        for key in ((0.001, 0.0, 0), (0.01, 0.01, 1)):
            table.move_cursor(row=table.get_row_index(ids[key]))
            await pilot.press("space")
        side = screen.query_one("#runs-side")
        side.scroll_end(animate=False)
        await pilot.pause()
        assert "weight_decay: " in "\n".join(s.text for s in screen._compositor.render_strips())
        table.move_cursor(row=start)
        await pilot.pause()
        assert "7/8 finished · 1 running" in text_of(app, "#runs-detail")
        # the sort moves the group as one
        for _ in range(3):
            await pilot.press("o")
            keys = [row.key.value for row in table.ordered_rows]
            start = keys.index(f"sweep:{SWEEP}")
            assert set(keys[start + 1:start + 1 + len(members)]) == members
        # w on a run of no sweep says so; Enter on the header opens the sweep view
        table.move_cursor(row=keys.index(next(k for k in keys if k not in members and not k.startswith("sweep:"))))
        await pilot.press("w")
        assert isinstance(app.screen, RunsScreen)
        assert any("not part of a sweep" in n.message for n in app._notifications)
        table.move_cursor(row=start)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), timeout=5)


async def test_the_sweep_view_shows_sweep_tables_rows_best_first_and_follows_training(store):
    expected = sweep_table(sweep_results(store, SWEEP))
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_sweep_view(pilot)
        table = screen.query_one("#sweep-table", DataTable)
        assert table.row_count == len(expected.rows) == 4
        lines = table_lines(table)
        assert lines[0].split() == ["lr", "weight_decay", "done", "test", "acc", "best", "val", "time"]
        rows = [line.split() for line in lines[1:]]
        # best first, by the mean test accuracy over seeds: computed by hand here, not by sweep_table
        assert [r[:2] for r in rows] == [["0.01", "0"], ["0.01", "0.01"], ["0.001", "0"], ["0.001", "0.01"]]
        assert "89.00% ± 1.41" in lines[1] and "88.00% ± 1.41" in lines[2]  # mean ± std of 88 and 90
        assert "2/2" in lines[1] and "1/2" in lines[4] and "83.00%" in lines[4]  # one seed done: no std yet
        for line, cells in zip(lines[1:], expected.cells()[1:]):
            assert all(cell in line for cell in cells[len(expected.fields):-1])  # done, test acc, best val
        title = text_of(app, "#sweep-title")
        assert f"Sweep {SWEEP} (lrs)" in title and "7/8 finished" in title and "1 training" in title

        # the top 3 configs' validation curves, and test acc against the first swept field
        curves = screen.query_one(CurvesChart)
        assert [names[0] for names, _ in curves._series] == [
            "#1 lr=0.01 weight_decay=0", "#2 lr=0.01 weight_decay=0.01", "#3 lr=0.001 weight_decay=0"]
        field_chart = screen.query_one(FieldChart)
        assert field_chart.title == "test acc % by lr"
        assert field_chart._ys == [y for _, y in metric_by_field(expected, "lr")] == [84.0, 88.5]  # means of config means: (85 + 83) / 2, (89 + 88) / 2
        await pilot.press("f")
        assert field_chart.title == "test acc % by weight_decay"
        assert field_chart._ys == [y for _, y in metric_by_field(expected, "weight_decay")]
        await pilot.press("k")  # top 4
        await pilot.pause()
        assert len(curves._series) == 4

        # the training run finishes elsewhere: the view catches up by itself
        running = sweep_ids(store)[(0.001, 0.01, 1)]
        store.append(running, EpochEnded(epoch=2, epochs=2, train_loss=1.0, train_acc=80.0, val_loss=0.5,
                                         val_acc=84.0, lr=0.001, seconds=1.0, samples_per_s=100.0, step=2))
        store.append(running, replace(EVALUATION, test_acc=85.0))
        store.append(running, RunFinished(epochs_done=2, seconds=12.0))
        await wait_for(pilot, lambda: "8/8 finished" in text_of(app, "#sweep-title"), timeout=6)
        await pilot.pause()
        last = table_lines(table)[4]
        assert "2/2" in last and "84.00% ± 1.41" in last
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_a_run_this_version_cannot_read_is_left_out_of_the_sweep_view_and_said(store):
    expected = sweep_table(sweep_results(store, SWEEP))
    theirs = sweep_ids(store)[(0.001, 0.0, 1)]
    made_by_another_version(store, theirs, dataset="bar")
    assert len(sweep_results(store, SWEEP)) == 7  # of 8
    app = make_app(store)
    async with app.run_test(size=(120, 24)) as pilot:
        screen = await open_sweep_view(pilot)
        assert screen.query_one("#sweep-table", DataTable).row_count == len(expected.rows)
        assert text_of(app, "#sweep-note").startswith(
            f"1 run left out (run {theirs}: dataset 'bar' is not known to this version of scratch-tui)")
        assert "7/8 finished" in text_of(app, "#sweep-title")  # still one of the sweep's runs


async def test_export_writes_the_table_as_csv_and_json_in_the_current_folder(store, tmp_path):
    expected = sweep_table(sweep_results(store, SWEEP))
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sweep_view(pilot)
        await pilot.press("c", "j")
        await pilot.pause()
    path = tmp_path / f"sweep-{SWEEP}.csv"
    assert any(f"Wrote {path}" in n.message for n in app._notifications)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert [(float(r["lr"]), float(r["weight_decay"])) for r in rows] == [(0.01, 0.0), (0.01, 0.01), (0.001, 0.0),
                                                                            (0.001, 0.01)]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(89.0)
    assert float(rows[0]["test_acc_std"]) == pytest.approx(2 ** 0.5)
    assert float(rows[0]["seconds_mean"]) == pytest.approx(11.0)
    assert rows[3]["test_acc_std"] == "" and (rows[3]["done"], rows[3]["total"]) == ("1", "2")
    assert rows[0]["best_run_id"] == sweep_ids(store)[(0.01, 0.0, 1)]
    assert [float(r["test_acc_mean"]) for r in rows] == [r.test_acc.mean for r in expected.rows]
    data = json.loads((tmp_path / f"sweep-{SWEEP}.json").read_text())
    assert data["fields"] == ["lr", "weight_decay"] and data["sort_metric"] == "test_acc"
    assert [r["test_acc_mean"] for r in data["rows"]] == pytest.approx([89.0, 88.0, 85.0, 83.0])
    assert sorted(os.listdir(tmp_path)) == ["runs", f"sweep-{SWEEP}.csv", f"sweep-{SWEEP}.json"]


async def test_enter_on_a_config_opens_its_best_runs_evaluation(store):
    best = sweep_ids(store)[(0.01, 0.0, 1)]  # test accuracy 90: the better seed of the best config
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_sweep_view(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluationScreen), timeout=5)
        summary = text_of(app, "#eval-summary")
        assert summary.startswith("Test accuracy 90.00%") and f"run {best}" in summary
        await pilot.press("escape")
        assert app.screen is screen  # back to the sweep view


async def test_a_queued_run_says_its_place_and_goes_live_when_it_starts(store):
    config = BASE.replace(name="waiting", lr=0.01, weight_decay=0.0)
    waiting = enqueue(store, [config])[0]  # first in the queue: nothing else waits
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f2")
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(waiting))
        await pilot.pause()
        assert "queued #1" in [str(cell) for cell in table.get_row(waiting)]
        assert "queued (position 1)" in text_of(app, "#runs-detail")
        assert screen.check_action("resume", ()) is None  # greyed out, not offered
        await pilot.press("u")
        await pilot.pause()
        assert app.screen is screen and store.get_run(waiting).status == "queued"

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), timeout=5)
        assert any(f"Run {waiting} is queued (position 1)" in n.message for n in app._notifications)
        await wait_for(pilot, lambda: app.run_view.state == RunState.QUEUED, timeout=5)
        await wait_for(pilot, lambda: "Queued (position 1)" in text_of(app, "#status"), timeout=5)
        await pilot.press("e")
        assert any("queued" in n.message and "nothing yet" in n.message for n in app._notifications)

        train(store, waiting, config, epochs=1, finish=False)  # the runner starts it
        await wait_for(pilot, lambda: app.run_view.state == RunState.RUNNING and len(app.run_view.epochs) == 1,
                       timeout=10)
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Training"), timeout=5)
        store.append(waiting, RunFinished(epochs_done=1, seconds=1.0))  # so that the app's follow of it ends
        await wait_for(pilot, lambda: app.run_view.state == RunState.FINISHED, timeout=5)


async def test_the_sweep_view_shows_which_runs_trained_together(tmp_path):
    """Runs of one pack (engine/pack.py) say so in their RunStarted; the view gives each pack a label, P1, in a
    column of its table and names it in the note."""
    with RunStore(tmp_path / "runs") as store:
        configs = [BASE.replace(lr=lr, weight_decay=0.0, seed=seed) for lr in (0.01, 0.001) for seed in (0, 1)]
        ids = enqueue(store, configs, SWEEP, "lrs")
        together = {ids[0]: [ids[1]], ids[1]: [ids[0]]}  # lr 0.01's two seeds trained as one pack
        for run_id, config in zip(ids, configs):
            train(store, run_id, config, pack=ids[0] if run_id in together else "", pack_with=together.get(run_id, ()))
        app = make_app(store)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_sweep_view(pilot)
            await wait_for(pilot, lambda: screen.view is not None and screen.view.packs, timeout=5)
            lines = table_lines(screen.query_one("#sweep-table", DataTable))
            assert lines[0].split()[-1] == "pack"
            assert [line.split()[-1] for line in lines[1:]] == ["P1", "-"]  # lr 0.01 first: the better config
            assert f"Trained together: P1 pack {ids[0]} (2 runs)" in text_of(app, "#sweep-note")


async def test_e_extends_the_sweep_from_setup_with_a_value_and_a_seed_under_its_id(store, monkeypatch):
    """`e` on the sweep view opens setup with the sweep's grid marked; F4 adds a value and a seed, and F7 queues
    only the runs the sweep lacks, under its id and name (sweep_life.extend, as `sweep extend` does), then the view
    shows them queued. At 80x24."""
    import tui_trainer.runs.queue as run_queue
    from tui_trainer.ui.screens.setup import SetupScreen

    from .test_app_flow import footer_keys_cut_off
    from .test_queue_ui import mark, messages

    runner = []
    monkeypatch.setattr(run_queue, "ensure_runner", lambda store: runner.append(store) or 4242)
    before = {r.id for r in store.list_runs(sweep=SWEEP)}
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_sweep_view(pilot)
        assert footer_keys_cut_off(app) == []
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), timeout=5)
        setup = app.screen
        assert {f: a.values for f, a in setup.axes.items()} == {"lr": (0.001, 0.01), "weight_decay": (0.0, 0.01),
                                                                 "seed": (0, 1)}
        assert f"Extending sweep {SWEEP} (lrs)" in text_of(app, "#mode-note")
        summary = text_of(app, "#sweep-summary")
        assert "sweep: 2 × 2 × 2 seeds = 8 runs" in summary and "F7 queues the new ones" in summary
        assert footer_keys_cut_off(app) == []
        await pilot.press("f7")  # the grid as it is: nothing new
        await pilot.pause()
        assert app.screen is setup and f"nothing new for sweep {SWEEP}" in messages(app)[-1]
        keys = {key.description for key in app.screen.query("FooterKey")}
        assert {"Mark", "Sweep", "Back"} <= keys and not {"Start", "Queue"} & keys  # this form only extends
        await pilot.press("f5", "f6")  # their keys do nothing here: no run starts, none is queued
        await pilot.pause()
        assert app.screen is setup and len(store.list_runs(sweep=SWEEP)) == len(before) and runner == []

        await mark(pilot, "lr", "0.001, 0.01, 0.1")
        await mark(pilot, "seed", "0, 1, 2")
        assert "sweep: 3 × 2 × 3 seeds = 18 runs" in text_of(app, "#sweep-summary")
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.screen is view, timeout=5)
        runs = [store.get_run(r.id) for r in store.list_runs(sweep=SWEEP)]
        new = [r for r in runs if r.id not in before]
        assert len(new) == 10  # lr 0.1's 2 configs x 3 seeds, and seed 2 of the 4 configs there were
        assert {(r.status, r.sweep_id, r.sweep_name) for r in new} == {("queued", SWEEP, "lrs")}
        assert {(r.config["lr"], r.config["seed"]) for r in new} == {(0.1, 0), (0.1, 1), (0.1, 2), (0.001, 2),
                                                                      (0.01, 2)}
        every = [(r.config["lr"], r.config["weight_decay"], r.config["seed"]) for r in runs]
        assert len(every) == len(set(every)) == 18  # no config and seed twice
        assert len(runner) == 1 and f"Queued 10 more runs in sweep {SWEEP}" in messages(app)[-1]
        title = text_of(app, "#sweep-title")
        assert "10 queued" in title and "6 configs" in title
        lines = table_lines(view.query_one("#sweep-table", DataTable))
        assert [line.split()[2] for line in lines[1:] if line.split()[0] == "0.1"] == ["0/3", "0/3"]
        assert app.sweep_axes == {}  # the main setup's marks are its own

        await pilot.press("e")  # Esc leaves an extension, queueing nothing
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), timeout=5)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is view, timeout=5)
        assert len(store.list_runs(sweep=SWEEP)) == 18
