"""The UI against real runs (issue 18, section 6): the app's own RunLauncher, so every run trains in a worker
process of its own, as users get it, on the bundled mini set. Each journey checks what the screen shows (status
line, log, footer) and what the store recorded. The other UI tests use a scripted run (fakes.py); these keep it
honest.

The runs are small: 1,000 or 3,000 training images in batches of 50 (20 or 60 steps an epoch), a constant lr so
that a set lr stays as typed. A steered run's epochs take well under a progress report's interval (0.25 s) on an
idle machine, as a small set's do on a GPU: a checkpoint asked for must still be written.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.control import TrainingControl
from tui_trainer.engine.events import (BatchProgress, CheckpointSaved, EpochEnded, LearningRateChanged, RunPaused,
                                       RunStarted)
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.recording import recorded
from tui_trainer.runs.retention import step_files
from tui_trainer.runs.spawn import start_run
from tui_trainer.runs.store import RunStore
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.runs import RunsScreen
from tui_trainer.ui.screens.setup import SetupScreen
from tui_trainer.ui.screens.train import TrainScreen

from .fakes import DEVICES, dataset_status
from .test_app_flow import text_of, wait_for

SMALL = dict(dataset="fashion-mnist-mini", max_train_samples=3000, batch_size=50, schedule="constant", lr=0.003,
             device="cpu", seed=0)
# steered until stopped: the epochs are many and short, so it never ends first
STEERED = TrainConfig(**{**SMALL, "max_train_samples": 1000}, epochs=1000)
SIZE = (120, 40)
STEERING = {"Pause", "Stop", "Set LR", "Checkpoint"}


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "r")
    yield store
    stop_what_still_trains(store)
    store.close()


def stop_what_still_trains(store: RunStore) -> None:
    """A failed test leaves no worker training: each of its runs still running is stopped, killed if it must be."""
    going = [r.id for r in store.list_runs() if r.status == "running"]
    for run_id in going:
        store.send(run_id, Command("stop"))
    deadline = time.monotonic() + 30
    while going and time.monotonic() < deadline:
        going = [i for i in going if store.get_run(i).status == "running"]
        time.sleep(0.1)
    for run_id in going:
        pid = store.get_run(run_id).pid
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def until(predicate, timeout: float = 60.0) -> None:
    """For a run nobody watches: wait for the store to say something."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def make_app(store: RunStore, **kwargs) -> TrainerApp:
    return TrainerApp(devices=DEVICES[1:], dataset_status=dataset_status, store=store, **kwargs)


def log_lines(app) -> list[str]:
    """The training screen's log as it shows it, a line per row (a long line, a checkpoint's with its path, wraps)."""
    return [line.text.rstrip() for line in app.screen.query_one("#log").lines]


def assert_shows(shown: list[str], lines: list[str]) -> None:
    """The screen's log holds these lines, in this order, and nothing else; compared without whitespace, for the
    log wraps a line longer than its width."""
    def squeezed(rows: list[str]) -> str:
        return "".join("".join(rows).split())

    assert squeezed(shown) == squeezed(lines), f"the screen shows {shown}, the run's log says {lines}"


def first_part(line: str) -> str:
    """What shows on a checkpoint line's first row: its words, up to its path."""
    return line.split(": ")[0]


def footer(app) -> set[str]:
    return {key.description for key in app.screen.query("FooterKey")}


def logged(store: RunStore, run_id: str, kind: type | tuple[type, ...]) -> list:
    return [event for _, event in store.events(run_id, limit=100_000) if isinstance(event, kind)]


def in_order(lines: list[str], *starts: str) -> list[int]:
    """The index of the first line that starts with each of `starts`, each looked for after the one before."""
    found, at = [], 0
    for start in starts:
        at = next((i for i in range(at, len(lines)) if lines[i].startswith(start)), None)
        assert at is not None, f"no line starting {start!r} after line {found[-1] if found else 0}: {lines}"
        found.append(at)
        at += 1
    return found


