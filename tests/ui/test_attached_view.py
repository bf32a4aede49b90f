"""Any view is the same view: a run watched from its start and one attached later show the same log, in order."""

import time

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (CheckpointSaved, CommandReceived, EvaluationEnded, LearningRateChanged,
                                       RunFinished, RunPaused, RunUnpaused, RunStopped)
from tui_trainer.runs.handle import RunHandle, StoredRun
from tui_trainer.runs.store import RunStore
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.train import REDRAW_SECONDS

from .fakes import DEVICES, dataset_status, epoch_events, started
from .test_app_flow import wait_for


def log_lines(app) -> list[str]:
    return [str(line.text) for line in app.screen.query_one("#log").lines]


def record_a_steered_run(store: RunStore) -> str:
    """Two epochs with a pause, an lr change and a checkpoint taken mid-epoch, a stop, then a resume that trains
    epoch 2 again and finishes."""
    config = TrainConfig(epochs=3)
    run_id = store.create_run(config)
    first = list(epoch_events(config, 2))
    log = [started(config), *first[:3], CommandReceived("pause", step=60), RunPaused(epoch=1, step=60, lr=0.003),
           RunUnpaused(epoch=1, step=60, lr=0.003), *first[3:5], LearningRateChanged(0.001, 85, previous=0.003),
           CommandReceived("checkpoint", step=105), first[5], CheckpointSaved("last.pt", 1, 105, "request"),
           *first[6:9], RunStopped(epochs_done=1, seconds=2.0, step=165)]
    resumed = started(config).__class__(**{**started(config).__dict__, "resumed_from_epoch": 1,
                                           "resumed_from_step": 85, "run_id": run_id})
    again = [e for e in epoch_events(config, 3) if getattr(e, "epoch", 0) >= 2]
    log += [resumed, *again, EvaluationEnded(0.4, 87.0, [87.0] * 10, [[0] * 10] * 10, [str(i) for i in range(10)]),
            RunFinished(epochs_done=3, seconds=5.0)]
    for event in log:
        store.append(run_id, event)
    return run_id


class Watched(StoredRun):
    """The launching view: the same log, each event arriving after the screen has drawn the one before."""

    def events(self, stop=None):
        for event in super().events(stop=stop):
            time.sleep(REDRAW_SECONDS * 1.1)
            yield event


class Launcher:
    def __init__(self, handle: RunHandle):
        self.handle = handle

    def open(self, run_id: str) -> RunHandle:
        return self.handle


async def shown_log(handle: RunHandle, store: RunStore) -> list[str]:
    app = TrainerApp(launcher=Launcher(handle), devices=DEVICES, dataset_status=dataset_status, store=store,
                     attach=handle.run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_view.state == "finished", timeout=60)
        await wait_for(pilot, lambda: any(line.startswith("Finished") for line in log_lines(app)), timeout=5)
        return log_lines(app)


async def test_a_late_attached_view_lists_the_log_as_the_launching_view_did(tmp_path):
    store = RunStore(tmp_path)
    run_id = record_a_steered_run(store)
    launching = await shown_log(Watched(store, run_id, started_here=True), store)
    attached = await shown_log(StoredRun(store, run_id), store)
    assert attached == launching
    order = [next(i for i, line in enumerate(attached) if line.startswith(prefix)) for prefix in
             ("Paused at step 60", "Epoch 1/3", "Learning rate set to 0.001", "Checkpoint saved after epoch 1",
              "Stopped after 1 epoch", "Resumed run", "Epoch 2/3", "Epoch 3/3", "Test Loss", "Finished")]
    assert order == sorted(order)  # in the log's order, not every epoch first


async def test_a_finished_runs_footer_offers_no_steering(tmp_path):
    from textual.widgets import Footer

    store = RunStore(tmp_path)
    run_id = record_a_steered_run(store)
    app = TrainerApp(launcher=Launcher(StoredRun(store, run_id)), devices=DEVICES, dataset_status=dataset_status,
                     store=store, attach=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.run_view.state == "finished", timeout=30)
        await pilot.pause(0.3)
        keys = {binding.action for _, binding, *_ in app.screen.active_bindings.values()}
        assert not keys & {"toggle_pause", "stop", "type_lr", "checkpoint"}
        assert {"evaluation", "new_run"} <= keys
        def footer() -> list[str]:
            return [key.description for key in app.screen.query_one(Footer).query("FooterKey")]

        await wait_for(pilot, lambda: "Eval" in footer(), timeout=5)
        assert "Pause" not in footer() and "Stop" not in footer() and "Set LR" not in footer()
