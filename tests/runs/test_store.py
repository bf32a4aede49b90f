"""The run store: round trips, ids, statuses, controls, dead processes, concurrent writers, following."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (BatchProgress, CheckpointSaved, EpochEnded, EvaluationEnded, PredictionSample,
                                       RunFailed, RunFinished, RunPaused, RunResumed, RunStarted, RunStopped)
from tui_trainer.runs.store import MIGRATIONS, RunNotFound, RunStore, StoreError, default_runs_dir

CONFIG = TrainConfig(epochs=2, device="cpu", max_train_samples=500)


def started(config=CONFIG, **changes):
    values = dict(config=config.to_dict(), device="cpu", device_name="CPU (2 threads)", dataset_title="mini",
                  classes=["a", "b"], image_shape=[1, 2, 2], train_size=500, val_size=50, test_size=40,
                  parameters=99, steps_per_epoch=4)
    return RunStarted(**{**values, **changes})


def progress(step, epoch=1, loss=1.0):
    return BatchProgress(step=step, epoch=epoch, epochs=2, batch=(step - 1) % 4 + 1, batches=4, loss=loss, acc=50.0,
                         lr=0.01, samples_per_s=1000.0)


def epoch_end(epoch, val_acc=60.0):
    return EpochEnded(epoch=epoch, epochs=2, train_loss=1.0 / epoch, train_acc=50.0 + epoch, val_loss=0.9,
                      val_acc=val_acc, lr=0.01, seconds=1.5, samples_per_s=333.0, step=4 * epoch)


def evaluation():
    sample = PredictionSample(index=3, image=[[[0, 255], [12, 34]]], true_label=1, predicted_label=0, confidence=0.75)
    return EvaluationEnded(test_loss=0.5, test_acc=87.5, per_class_acc=[80.0, 95.0], confusion=[[16, 4], [1, 19]],
                           classes=["a", "b"], samples=[sample], seconds=0.1)


def record_whole_run(store, run_id):
    store.record(run_id, started())
    for step in range(1, 9):
        store.record(run_id, progress(step, epoch=(step - 1) // 4 + 1, loss=2.0 / step))
        if step % 4 == 0:
            store.record(run_id, epoch_end(step // 4, val_acc=60.0 + step))
    store.record(run_id, evaluation())
    store.record(run_id, RunFinished(epochs_done=2, seconds=3.25))


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs") as opened:
        yield opened


def test_a_recorded_run_reads_back_whole(store):
    run_id = store.create_run(CONFIG, name="first try")
    assert len(run_id) == 8 and int(run_id, 16) >= 0
    record_whole_run(store, run_id)

    [summary] = store.list_runs()
    assert (summary.id, summary.name, summary.model, summary.dataset, summary.status) == (
        run_id, "first try", "scratch-mlp", "fashion-mnist-mini", "finished")
    assert (summary.epochs_done, summary.epochs, summary.best_val_acc, summary.test_acc) == (2, 2, 68.0, 87.5)
    assert summary.duration_s == 3.25 and summary.started_at <= time.time() and summary.ended_at is not None

    record = store.get_run(run_id)
    assert record.config == CONFIG.to_dict() and record.train_config() == CONFIG
    assert (record.device, record.device_name, record.pid, record.segment) == ("cpu", "CPU (2 threads)", os.getpid(), 1)
    assert record.started["train_size"] == 500 and record.message == ""

    epochs = store.epochs(run_id)
    assert epochs == [epoch_end(1, 64.0).to_dict(), epoch_end(2, 68.0).to_dict()]
    assert store.epochs(run_id, after=1) == [epoch_end(2, 68.0).to_dict()]
    assert store.steps(run_id) == [(s, 2.0 / s) for s in range(1, 9)]
    assert store.steps(run_id, after=6) == [(7, 2.0 / 7), (8, 2.0 / 8)]
    assert store.progress(run_id, after=7) == [progress(8, epoch=2, loss=2.0 / 8)]
    assert store.evaluation(run_id) == evaluation().to_dict()  # samples, images and all


def test_ids_resolve_from_a_unique_prefix_and_say_what_is_wrong(store):
    ids = [store.create_run(CONFIG) for _ in range(40)]
    some = ids[0]
    assert store.resolve(some) == some and store.get_run(some[:6]).id == some
    with pytest.raises(RunNotFound, match=r"^no run zzz; `scratch-tui runs` lists them$"):
        store.get_run("zzz")
    first_chars = [i[0] for i in ids]
    common = max(set(first_chars), key=first_chars.count)  # 40 ids over 16 hex digits share a first digit
    with pytest.raises(RunNotFound, match="is ambiguous .* type more of it"):
        store.resolve(common)


def test_stop_fail_pause_and_checkpoint_events_set_the_row(store):
    stopped, failed = store.create_run(CONFIG), store.create_run(CONFIG)
    for run_id in (stopped, failed):
        store.record(run_id, started())
        store.record(run_id, epoch_end(1))
    store.record(stopped, RunPaused(epoch=2, step=5))
    assert store.get_run(stopped).paused
    store.record(stopped, RunResumed(epoch=2, step=5))
    assert not store.get_run(stopped).paused
    store.record(stopped, CheckpointSaved(path="/x/last.pt", epoch=1, step=4, reason="epoch", best_path="/x/best.pt"))
    store.record(stopped, CheckpointSaved(path="/x/last.pt", epoch=1, step=6, reason="stop"))
    store.record(stopped, RunStopped(epochs_done=1, seconds=2.0))
    store.record(failed, RunFailed(message="loss became nan", epochs_done=1, seconds=1.0))
    s, f = store.get_run(stopped), store.get_run(failed)
    assert (s.status, s.message, s.last_checkpoint, s.best_checkpoint) == (
        "stopped", "stopped by request", "/x/last.pt", "/x/best.pt")
    assert (f.status, f.message) == ("failed", "loss became nan")
    assert store.latest_running() is None


def test_rename_and_delete_remove_the_checkpoints_too(store):
    run_id = store.create_run(CONFIG)
    record_whole_run(store, run_id)
    store.rename(run_id[:5], "renamed")
    assert store.get_run(run_id).name == "renamed"
    folder = store.checkpoint_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"x")
    store.log_path(run_id).parent.mkdir(parents=True)
    store.log_path(run_id).write_text("log")
    store.delete(run_id)
    assert store.list_runs() == [] and not folder.exists() and not store.log_path(run_id).exists()
    with pytest.raises(RunNotFound):
        store.epochs(run_id)


def test_a_tampered_id_cannot_reach_outside_the_runs_folder(store, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    db = sqlite3.connect(store.db_path)
    db.execute("INSERT INTO runs (id, config, model, dataset, status, created_at, updated_at, epochs) "
               "VALUES ('../../precious', '{}', 'cnn', 'mnist', 'stopped', 0, 0, 1)")
    db.commit()
    db.close()
    with pytest.raises(RunNotFound, match="is not a valid id"):
        store.delete("../../precious")
    assert outside.exists() and store.resolve("../../precious") == "../../precious"


def test_controls_queue_in_order_and_are_taken_once(store):
    run_id = store.create_run(CONFIG)
    store.send_control(run_id, "pause")
    store.send_control(run_id[:4], "set_lr", 0.002)
    store.send_control(run_id, "stop")
    assert store.take_controls(run_id) == [("pause", None), ("set_lr", 0.002), ("stop", None)]
    assert store.take_controls(run_id) == []
    with pytest.raises(ValueError, match="control: unknown 'explode'; choose one of pause, resume"):
        store.send_control(run_id, "explode")
    with pytest.raises(ValueError, match="lr: got 50; must be a number greater than 0"):
        store.send_control(run_id, "set_lr", 50)
    store.send_control(run_id, "pause")  # sent right after a detached start, before the child began
    store.record(run_id, started())
    assert store.take_controls(run_id) == [("pause", None)]
    store.record(run_id, RunStopped(epochs_done=0, seconds=1.0))
    store.send_control(run_id, "stop")  # too late for that process
    store.record(run_id, started(resumed_from_step=3))  # the next one must not obey it
    assert store.take_controls(run_id) == []


def test_a_resumed_start_drops_what_came_after_the_checkpoint(store):
    run_id = store.create_run(CONFIG)
    record_whole_run(store, run_id)
    store.record(run_id, started(config=CONFIG.replace(epochs=3), resumed_from_epoch=1, resumed_from_step=5))
    record = store.get_run(run_id)
    assert (record.status, record.epochs, record.epochs_done, record.segment) == ("running", 3, 1, 2)
    assert (record.best_val_acc, record.test_acc, record.ended_at) == (64.0, None, None)
    assert [e["epoch"] for e in store.epochs(run_id)] == [1]
    assert [s for s, _ in store.steps(run_id)] == [1, 2, 3, 4, 5]
    assert store.evaluation(run_id) is None
    assert store.latest_running() == run_id


def test_schema_is_versioned_and_damage_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    RunStore(path).close()
    db = sqlite3.connect(path / "runs.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="written by a newer scratch-tui .* upgrade scratch-tui or pass another"):
        RunStore(path)

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "runs.sqlite3").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="is not a usable run store .* move it aside or pass --runs-dir") as info:
        RunStore(junk)
    assert "\n" not in str(info.value)

    monkeypatch.setenv("SCRATCH_TUI_HOME", str(tmp_path / "home"))
    assert default_runs_dir() == tmp_path / "home"
    assert RunStore().root == tmp_path / "home"


HOLD_A_RUN = textwrap.dedent("""
    import sys, time
    from tui_trainer.engine.config import TrainConfig
    from tui_trainer.runs.store import RunStore
    store = RunStore(sys.argv[1])
    run_id = store.create_run(TrainConfig(device="cpu"))
    print(run_id, flush=True)
    time.sleep(600)
