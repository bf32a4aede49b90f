"""runs/study.py in-process: a trial drawn into the store's queue with its seed repeats enqueued, and a trial's
reporter that sends the stop command when the pruner says so, waits until the run has taken it, records why, and
tells the study it was pruned."""

import threading
import time
import types

import pytest

from tui_trainer.engine.commands import Command, apply
from tui_trainer.engine.control import TrainingControl
from tui_trainer.engine.events import EpochEnded, RunStopped
from tui_trainer.runs import study as study_module
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.study_storage import BEAT_ATTR
from tui_trainer.runs.sweep import SweepSpec
from tui_trainer.runs.trial_report import trial_reporter

optuna = pytest.importorskip("optuna")
DATA = {"dataset": "fashion-mnist-mini", "epochs": 3, "device": "cpu", "monitor": "val_acc",
        "sweep": {"search": "tpe", "pruner": "asha", "samples": 3, "lr": {"log": [1e-3, 1e-1]}, "seed": [0, 1]}}


def epoch(n, acc):
    return EpochEnded(epoch=n, epochs=3, train_loss=1.0, train_acc=50.0, val_loss=1.0, val_acc=acc, lr=0.01,
                      seconds=1.0, samples_per_s=1.0, step=n)


def test_a_drawn_trial_is_a_queued_run_and_the_pruner_stops_it_with_a_reason(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = SweepSpec.from_dict(DATA)
    link = study_module.open_link(store, spec, DATA, str(tmp_path / "s.journal"), "p")
    study = study_module.load(link).study
    for value in (80.0, 85.0):  # two earlier trials that did well at epoch 1
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, params={"lr": 0.01}, value=value,
            distributions=study_module.distributions(spec), intermediate_values={1: value},
            user_attrs={"seed": 0, "planned": True}, system_attrs={"completed_rung_0": value}))  # as ASHA marks it

    [run_id] = study_module.draw_trials(store, lambda config: True)
    record = store.get_run(run_id)
    assert record.status == "queued" and record.sweep_id == link.sweep_id == study_module.sweep_id_of(link.storage, "p")
    trial = next(t for t in study.get_trials() if t.user_attrs.get("run_id") == run_id)
    assert trial.state.name == "RUNNING" and trial.number == 2
    assert trial.user_attrs["seed"] == 0 and record.config["seed"] == 0
    assert record.config["lr"] == pytest.approx(trial.params["lr"], rel=5e-3)  # at the 3 digits a range's points have
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    # its other seed, to come: the same params, fixed for whoever asks next
    assert [(t.system_attrs["fixed_params"], t.user_attrs["seed"]) for t in waiting] == [(trial.params, 1)]

    reporter = trial_reporter(store, run_id)
    run = types.SimpleNamespace(control=TrainingControl())
    reporter.beat()
    reporter.attach(run)
    taken = []

    def poll():  # as the run's command poller (runs/recording.py) takes and applies its commands
        while not taken:
            time.sleep(0.02)
            taken.extend(store.take_commands(run_id))
        for command in taken:
            apply(command, run.control)

    threading.Thread(target=poll, daemon=True).start()
    reporter(epoch(1, 10.0))  # far below the others at the first rung
    # the reporter returned (and the loop went on) only once the stop was taken: no batch trains past the rung
    assert run.control.stop_requested and taken == [Command("stop")]
    assert run.control.stop_reason == "pruned by asha at epoch 1"
    reporter(RunStopped(epochs_done=1, seconds=1.0, reason=run.control.stop_reason))
    trial = study.get_trials()[trial.number]
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {1: 10.0}
    assert BEAT_ATTR in trial.system_attrs  # it beat while it trained
    rows = {r.number: r for r in study_module.trial_rows(study_module.load(link))}
    assert rows[trial.number].last_epoch == 1 and rows[trial.number].run_id == run_id
    store.close()


