"""What the store keeps survives: a moved runs dir, ids that try to climb out of it, a full disk, a read-only
folder, flipped bytes, another process holding the write lock, and a run killed before its evaluation."""

import dataclasses
import errno
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from tui_trainer import cli
from tui_trainer.engine import checkpoints
from tui_trainer.engine.checkpoint_files import LAST, PREVIOUS
from tui_trainer.engine.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (CheckpointSaved, EpochEnded, EvaluationEnded, RunFinished, RunStarted)
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs import recording as recording_module
from tui_trainer.runs.store import connection as store_module
from tui_trainer.runs.evaluation import evaluate_checkpoint
from tui_trainer.runs.export import export_run
from tui_trainer.runs.recording import Recording, recorded
from tui_trainer.runs.store import RunNotFound, RunStore, StoreBusy, StoreError, StoreFull, StoreMoved
from tui_trainer.runs.worker import build_run

QUICK = ["--epochs", "1", "--max-train-samples", "300", "--device", "cpu"]
CONFIG = TrainConfig(epochs=2, device="cpu", max_train_samples=300)


@pytest.fixture
def tiny(small_data):
    """300 training images: three steps an epoch."""
    return dataclasses.replace(small_data, train_x=small_data.train_x[:300], train_y=small_data.train_y[:300],
                               val_x=small_data.val_x[:64], val_y=small_data.val_y[:64])


def train(store, data, config=CONFIG, **kwargs):
    run = TrainingRun(config, data=data, progress_seconds=0)
    events = list(Recording(run, store, **kwargs))
    return run.run_id, events