async def test_steer_a_real_run_pause_set_lr_checkpoint_resume_and_stop(store):
    app = make_app(store, config=STEERED)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        assert isinstance(app.screen, TrainScreen)
        run_id = app.handle.run_id
        await wait_for(pilot, lambda: app.run_view.state == "running")  # its process trains
        assert f"run {run_id} · started here" in text_of(app, "#run-title")
        assert store.get_run(run_id).pid != os.getpid()  # a worker process of its own

        await pilot.press("space")
        await wait_for(pilot, lambda: app.run_view.state == "paused")
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Paused — space resumes"), timeout=5)
        [paused] = logged(store, run_id, RunPaused)
        assert store.get_run(run_id).paused
        await wait_for(pilot, lambda: f"Paused at step {paused.step}" in log_lines(app), timeout=5)

        await pilot.press("l")
        prompt = app.screen.query_one("#prompt-input", Input)
        assert prompt.value == "0.003"  # the lr in force
        prompt.value = ""
        await pilot.press(*"0.0005", "enter")
        await wait_for(pilot, lambda: app.run_view.lr == 0.0005)
        await wait_for(pilot, lambda: "lr 0.0005" in text_of(app, "#stats"), timeout=5)
        said = f"Learning rate set to 0.0005 (was 0.003) at step {paused.step}"
        await wait_for(pilot, lambda: said in log_lines(app), timeout=5)
        assert [(e.lr, e.previous, e.step) for e in logged(store, run_id, LearningRateChanged)] == \
               [(0.0005, 0.003, paused.step)]

        await pilot.press("c")
        await wait_for(pilot, lambda: "Checkpoint requested" in log_lines(app))
        folder = store.checkpoint_dir(run_id)
        # paused, it reports no progress: the checkpoint is written at the first report after the resume
        assert list(step_files(folder)) == [] and requested(store, run_id) == []

        await pilot.press("space")
        await wait_for(pilot, lambda: requested(store, run_id))
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Training"), timeout=5)
        [first] = requested(store, run_id)
        assert first.step >= paused.step
        await shows_checkpoint(pilot, app, first, folder)
        # the process trains at the lr typed
        after = [e for e in logged(store, run_id, (BatchProgress, EpochEnded)) if e.step > paused.step]
        assert after and {e.lr for e in after} == {0.0005}

        # and one asked for while it trains is written too, however short its epochs (no progress report came in
        # an epoch shorter than the reports' interval, so it never was)
        await pilot.press("c")
        await wait_for(pilot, lambda: len(requested(store, run_id)) == 2)
        second = requested(store, run_id)[1]
        assert second.step > first.step
        await shows_checkpoint(pilot, app, second, folder)

        await pilot.press("s", "s")  # stop, and yes
        await wait_for(pilot, lambda: app.run_view.state == "stopped")
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Stopped after"), timeout=5)
        # the footer offers no steering (it is rebuilt: wait for its new keys)
        await wait_for(pilot, lambda: {"Eval", "New"} <= footer(app) and not footer(app) & STEERING, timeout=5)
        record = store.get_run(run_id)
        assert (record.status, record.paused, record.message) == ("stopped", False, "stopped by request")
        shown = log_lines(app)
        assert_shows(shown, store.view(run_id).log)  # every line, in the log's order
        in_order(shown, "Training process started", "Paused at step", "Learning rate set to 0.0005",
                 "Checkpoint requested", "Unpaused at step", first_part(first.describe()), "Checkpoint requested",
                 first_part(second.describe()), "Stopped after")


def requested(store: RunStore, run_id: str) -> list[CheckpointSaved]:
    return [e for e in logged(store, run_id, CheckpointSaved) if e.reason == "request"]


async def shows_checkpoint(pilot, app, saved: CheckpointSaved, folder: Path) -> None:
    """A checkpoint asked for: kept as step-N.pt, said in the log."""
    assert Path(saved.kept_path) == folder / f"step-{saved.step}.pt" and Path(saved.kept_path).is_file()
    assert saved.step in list(step_files(folder))
    line = first_part(saved.describe())
    assert line.startswith("Checkpoint saved ") and line.endswith("(request)")
    await wait_for(pilot, lambda: any(row.startswith(line) for row in log_lines(app)), timeout=5)


def stopped_in_its_first_epoch(store: RunStore) -> str:
    """A run of 2 epochs stopped at step 25, part-way through its first, with a checkpoint asked for there (recorded
    here: the resume and the fork are the app's, in worker processes)."""
    control = TrainingControl()
    run = TrainingRun(TrainConfig(epochs=2, **SMALL), control, progress_seconds=0)
    control.request_checkpoint()  # written at the first progress report: step 25
    for event in recorded(run, store):
        if isinstance(event, BatchProgress):
            control.stop()
    record = store.get_run(run.run_id)
    assert (record.status, record.epochs_done) == ("stopped", 0)
    assert list(step_files(store.checkpoint_dir(run.run_id))) == [25]
    return run.run_id


def select(app, run_id: str) -> None:
    table = app.screen.query_one("#runs-table", DataTable)
    table.move_cursor(row=table.get_row_index(run_id))