""")


def test_a_killed_process_leaves_its_run_interrupted(tmp_path):
    path = tmp_path / "runs"
    with RunStore(path) as store:
        mine = store.create_run(CONFIG)  # this process is alive: never marked
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        run_id = holder.stdout.readline().strip()
        with RunStore(path) as store:
            assert store.get_run(run_id).status == "running"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    with RunStore(path) as store:
        record = store.get_run(run_id)
        assert record.status == "interrupted"
        assert f"pid {holder.pid}" in record.message and f"--resume {run_id}" in record.message
        assert store.get_run(mine).status == "running"
        assert store.latest_running() == mine


WRITER = textwrap.dedent("""
    import sys, time
    from tui_trainer.engine.config import TrainConfig
    from tui_trainer.engine.events import BatchProgress, EpochEnded, RunFinished, RunStarted
    from tui_trainer.runs.store import RunStore
    store = RunStore(sys.argv[1])
    config = TrainConfig(device="cpu", epochs=10)
    run_id = store.create_run(config)
    print(run_id, flush=True)
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both writers start together
    store.record(run_id, RunStarted(config.to_dict(), "cpu", "CPU", "mini", ["a"], [1, 2, 2], 9, 0, 1, 5, 30))
    step = 0
    for epoch in range(1, 11):
        for _ in range(100):
            step += 1
            store.record(run_id, BatchProgress(step, epoch, 10, 1, 100, 1.0, 50.0, 0.01, 99.0))
        store.record(run_id, EpochEnded(epoch, 10, 1.0, 50.0, None, None, 0.01, 1.0, 99.0, step))
    store.record(run_id, RunFinished(epochs_done=10, seconds=1.0))