def run_cli(args, capsys):
    try:
        code = cli.main(args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def dead_pid():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    return gone.pid


# -- paths ------------------------------------------------------------------------------------------------
def test_a_moved_runs_dir_still_resumes_and_evaluates(tiny, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    with RunStore(before) as store:
        run_id, _ = train(store, tiny)
    db = sqlite3.connect(before / "runs.sqlite3")
    kept = db.execute("SELECT last_checkpoint, best_checkpoint FROM runs WHERE id = ?", (run_id,)).fetchone()
    db.close()
    assert kept == (f"checkpoints/{run_id}/last.pt", f"checkpoints/{run_id}/best.pt")  # relative to the runs dir
    shutil.move(before, after)
    with RunStore(after) as store:
        record = store.get_run(run_id)
        assert record.last_checkpoint == str(after / "checkpoints" / run_id / LAST)
        assert evaluate_checkpoint(record, "best").result.test_acc > 0
        resumed = build_run(store, run_id, epochs=3, data=tiny)
        assert resumed.epoch == 2
        assert isinstance(list(recorded(resumed, store))[-1], RunFinished)


def test_absolute_paths_kept_by_an_older_release_are_found_after_a_move(tiny, tmp_path):
    with RunStore(tmp_path / "old") as store:
        run_id, _ = train(store, tiny)
        folder = store.checkpoint_dir(run_id)
        with store.transaction() as db:  # as an older release kept them: absolute, where the runs dir was then
            db.execute("UPDATE runs SET last_checkpoint = ?, best_checkpoint = ? WHERE id = ?",
                       (str(folder / "last.pt"), str(folder / "best.pt"), run_id))
    shutil.move(tmp_path / "old", tmp_path / "new")
    with RunStore(tmp_path / "new") as store:
        record = store.get_run(run_id)
        assert record.best_checkpoint == str(tmp_path / "new" / "checkpoints" / run_id / "best.pt")
        assert load_checkpoint(record.last_checkpoint).run_id == run_id


def test_a_relative_runs_dir_is_evaluated_and_resumed_from_another_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    code, out, err = run_cli(["train", *QUICK, "--runs-dir", "runs"], capsys)
    assert code == 0, err
    run_id = re.search(r"; run ([0-9a-f]{8})", out).group(1)
    monkeypatch.chdir(tmp_path / "elsewhere")
    runs = str(tmp_path / "here" / "runs")
    code, out, err = run_cli(["eval", run_id, "--runs-dir", runs], capsys)
    assert code == 0 and "no checkpoint" not in err and "test" in out.lower()
    code, out, err = run_cli(["train", "--resume", run_id, "--epochs", "2", "--runs-dir", runs], capsys)
    assert code == 0, err


def test_ids_that_climb_out_never_become_paths(tmp_path):
    outside = tmp_path / "outside"
    with RunStore(tmp_path / "runs") as store:
        for bad in ("../outside", "../../etc", "a/../../b", "..", "x\\..\\y", "/abs"):
            for build in (store.checkpoint_dir, store.log_path):
                with pytest.raises(RunNotFound, match="is not a valid id"):
                    build(bad)
            with pytest.raises(RunNotFound):
                export_run(store, bad, "json")
        # a name is only ever shown, never made into a path: a run named like a path stays inside
        run_id = store.create_run(CONFIG, name="../../outside/evil")
        assert store.get_run(run_id).name == "../../outside/evil"
        assert store.checkpoint_dir(run_id).parent == store.root / "checkpoints"
        assert store.log_path(run_id).parent == store.root / "logs"
        store.delete(run_id)
    assert not outside.exists()


# -- a full disk ------------------------------------------------------------------------------------------
def test_a_full_disk_mid_run_is_one_line_the_recorded_reason_and_keeps_the_last_checkpoint(
        runs_home, monkeypatch, capsys):
    real_save = torch.save
    saves = []

    def full_after_the_first(obj, fh):
        saves.append(1)
        if len(saves) > 1:
            fh.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, fh)

    monkeypatch.setattr(checkpoints.torch, "save", full_after_the_first)
    code, out, err = run_cli(["train", *QUICK, "--epochs", "3"], capsys)
    run_id = re.search(r"; run ([0-9a-f]{8})", out).group(1)
    folder = runs_home / "checkpoints" / run_id
    line = (f"no space left on the disk holding {folder}: free some space, then resume with "
            f"`scratch-tui train --resume {run_id}`")
    assert code == 1 and err.strip().splitlines()[-1] == f"scratch-tui train: error: {line}"
    assert "Traceback" not in err and "enforce fail" not in err
    with RunStore(runs_home) as store:
        record = store.get_run(run_id)
        assert (record.status, record.message) == ("failed", line)
        assert load_checkpoint(record.last_checkpoint).epoch == 1  # the last good one, whole
    # no partial file
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "epoch-0001.pt", "last.prev.pt", "last.pt"]
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    code, _, err = run_cli(["train", "--resume", run_id], capsys)
    assert code == 0, err