async def test_resume_a_stopped_real_run_from_the_runs_screen_then_fork_it(store):
    run_id = stopped_in_its_first_epoch(store)
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, RunsScreen)
        select(app, run_id)
        await pilot.press("u")
        assert isinstance(app.screen, TrainScreen) and app.handle.run_id == run_id
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Finished 2 epochs"), timeout=5)
        shown = log_lines(app)
        # a resume from part-way through epoch 1 says where it went on from (it once said nothing at all)
        in_order(shown, "Checkpoint saved at epoch 1, step 25, mid-epoch (stop)", "Stopped after 0 epochs",
                 "Training process started", f"Resumed run {run_id} after epoch 0, step 25", "Epoch 1/2",
                 "Epoch 2/2", "Test Loss", "Finished 2 epochs")
        assert_shows(shown, store.view(run_id).log)
        assert [e.epoch for e in app.run_view.epochs] == [1, 2]
        record = store.get_run(run_id)
        assert (record.status, record.epochs_done, record.segment) == ("finished", 2, 2)
        steps = record.started["steps_per_epoch"]
        assert [e.step for e in logged(store, run_id, EpochEnded)] == [steps, 2 * steps]  # went on, not over

        await pilot.press("f2")
        select(app, run_id)
        await pilot.press("f")  # fork: from which checkpoint?
        question = str(app.screen.query_one(Label).render())
        assert "with one: 1, 2; on demand: step-25" in question
        assert app.screen.query_one("#prompt-input", Input).value == "2"
        app.screen.query_one("#prompt-input", Input).value = "1"
        await pilot.press("enter")
        assert isinstance(app.screen, SetupScreen) and app.screen.fork == (run_id, 1)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.handle.run_id != run_id)
        fork = app.handle.run_id
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Finished 2 epochs"), timeout=5)
        shown = log_lines(app)
        in_order(shown, f"Forked from run {run_id}@1 (step {steps})", "Training process started", "Epoch 2/2",
                 "Test Loss", "Finished 2 epochs")
        assert not any(line.startswith(("Epoch 1/", "Resumed")) for line in shown)
        assert_shows(shown, store.view(fork).log)
        assert [e.epoch for e in app.run_view.epochs] == [2]  # counted on from the parent's epoch
        assert text_of(app, "#epoch-label") == "Epoch 2/2"
        record = store.get_run(fork)
        assert (record.parent_id, record.parent_epoch, record.status, record.epochs_done) == (run_id, 1, "finished", 2)
        [started] = logged(store, fork, RunStarted)
        assert (started.resumed_from_epoch, started.resumed_from_step) == (1, steps)
        assert [e.step for e in logged(store, fork, EpochEnded)] == [2 * steps]


async def test_attach_late_to_a_run_steered_while_nobody_watched(store):
    spawned = start_run(store, STEERED)  # in the background, as `train --detach` does
    run_id = spawned.run_id
    until(lambda: store.view(run_id).progress is not None)
    sent = {"pause": time.time()}
    store.send(run_id, Command("pause"))
    until(lambda: store.view(run_id).state == "paused")
    sent["set_lr"] = time.time()
    store.send(run_id, Command("set_lr", 0.0005))
    until(lambda: store.view(run_id).lr == 0.0005)
    # each happened after it was sent, in the order sent, and the log is in the order things happened
    rows = store.query("SELECT name, at FROM run_events WHERE run_id = ? ORDER BY seq", (run_id,))
    assert [at for _, at in rows] == sorted(at for _, at in rows)
    when = {name: at for name, at in reversed(rows)}  # the first of each
    assert sent["pause"] <= when["run_paused"] <= sent["set_lr"] <= when["lr_changed"]
    expected = store.view(run_id).log
    in_order(expected, "Training process started", "Paused at step", "Learning rate set to 0.0005")

    app = make_app(store, attach=run_id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any(line.startswith("Learning rate set to") for line in log_lines(app)))
        assert_shows(log_lines(app), expected)  # the same lines, in the same order
        assert app.run_view.state == "paused" and app.run_view.lr == 0.0005
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Paused — space resumes"), timeout=5)
        assert f"run {run_id} · attached" in text_of(app, "#run-title")
        assert "lr 0.0005" in text_of(app, "#stats")
        assert {"Pause", "Stop", "Set LR"} <= footer(app)

        # then live: this view steers it as the one that started it would
        await pilot.press("space")
        await wait_for(pilot, lambda: any(line.startswith("Unpaused at step") for line in log_lines(app)))
        await pilot.press("space")
        await wait_for(pilot, lambda: [line for line in log_lines(app) if line.startswith("Paused at step")][1:])
        await wait_for(pilot, lambda: text_of(app, "#status").startswith("Paused — space resumes"), timeout=5)
        shown = log_lines(app)
        assert_shows(shown, store.view(run_id).log)
        assert store.view(run_id).log[:len(expected)] == expected  # what it showed first stays first
        in_order(shown, "Paused at step", "Learning rate set to 0.0005", "Unpaused at step", "Paused at step")

    # The app ends without quitting, as when its terminal closes: the run goes on, and nothing of the app is left
    # in this process (a thread of it left following the run once kept the process alive until the run ended).
    shutdown = asyncio.ensure_future(asyncio.get_running_loop().shutdown_default_executor())
    done, _ = await asyncio.wait({shutdown}, timeout=10)
    assert store.get_run(run_id).status == "running" and store.view(run_id).state == "paused"
    store.send(run_id, Command("stop"))  # later, from elsewhere (`scratch-tui runs control ID stop`)
    until(lambda: store.get_run(run_id).status == "stopped")
    assert shutdown in done, "a thread of the app still followed the run after the app had ended"
    record = store.get_run(run_id)
    assert (record.status, record.paused, record.message) == ("stopped", False, "stopped by request")
    assert [e.lr for e in logged(store, run_id, LearningRateChanged)] == [0.0005]
    assert store.view(run_id).log[-1].startswith("Stopped after")