""")


def test_two_processes_writing_at_once_both_record_everything(tmp_path):
    path = tmp_path / "runs"
    RunStore(path).close()  # the schema exists before either writer opens it
    start = str(time.time() + 1.0)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), start], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in results]
    with RunStore(path) as store:
        for out, _ in results:
            run_id = out.strip()
            assert store.get_run(run_id).status == "finished"
            assert len(store.steps(run_id)) == 1000
            assert [e["epoch"] for e in store.epochs(run_id)] == list(range(1, 11))


def test_follow_replays_a_finished_run_in_order(store):
    run_id = store.create_run(CONFIG)
    record_whole_run(store, run_id)
    names = [e.event_name for e in store.follow(run_id)]
    assert names == (["run_started"] + ["batch_progress"] * 4 + ["epoch_end"] + ["batch_progress"] * 4
                     + ["epoch_end", "eval_end", "run_finished"])
    events = list(store.follow(run_id))
    assert events[0] == started(run_id=None)
    assert events[-2] == evaluation() and events[-1].seconds == 3.25


def test_follow_sees_a_live_run_as_it_is_written(tmp_path):
    path = tmp_path / "runs"
    writer_store = RunStore(path)
    run_id = writer_store.create_run(CONFIG)

    def write():
        time.sleep(0.1)
        record_whole_run_slowly(writer_store, run_id)

    thread = threading.Thread(target=write)
    thread.start()
    with RunStore(path) as reader:
        seen = [e.event_name for e in reader.follow(run_id, poll_s=0.01)]
    thread.join()
    writer_store.close()
    assert seen[0] == "run_started" and seen[-2:] == ["eval_end", "run_finished"]
    assert seen.count("epoch_end") == 2 and seen.count("batch_progress") == 8
    assert seen.index("run_paused") < seen.index("run_resumed")


def record_whole_run_slowly(store, run_id):
    store.record(run_id, started())
    for step in range(1, 9):
        time.sleep(0.02)
        store.record(run_id, progress(step, epoch=(step - 1) // 4 + 1))
        if step == 2:
            store.record(run_id, RunPaused(epoch=1, step=2))
            time.sleep(0.1)
            store.record(run_id, RunResumed(epoch=1, step=2))
        if step % 4 == 0:
            store.record(run_id, epoch_end(step // 4))
    store.record(run_id, evaluation())
    store.record(run_id, RunFinished(epochs_done=2, seconds=1.0))


def test_follow_ends_an_interrupted_run_with_its_message_and_can_be_stopped(store):
    run_id = store.create_run(CONFIG)
    store.record(run_id, started())
    store.set_status(run_id, "interrupted", "the process died")
    events = list(store.follow(run_id))
    assert isinstance(events[-1], RunStopped) and events[-1].reason == "the process died"

    live = store.create_run(CONFIG)
    halt = threading.Event()
    threading.Timer(0.2, halt.set).start()
    assert [e.event_name for e in store.follow(live, poll_s=0.02, stop=halt)] == []


def test_cuda_memory_is_kept_and_an_older_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "runs"
    with RunStore(path) as store:
        old_run = store.create_run(CONFIG)
        store.record(old_run, started())
        store.record(old_run, progress(1))
    # as the first release left it: schema 1, without the memory columns
    db = sqlite3.connect(path / "runs.sqlite3")
    db.execute("CREATE TABLE steps_v1 AS SELECT run_id, step, epoch, batch, batches, loss, acc, lr, samples_per_s "
               "FROM steps")
    db.execute("DROP TABLE steps")
    db.execute("ALTER TABLE steps_v1 RENAME TO steps")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    with RunStore(path) as store:
        assert store.progress(old_run) == [progress(1)]  # kept, with no memory figures
        run_id = store.create_run(CONFIG)
        store.record(run_id, started(device="cuda:0"))
        on_gpu = dataclasses.replace(progress(1), memory_mib=412.5, peak_memory_mib=1536.0)
        store.record(run_id, on_gpu)
        assert store.progress(run_id) == [on_gpu]  # what a viewer attached to the run shows