def test_a_full_disk_before_any_checkpoint_does_not_offer_resume(runs_home, monkeypatch, capsys):
    def full(obj, fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    code, out, err = run_cli(["train", *QUICK], capsys)
    assert code == 1 and "no space left on the disk holding" in err and "--resume" not in err
    assert "start it again" in err


def test_a_store_that_cannot_be_written_says_locked_or_full_not_unusable(tmp_path):
    with RunStore(tmp_path, busy_timeout_s=0.2) as store:
        run_id = store.create_run(CONFIG)
        holder = sqlite3.connect(store.db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreBusy, match=r"is locked: another process has held its write lock for over "
                                                r"0.2s; try again once it lets go"):
                store.rename(run_id, "x")
            assert [r.id for r in store.list_runs()] == [run_id]  # reading goes on beside the lock
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        store.query("PRAGMA max_page_count = 1")  # this connection's file cannot grow: SQLite says it is full
        with pytest.raises(StoreFull, match=f"^no space left on the disk holding {tmp_path}: free some space"):
            store.create_queued([(CONFIG, "x" * 100_000)])


# -- read-only ----------------------------------------------------------------------------------------------
def _store_with_a_dead_run(path, data):
    with RunStore(path) as store:
        run_id, _ = train(store, data, CONFIG.replace(epochs=1))
        dead = store.create_run(CONFIG)
        store.set_process(dead, dead_pid())  # its process is gone: a writable store would mark it
    return run_id, dead


def test_a_store_opened_read_only_lists_shows_and_evaluates_writing_nothing(tiny, tmp_path, monkeypatch, capsys):
    run_id, dead = _store_with_a_dead_run(tmp_path, tiny)
    database = tmp_path / "runs.sqlite3"
    before = database.read_bytes()  # (SQLite's -shm index beside it is not data; a read-only folder has none)
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)  # as on a read-only mount
    with RunStore(tmp_path) as store:
        assert store.read_only
        assert {r.id: r.status for r in store.list_runs()} == {run_id: "finished", dead: "interrupted"}
        assert "saved no checkpoint" in store.get_run(dead).message
        with pytest.raises(StoreError, match="is read-only"):
            store.rename(run_id, "nope")
    code, out, err = run_cli(["runs", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0 and dead in out and "interrupted" in out and "is read-only" in err
    code, out, _ = run_cli(["runs", "show", run_id, "--runs-dir", str(tmp_path)], capsys)
    assert code == 0 and f"Run {run_id}" in out
    code, out, err = run_cli(["eval", run_id, "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert database.read_bytes() == before


def test_a_read_only_folder_can_be_listed_shown_and_evaluated(tiny):
    """A real chmod: as root chmod restricts nothing, so the commands then run as `nobody`."""
    as_nobody = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: chmod would not restrict anything")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    top = Path(tempfile.mkdtemp(prefix="scratch-tui-ro-"))  # outside pytest's private (0700) tmp folders
    try:
        if as_nobody:  # nobody must be able to read Python, torch and this package where they are installed
            probe = subprocess.run([*as_nobody, sys.executable, "-c", "import torch, tui_trainer.cli"], cwd=top,
                                   capture_output=True, text=True, timeout=120)
            if probe.returncode != 0:
                why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.skip(f"the user nobody cannot run scratch-tui from this environment, which is not "
                            f"world-readable ({why}); the read-only folder cannot be tried as another user")
        folder = top / "runs"
        run_id, dead = _store_with_a_dead_run(folder, tiny)
        for path in [top, folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        env = {**os.environ, "HOME": str(top), "SCRATCH_TUI_HOME": str(folder)}
        for command in (["runs"], ["runs", "show", dead], ["eval", run_id, "--device", "cpu"]):
            done = subprocess.run([*as_nobody, sys.executable, "-m", "tui_trainer", *command], env=env, cwd=top,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (command, done.stderr)
            assert "Traceback" not in done.stderr
            if command[0] == "runs":  # the dead run is shown for what it is, though nothing can record it
                assert "is read-only" in done.stderr and re.search(rf"{dead}:?\s.*interrupted", done.stdout)
    finally:
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(top)


# -- damaged checkpoints ----------------------------------------------------------------------------------
def _flip(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


def test_a_damaged_last_checkpoint_resumes_from_the_previous_good_one_and_says_so(tiny, tmp_path):
    with RunStore(tmp_path) as store:
        run_id, events = train(store, tiny, CONFIG.replace(epochs=3))
        folder = store.checkpoint_dir(run_id)
        previous = load_checkpoint(folder / PREVIOUS)
        assert previous.epoch == 2 and load_checkpoint(folder / LAST).epoch == 3
        _flip(folder / LAST)
        with pytest.raises(CheckpointError, match="is damaged"):
            load_checkpoint(folder / LAST)
        warnings = []
        run = build_run(store, run_id, epochs=4, warn=warnings.append, data=tiny)
        assert run.epoch == 2
        assert warnings == [f"{folder / LAST} is damaged, so run {run_id} resumes from the previous good "
                            f"checkpoint, {PREVIOUS} (epoch 2, step {previous.step})"]
        assert (folder / "last.damaged.pt").exists()  # set aside, never kept as the previous good one
        after = list(recorded(run, store))
        assert [e.epoch for e in after if isinstance(e, EpochEnded)] == [3, 4]
        assert [e["epoch"] for e in store.epochs(run_id)] == [1, 2, 3, 4]


def test_a_damaged_checkpoint_with_nothing_to_fall_back_on_is_refused(tiny, tmp_path, capsys):
    with RunStore(tmp_path) as store:
        run_id, _ = train(store, tiny, CONFIG.replace(epochs=1))
        for path in store.checkpoint_dir(run_id).iterdir():  # best is the same file as last here
            _flip(path) if path.name == LAST else path.unlink()
    code, _, err = run_cli(["train", "--resume", run_id, "--epochs", "2", "--runs-dir", str(tmp_path)], capsys)
    assert code == 1 and f"run {run_id} cannot be resumed:" in err and "is damaged" in err
    assert len(err.strip().splitlines()) == 1


# -- a store locked by another process ----------------------------------------------------------------------
def test_a_store_locked_longer_than_the_busy_timeout_never_fails_the_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(recording_module, "RETRY_EVERY_S", 0.1)
    store = RunStore(tmp_path, busy_timeout_s=0.3)
    holder = sqlite3.connect(store.db_path, isolation_level=None)
    warnings, yielded = [], []
    run = TrainingRun(CONFIG.replace(epochs=3), data=tiny, progress_seconds=0)
    held_at = None
    for event in Recording(run, store, warn=warnings.append):
        yielded.append(event)
        if isinstance(event, RunStarted):
            holder.execute("BEGIN IMMEDIATE")  # a `sqlite3` shell that began a write and went to lunch
            held_at = time.monotonic()
        elif held_at is not None and isinstance(event, EpochEnded) and event.epoch == 2:
            assert time.monotonic() - held_at > 0.3  # held past the busy timeout
            assert store.last_seq(run.run_id) == 1  # nothing got through meanwhile
            holder.execute("COMMIT")
            held_at = None
    holder.close()
    assert isinstance(yielded[-1], RunFinished)
    logged = store.events(run.run_id, limit=10_000)
    assert [seq for seq, _ in logged] == list(range(1, len(yielded) + 1))
    assert [e for _, e in logged] == yielded  # every event, in the order it happened
    assert store.get_run(run.run_id).status == "finished"
    assert len(warnings) == 2
    assert warnings[0] == (f"the run store {store.db_path} is locked by another process; run {run.run_id} trains "
                           f"on and keeps its events in memory until they can be written")
    assert warnings[1].startswith("the run store takes writes again")
    store.close()


def test_the_end_of_a_run_waits_for_the_lock_rather_than_fail(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(recording_module, "RETRY_EVERY_S", 0.05)
    store = RunStore(tmp_path, busy_timeout_s=0.2)
    holder = sqlite3.connect(store.db_path, isolation_level=None, check_same_thread=False)
    run = TrainingRun(CONFIG.replace(epochs=1), data=tiny, progress_seconds=0)
    recording = Recording(run, store, warn=lambda message: None)
    for event in recording:
        if isinstance(event, EvaluationEnded):
            holder.execute("BEGIN IMMEDIATE")
            letting_go = threading.Timer(1.0, holder.execute, ("COMMIT",))  # while the ending waits
            letting_go.start()
            began = time.monotonic()
    assert time.monotonic() - began > 0.9  # the ending did wait for the lock
    letting_go.join()
    assert store.get_run(run.run_id).status == "finished"
    holder.close()
    store.close()


def test_an_ending_held_up_past_its_bound_is_kept_aside_and_recorded_by_the_next_look(tmp_path, monkeypatch):
    """A lock held for ever: the ending waits ENDING_WAIT_S, no longer, says so in one line, and its events land in
    the log once the process is gone and the store is opened again."""
    from tui_trainer.runs.recording import _Journal

    from .test_store import epoch_end, started

    monkeypatch.setattr(recording_module, "ENDING_WAIT_S", 0.3)
    monkeypatch.setattr(recording_module, "RETRY_EVERY_S", 0.05)
    store = RunStore(tmp_path, busy_timeout_s=0.1)
    run_id = store.create_run(CONFIG)
    warnings = []
    journal = _Journal(store, run_id, warnings.append)
    journal.write(started())
    holder = sqlite3.connect(store.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # held past the end of the run
    journal.write(epoch_end(1))
    began = time.monotonic()
    journal.write(RunFinished(epochs_done=1, seconds=2.0), wait=True)
    assert time.monotonic() - began < 5  # bounded: 0.3 s and one busy timeout, give or take a loaded machine
    kept = store.unrecorded_path(run_id)
    assert warnings[-1] == (f"the run store {store.db_path} stayed locked for 0.3s; the last 2 events of run {run_id} "
                            f"are kept in {kept}, and the next scratch-tui to open the store records them")
    holder.execute("COMMIT")
    holder.close()
    with store.transaction() as db:  # the process that trained it has exited since
        db.execute("UPDATE runs SET pid = 999999999, pid_token = NULL WHERE id = ?", (run_id,))
    store.close()
    with RunStore(tmp_path) as later:
        assert later.get_run(run_id).status == "finished" and later.get_run(run_id).epochs_done == 1
        assert [type(e).__name__ for _, e in later.events(run_id)] == ["RunStarted", "EpochEnded", "RunFinished"]
    assert not kept.exists()


def test_a_runs_folder_moved_while_a_run_trains_stops_the_run_saying_so(tiny, tmp_path):
    """No split run: the checkpoints do not go to a new folder at the old path while the log goes to the moved
    store; the run stops at its next checkpoint and its record, where the store went, says why."""
    old, moved = tmp_path / "runs", tmp_path / "moved"
    store = RunStore(old)
    run = TrainingRun(CONFIG.replace(epochs=3), data=tiny, progress_seconds=0)
    with pytest.raises(StoreMoved, match=f"the runs folder {old} was moved or deleted while this process used it"):
        for event in Recording(run, store, warn=lambda message: None):
            if isinstance(event, CheckpointSaved) and event.epoch == 1:
                old.rename(moved)  # `mv` in another terminal
    store.close()
    assert not old.exists()  # nothing made again at the old path
    with RunStore(moved) as there:
        record = there.get_run(run.run_id)
        assert record.status == "failed" and record.epochs_done == 2
        assert record.message.startswith(f"the runs folder {old} was moved or deleted")
        assert [p.name for p in there.checkpoint_dir(run.run_id).glob("epoch-*.pt")] == ["epoch-0001.pt"]


# -- killed after the last epoch, before the evaluation ------------------------------------------------------
def test_a_run_killed_before_its_evaluation_is_finished_by_resume(tiny, tmp_path, capsys):
    config = CONFIG.replace(epochs=1)
    with RunStore(tmp_path) as store:
        run = TrainingRun(config, data=tiny, progress_seconds=0)
        run_id = store.create_run(config)
        run.run_id = run_id
        events = run.events()
        for event in events:  # what the recorder writes, up to the killing
            store.append(run_id, event)
            if isinstance(event, EpochEnded):
                path = save_checkpoint(store.checkpoint_dir(run_id) / LAST, run)
                store.append(run_id, CheckpointSaved(path=str(path), epoch=1, step=run.step, reason="epoch"))
                break
        events.close()
        with store.transaction() as db:
            db.execute("UPDATE runs SET pid = ?, pid_token = NULL WHERE id = ?", (dead_pid(), run_id))
    with RunStore(tmp_path) as store:
        record = store.get_run(run_id)
        assert record.status == "interrupted"
        assert record.message.endswith(f"it trained all 1 epochs but was not evaluated; `scratch-tui train --resume "
                                       f"{run_id}` evaluates it and marks it finished")
    code, out, err = run_cli(["train", "--resume", run_id, "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    with RunStore(tmp_path) as store:
        record = store.get_run(run_id)
        assert record.status == "finished" and record.test_acc is not None
    code, _, err = run_cli(["train", "--resume", run_id, "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and "has already trained all 1 epochs" in err  # once finished, there is nothing to finish