def test_sweep_show_exports_a_studys_configs_from_every_box(tmp_path, capsys, monkeypatch):
    from ..cli.test_queue_cli import run_cli

    monkeypatch.setenv("SCRATCH_TUI_HOME", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    spec = SweepSpec.from_dict(DATA)
    link = study_module.open_link(store, spec, DATA, str(tmp_path / "s.journal"), "x")
    study = study_module.load(link).study
    for lr, seed, test, host in ((0.01, 0, 80.0, "a"), (0.01, 1, 82.0, "b"), (0.05, 0, 70.0, "b")):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, params={"lr": lr}, value=test - 1,
            distributions=study_module.distributions(spec),
            user_attrs={"seed": seed, "host": host, "run_id": f"{host}{seed}{int(lr * 100):06d}", "test_acc": test,
                        "seconds": 2.0}))
    code, out, err = run_cli(["sweep", "show", link.sweep_id[:5], "--csv"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("lr,done,total,test_acc_mean,test_acc_std,")
    assert lines[1].startswith("0.01,2,2,81.0,1.414") and lines[2].startswith("0.05,1,1,70.0,,")
    store.close()


def test_a_run_cut_short_leaves_its_trial_running_and_a_requeued_slurm_worker_resumes_it(tmp_path):
    import os

    from tui_trainer.runs.slurm import SlurmWorker, resume_cut_short
    from tui_trainer.runs.worker import drive, prepare

    from ..cli.test_queue_cli import wait_until

    data = {"dataset": "fashion-mnist-mini", "max_train_samples": 128, "epochs": 2, "device": "cpu", "hidden": [8],
            "monitor": "val_acc", "sweep": {"search": "grid", "lr": [0.01]}}
    store = RunStore(tmp_path / "runs")
    link = study_module.open_link(store, SweepSpec.from_dict(data), data, str(tmp_path / "s.journal"), "cut")
    [run_id] = study_module.draw_trials(store, lambda config: True)
    store.set_process(run_id, os.getpid())  # trained here, in this process, as its worker would
    run = prepare(store, run_id)
    reporter = trial_reporter(store, run_id)
    reporter.beat()
    reporter.attach(run)

    def preempted_after_one_epoch(event):
        reporter(event)
        if isinstance(event, EpochEnded):
            run.control.stop()  # what SIGTERM does to a worker (drive's handler)

    drive(run, store, observer=preempted_after_one_epoch)
    assert store.get_run(run_id).status == "stopped" and store.get_run(run_id).epochs_done == 1
    study = study_module.load(link).study
    assert study.get_trials()[0].state.name == "RUNNING"  # not told: the worker that comes back resumes it

    requeued = SlurmWorker(link.storage, link.name, str(tmp_path / "runs")).checkpoint()
    assert requeued.function == SlurmWorker(link.storage, link.name, str(tmp_path / "runs"))
    assert resume_cut_short(store) == [run_id]  # what the requeued task does first
    wait_until(lambda: store.get_run(run_id).status == "finished", 90, "the resumed run")
    assert [e["epoch"] for e in store.epochs(run_id)] == [1, 2]  # epoch 1 kept, epoch 2 trained on from it
    wait_until(lambda: study_module.load(link).study.get_trials()[0].state.name == "COMPLETE", 10, "the tell")
    store.close()


def test_ranges_map_to_float_and_log_distributions_lists_to_categorical_and_a_grid_is_enqueued_in_its_order(
        tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sampled = SweepSpec.from_dict({"epochs": 2, "sweep": {"search": "tpe", "samples": 4,
                                                          "lr": {"log": [1e-4, 1e-1]},
                                                          "weight_decay": {"lin": [0.0, 0.1]},
                                                          "batch_size": [32, 64]}})
    found = study_module.distributions(sampled)
    assert found["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert found["weight_decay"] == FloatDistribution(0.0, 0.1, log=False)
    assert isinstance(found["batch_size"], CategoricalDistribution) and not isinstance(found["batch_size"],
                                                                                         IntDistribution)

    data = {"epochs": 2, "sweep": {"search": "grid", "lr": [0.1, 0.01], "batch_size": [32, 64], "seed": [0, 1]}}
    grid = SweepSpec.from_dict(data)
    with RunStore(tmp_path / "runs") as store:
        link = study_module.open_link(store, grid, data, str(tmp_path / "g.journal"), "g")
    waiting = study_module.load(link).study.get_trials()
    # a waiting trial keeps its values where Optuna's enqueue_trial puts them until a box asks for it
    planned = [(t.user_attrs["seed"], *(study_module._values(grid, t.system_attrs["fixed_params"])[f]
                                       for f in ("lr", "batch_size"))) for t in waiting]
    assert planned == [(c.seed, c.lr, c.batch_size) for c in grid.configs()]  # sweep.py's order, seeds outermost
