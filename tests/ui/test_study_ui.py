"""A study's sweep in the app: the sweep view's table is every box's trials (mean ± std over seeds), the note says
which box trains what and how many trials the pruner stopped, Enter on a config whose best run is local opens it,
and on one whose best run is on another box says the `ssh HOST scratch-tui attach ID` to type. The study's trials
are written directly: no training."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tui_trainer.runs import study as study_module
from tui_trainer.runs.queue import enqueue
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.sweep import SweepSpec
from tui_trainer.ui.screens.evaluate import EvaluationScreen
from tui_trainer.ui.screens.sweep import SweepScreen

from .test_app_flow import text_of, wait_for
from .test_sweep_ui import BASE, make_app, train

optuna = pytest.importorskip("optuna")
DATA = {**BASE.to_dict(), "sweep": {"search": "tpe", "pruner": "asha", "samples": 2, "lr": [0.001, 0.01],
                                     "seed": [0, 1]}}


@pytest.fixture
def study_store(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = SweepSpec.from_dict(DATA)
    link = study_module.open_link(store, spec, DATA, str(tmp_path / "s.journal"), "s")
    study = study_module.load(link).study
    local = BASE.replace(lr=0.001, weight_decay=0.0, seed=0, name="s lr=0.001 seed=0")
    [here] = enqueue(store, [local], link.sweep_id, "s")
    train(store, here, local)  # test accuracy 84: the local config's only run
    dists = study_module.distributions(spec)

    def trial(lr, seed, host, run_id, state=optuna.trial.TrialState.COMPLETE, test=None):
        study.add_trial(optuna.trial.create_trial(
            state=state, params={"lr": lr}, distributions=dists, value=test if state.name == "COMPLETE" else None,
            intermediate_values={1: 10.0} if state.name == "PRUNED" else None,
            user_attrs={"seed": seed, "host": host, "run_id": run_id, "test_acc": test, "seconds": 5.0}))

    trial(0.001, 0, store.host, here, test=84.0)
    trial(0.01, 0, "far-box", "feedf00d", test=90.0)  # the best config, trained on another box
    trial(0.01, 1, "far-box", "0ddba11a", state=optuna.trial.TrialState.RUNNING)
    trial(0.001, 1, store.host, "5709ed01", state=optuna.trial.TrialState.PRUNED)  # ASHA stopped it early
    yield store, link
    store.close()


async def test_the_sweep_view_of_a_study_shows_every_box_and_sends_a_remote_run_to_ssh(study_store):
    store, link = study_store
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(SweepScreen(store, link.sweep_id))
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.view is not None, timeout=5)
        screen = app.screen
        table = screen.query_one("#sweep-table", DataTable)
        assert table.row_count == 2
        assert "Study s on 2 box(es) · far-box trains 0ddba11a · 1 pruned by asha · " in text_of(app, "#sweep-note")
        assert "1 training" in text_of(app, "#sweep-title")
        # the best config's best run lives on far-box: Enter says how to get there
        table.move_cursor(row=0)
        await pilot.press("enter")
        assert isinstance(app.screen, SweepScreen)
        assert any(n.message == "Run feedf00d is on far-box: ssh far-box scratch-tui attach feedf00d"
                   for n in app._notifications)
        # the other config's run is this box's: Enter opens it
        table.move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluationScreen), timeout=5)
