"""The run store: one event log per run, the row it projects, ids, commands, dead processes, concurrent
writers, following, and older stores upgraded without losing anything."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import pytest

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.engine.events import (BatchProgress, CheckpointSaved, EpochEnded, EvaluationEnded, PredictionSample,
                                       RunFailed, RunFinished, RunInterrupted, RunPaused, RunUnpaused, RunStarted,
                                       RunState, RunStopped)
from tui_trainer.runs import follow as following
from tui_trainer.runs.follow import follow
from tui_trainer.runs.store.schema import MIGRATIONS, pack, unpack
from tui_trainer.runs.store import RunNotFound, RunStore, StoreError, default_runs_dir

CONFIG = TrainConfig(epochs=2, device="cpu", max_train_samples=500)


def started(config=CONFIG, **changes):
    values = dict(config=config, device="cpu", device_name="CPU (2 threads)", dataset_title="mini",
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


def whole_run():
    events = [started()]
    for step in range(1, 9):
        events.append(progress(step, epoch=(step - 1) // 4 + 1, loss=2.0 / step))
        if step % 4 == 0:
            events.append(epoch_end(step // 4, val_acc=60.0 + step))
    return events + [evaluation(), RunFinished(epochs_done=2, seconds=3.25)]


def record_whole_run(store, run_id):
    """Records `whole_run()`; returns the seq each event got."""
    return [store.append(run_id, event) for event in whole_run()]


def followed(store, run_id, timeout=10.0, **kwargs):
    """What `follow` yields, failing (not hanging) the test if it does not end by itself within `timeout`."""
    halt = threading.Event()
    timer = threading.Timer(timeout, halt.set)
    timer.start()
    try:
        events = list(follow(store, run_id, stop=halt, **kwargs))
    finally:
        timer.cancel()
    assert not halt.is_set(), f"following run {run_id} did not end by itself"
    return events


def logged(store, run_id, after=0):
    """The whole log (seq, event) from `after` on, every page of it."""
    rows = []
    while batch := store.events(run_id, after=after):
        rows += batch
        after = batch[-1][0]
    return rows


def made_by_another_version(store, run_id, **settings):
    """Rewrite a run's settings (default: a model named foo) as a version of scratch-tui that knows other models
    or settings would have recorded them: the row's config and model, and each RunStarted of its log."""
    settings = settings or {"model": "foo"}
    with store.transaction() as db:
        config = {**json.loads(db.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()[0]),
                  **settings}
        db.execute("UPDATE runs SET config = ?, model = ? WHERE id = ?", (json.dumps(config), config["model"], run_id))
        for seq, data in db.execute("SELECT seq, data FROM run_events WHERE run_id = ? AND name = 'run_started'",
                                    (run_id,)).fetchall():
            event = unpack(data)
            event["config"].update(settings)
            db.execute("UPDATE run_events SET data = ? WHERE run_id = ? AND seq = ?", (pack(event), run_id, seq))


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs") as opened:
        yield opened


def test_a_recorded_run_reads_back_whole(store):
    run_id = store.create_run(CONFIG, name="first try")
    assert len(run_id) == 8 and int(run_id, 16) >= 0
    assert store.events(run_id) == [] and store.last_seq(run_id) == 0
    seqs = record_whole_run(store, run_id)
    assert seqs == list(range(1, 14)) and store.last_seq(run_id) == 13

    # the log is the truth: every event back, equal and in order, numbered from 1
    assert store.events(run_id) == list(enumerate(whole_run(), 1))
    assert store.events(run_id[:5], after=11) == [(12, evaluation()), (13, RunFinished(epochs_done=2, seconds=3.25))]
    assert [seq for seq, _ in store.events(run_id, after=3, limit=2)] == [4, 5]

    [summary] = store.list_runs()
    assert (summary.id, summary.name, summary.model, summary.dataset, summary.status) == (
        run_id, "first try", "scratch-mlp", "fashion-mnist-mini", "finished")
    assert (summary.epochs_done, summary.epochs, summary.best_val_acc, summary.test_acc) == (2, 2, 68.0, 87.5)
    assert summary.duration_s == 3.25 and summary.started_at <= time.time() and summary.ended_at is not None
    assert summary.state == RunState.FINISHED and not summary.paused

    record = store.get_run(run_id)
    assert record.config == CONFIG.to_dict() and record.train_config() == CONFIG
    assert (record.device, record.device_name, record.pid, record.segment) == ("cpu", "CPU (2 threads)", os.getpid(), 1)
    assert record.started["train_size"] == 500 and record.message == ""

    epochs = store.epochs(run_id)
    assert epochs == [epoch_end(1, 64.0).to_dict(), epoch_end(2, 68.0).to_dict()]
    assert store.epochs(run_id, after=1) == [epoch_end(2, 68.0).to_dict()]
    assert store.steps(run_id) == [(s, 2.0 / s) for s in range(1, 9)]
    assert store.steps(run_id, after=6) == [(7, 2.0 / 7), (8, 2.0 / 8)]
    assert [e for _, e in store.events(run_id, after=9) if isinstance(e, BatchProgress)] == [
        progress(8, epoch=2, loss=2.0 / 8)]
    assert store.evaluation(run_id) == evaluation()  # samples, images and all


def test_a_run_of_a_model_this_version_does_not_know_is_listed_and_says_why_in_one_line(store):
    run_id, other = store.create_run(CONFIG), store.create_run(CONFIG)
    record_whole_run(store, run_id)
    made_by_another_version(store, run_id)
    made_by_another_version(store, other, warmup=5)

    assert {r.id: r.model for r in store.list_runs()} == {run_id: "foo", other: "scratch-mlp"}
    record = store.get_run(run_id)
    assert record.unreadable == "model 'foo' is not known to this version of scratch-tui"
    assert store.get_run(other).unreadable == "setting 'warmup' is not known to this version of scratch-tui"
    # whatever reads its config or its log gets the same line, naming the run
    line = f"run {run_id}: model 'foo' is not known to this version of scratch-tui"
    for read in (record.train_config, lambda: store.events(run_id)):
        with pytest.raises(ConfigError) as raised:
            read()
        assert str(raised.value) == line
    assert store.epochs(run_id) and store.evaluation(run_id)  # what needs no config still reads
    assert store.get_run(run_id[:6]).best_val_acc == 68.0


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
        store.append(run_id, started())
        store.append(run_id, epoch_end(1))
    store.append(stopped, RunPaused(epoch=2, step=5))
    assert store.get_run(stopped).paused and store.get_run(stopped).state == RunState.PAUSED
    assert [r.state for r in store.list_runs() if r.id == stopped] == [RunState.PAUSED]
    store.append(stopped, RunUnpaused(epoch=2, step=5))
    assert not store.get_run(stopped).paused and store.get_run(stopped).state == RunState.RUNNING
    store.append(stopped, CheckpointSaved(path="/x/last.pt", epoch=1, step=4, reason="epoch", best_path="/x/best.pt"))
    store.append(stopped, CheckpointSaved(path="/x/last.pt", epoch=1, step=6, reason="stop"))
    store.append(stopped, RunStopped(epochs_done=1, seconds=2.0))
    store.append(failed, RunFailed(message="loss became nan", epochs_done=1, seconds=1.0))
    s, f = store.get_run(stopped), store.get_run(failed)
    assert (s.status, s.message, s.last_checkpoint, s.best_checkpoint) == (
        "stopped", "stopped by request", "/x/last.pt", "/x/best.pt")
    assert (f.status, f.message, f.epochs_done, f.duration_s) == ("failed", "loss became nan", 1, 1.0)
    assert (s.state, f.state, s.paused) == (RunState.STOPPED, RunState.FAILED, False)
    assert store.latest_running() is None
    assert [e.event_name for _, e in store.events(stopped)] == [
        "run_started", "epoch_end", "run_paused", "run_resumed", "checkpoint_saved", "checkpoint_saved",
        "run_stopped"]

    # end_run: an ending nobody's loop wrote (a child that never started) lands in the log just the same
    never = store.create_run(CONFIG)
    store.end_run(never, RunFailed(message="no such device: cuda:7"))
    n = store.get_run(never)
    assert (n.status, n.message, n.segment) == ("failed", "no such device: cuda:7", 0)
    assert store.events(never) == [(1, RunFailed(message="no such device: cuda:7"))]


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
    store.send(run_id, Command("pause"))
    store.delete(run_id)
    assert store.list_runs() == [] and not folder.exists() and not store.log_path(run_id).exists()
    for read in (store.epochs, store.events, store.steps, store.evaluation):
        with pytest.raises(RunNotFound):
            read(run_id)
    db = sqlite3.connect(store.db_path)  # nothing of it is left behind, log and queue included
    assert [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("run_events", "commands")] == [0, 0]
    db.close()


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


def test_commands_queue_in_order_and_are_taken_once(store):
    run_id = store.create_run(CONFIG)
    store.send(run_id, Command("pause"))
    store.send(run_id[:4], Command("set_lr", 0.002))
    store.send(run_id, Command("stop"))
    assert store.take_commands(run_id) == [Command("pause"), Command("set_lr", 0.002), Command("stop")]
    assert store.take_commands(run_id) == []
    assert store.events(run_id) == []  # queuing is not an event: the recorder logs what reaches the run
    with pytest.raises(ValueError, match="command: unknown 'explode'; choose one of pause, resume"):
        Command("explode")
    with pytest.raises(ValueError, match="lr: got 50; must be a number greater than 0"):
        Command("set_lr", 50)
    with pytest.raises(RunNotFound):
        store.send("zzzzzzzz", Command("pause"))
    # a row written by hand or by a newer release is skipped, not fatal, and does not block the rest
    db = sqlite3.connect(store.db_path)
    db.execute("INSERT INTO commands (run_id, name, value, created_at) VALUES (?, 'explode', NULL, 0)", (run_id,))
    db.commit()
    db.close()
    store.send(run_id, Command("checkpoint"))
    assert store.take_commands(run_id) == [Command("checkpoint")]

    store.send(run_id, Command("pause"))  # sent right after a detached start, before the child began
    store.append(run_id, started())
    assert store.take_commands(run_id) == [Command("pause")]
    store.send(run_id, Command("stop"))  # queued, but the process ends before it takes it
    store.append(run_id, RunStopped(epochs_done=0, seconds=1.0))
    assert store.take_commands(run_id) == []  # it died with that process: the next one must not obey it
    store.send(run_id, Command("pause"))  # sent while a background resume starts its process
    store.append(run_id, started(resumed_from_step=3))
    assert store.take_commands(run_id) == [Command("pause")]  # meant for the new process, which obeys it


def test_a_resumed_start_drops_what_came_after_the_checkpoint(store):
    run_id = store.create_run(CONFIG)
    record_whole_run(store, run_id)
    resumed = started(config=CONFIG.replace(epochs=3), resumed_from_epoch=1, resumed_from_step=5)
    assert store.append(run_id, resumed) == 14
    record = store.get_run(run_id)
    assert (record.status, record.epochs, record.epochs_done, record.segment) == ("running", 3, 1, 2)
    assert record.train_config() == CONFIG.replace(epochs=3) and record.started == resumed.to_dict()
    assert (record.best_val_acc, record.test_acc, record.ended_at) == (64.0, None, None)
    assert [e["epoch"] for e in store.epochs(run_id)] == [1]
    assert [s for s, _ in store.steps(run_id)] == [1, 2, 3, 4, 5]
    assert store.evaluation(run_id) is None
    assert store.latest_running() == run_id
    # the log keeps both segments: the folds above drop what the resume trains again, the log does not
    assert store.events(run_id) == [*enumerate(whole_run(), 1), (14, resumed)]
    store.append(run_id, progress(6, epoch=2, loss=0.25))
    store.append(run_id, epoch_end(2, val_acc=61.0))
    assert store.steps(run_id)[-2:] == [(5, 2.0 / 5), (6, 0.25)]
    assert [(e["epoch"], e["val_acc"]) for e in store.epochs(run_id)] == [(1, 64.0), (2, 61.0)]


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
        assert f"pid {holder.pid}" in record.message
        # it never saved a checkpoint, so resuming is not offered: starting again is
        assert "--resume" not in record.message and "saved no checkpoint" in record.message
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
    store.append(run_id, RunStarted(config, "cpu", "CPU", "mini", ["a"], [1, 2, 2], 9, 0, 1, 5, 30))
    step = 0
    for epoch in range(1, 11):
        for _ in range(100):
            step += 1
            store.append(run_id, BatchProgress(step, epoch, 10, 1, 100, 1.0, 50.0, 0.01, 99.0))
        store.append(run_id, EpochEnded(epoch, 10, 1.0, 50.0, None, None, 0.01, 1.0, 99.0, step))
    store.append(run_id, RunFinished(epochs_done=10, seconds=1.0))
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
            log = logged(store, run_id)  # more than one page: 1 start, 1000 steps, 10 epochs, 1 ending
            assert [seq for seq, _ in log] == list(range(1, 1013))
            assert [e.step for _, e in log if isinstance(e, BatchProgress)] == list(range(1, 1001))
            assert [e.event_name for _, e in log][::1011] == ["run_started", "run_finished"]
            assert [e.event_name for e in followed(store, run_id)] == [e.event_name for _, e in log]


def test_follow_replays_a_finished_run_in_order(store):
    run_id = store.create_run(CONFIG)
    record_whole_run(store, run_id)
    names = [e.event_name for e in followed(store, run_id)]
    assert names == (["run_started"] + ["batch_progress"] * 4 + ["epoch_end"] + ["batch_progress"] * 4
                     + ["epoch_end", "eval_end", "run_finished"])
    events = followed(store, run_id[:4])
    assert events == whole_run() == [e for _, e in store.events(run_id)]
    assert events[0] == started(run_id=None)
    assert events[-2] == evaluation() and events[-1].seconds == 3.25
    assert followed(store, run_id, after=11) == events[11:]  # tailing from a seq
    assert followed(store, run_id, after=13) == []  # from the end of an ended log: nothing, and no wait


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
        seen = followed(reader, run_id, timeout=20, poll_s=0.01)
        stored = [e for _, e in reader.events(run_id)]
    thread.join()
    writer_store.close()
    names = [e.event_name for e in seen]
    assert names[0] == "run_started" and names[-2:] == ["eval_end", "run_finished"]
    assert names.count("epoch_end") == 2 and names.count("batch_progress") == 8
    assert names.index("run_paused") < names.index("run_resumed")
    assert seen == stored  # live, a viewer sees exactly the log a later one replays


def record_whole_run_slowly(store, run_id):
    store.append(run_id, started())
    for step in range(1, 9):
        time.sleep(0.02)
        store.append(run_id, progress(step, epoch=(step - 1) // 4 + 1))
        if step == 2:
            store.append(run_id, RunPaused(epoch=1, step=2))
            time.sleep(0.1)
            store.append(run_id, RunUnpaused(epoch=1, step=2))
        if step % 4 == 0:
            store.append(run_id, epoch_end(step // 4))
    store.append(run_id, evaluation())
    store.append(run_id, RunFinished(epochs_done=2, seconds=1.0))


def test_follow_ends_an_interrupted_run_with_its_message_and_can_be_stopped(store, monkeypatch):
    run_id = store.create_run(CONFIG)
    store.append(run_id, started())
    store.end_run(run_id, RunInterrupted(message="the process died", epochs_done=0, seconds=1.5))
    events = followed(store, run_id)
    assert [e.event_name for e in events] == ["run_started", "run_interrupted"]
    assert events[-1] == RunInterrupted(message="the process died", epochs_done=0, seconds=1.5)
    assert store.get_run(run_id).status == "interrupted"

    # a process that dies without an ending: the follower's liveness check writes one, and the follower ends
    monkeypatch.setattr(following, "LIVENESS_EVERY_S", 0.05)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    dead = store.create_run(CONFIG)
    store.append(dead, started())
    store.append(dead, progress(1))
    store.set_process(dead, gone.pid)
    events = followed(store, dead, poll_s=0.01)
    assert [e.event_name for e in events] == ["run_started", "batch_progress", "process_started", "run_interrupted"]
    assert f"pid {gone.pid}" in events[-1].message and "saved no checkpoint" in events[-1].message
    assert store.get_run(dead).state == RunState.INTERRUPTED and store.events(dead)[-1] == (4, events[-1])

    live = store.create_run(CONFIG)
    halt = threading.Event()
    threading.Timer(0.2, halt.set).start()
    started_at = time.monotonic()
    assert [e.event_name for e in follow(store, live, poll_s=0.02, stop=halt)] == []
    assert time.monotonic() - started_at < 5


def old_store(path, version):
    """A store as an older release left it (schema 1 or 2): one finished run with everything, a stopped run
    with a queued request, a failed run that never started, all in the tables schema 3 turns into logs."""
    path.mkdir(parents=True)
    db = sqlite3.connect(path / "runs.sqlite3")
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            statement(db) if callable(statement) else db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    old_start = {**started().to_dict(), "run_id": "0000aaaa"}  # as it was stored: config a plain dict
    row = ("INSERT INTO runs (id, name, config, model, dataset, status, message, created_at, updated_at, ended_at, "
           "run_seconds, epochs, epochs_done, best_val_acc, test_acc, device, pid, host, segment, started, "
           "last_checkpoint) VALUES (?, ?, ?, 'scratch-mlp', 'fashion-mnist-mini', ?, ?, 1, 2, 2, ?, 2, ?, ?, ?, "
           "'cpu', 1, 'elsewhere', ?, ?, ?)")
    config = json.dumps(CONFIG.to_dict())
    db.execute(row, ("0000aaaa", "old", config, "finished", "", 3.25, 2, 68.0, 87.5, 1, json.dumps(old_start),
                     "/x/last.pt"))
    db.execute(row, ("0000bbbb", "", config, "stopped", "stopped by request", 1.0, 0, None, None, 1,
                     json.dumps({**old_start, "run_id": "0000bbbb"}), None))
    db.execute(row, ("0000cccc", "", config, "failed", "no such device: cuda:7", 0.0, 0, None, None, 0, None, None))
    memory = version >= 2
    for step in range(1, 9):
        p = progress(step, epoch=(step - 1) // 4 + 1, loss=2.0 / step)
        values = ["0000aaaa", p.step, p.epoch, p.batch, p.batches, p.loss, p.acc, p.lr, p.samples_per_s]
        if memory:
            values += [100.0 + step, 200.0] if step > 4 else [None, None]
        db.execute(f"INSERT INTO steps VALUES ({', '.join('?' * len(values))})", values)
        if step % 4 == 0:
            e = epoch_end(step // 4, val_acc=60.0 + step)
            db.execute("INSERT INTO epochs VALUES (?, ?, ?, ?, ?)",
                       ("0000aaaa", e.epoch, e.step, e.val_acc, json.dumps(e.to_dict())))
    db.execute("INSERT INTO steps (run_id, step, epoch, batch, batches, loss, acc, lr, samples_per_s) VALUES "
               "('0000bbbb', 1, 1, 1, 4, 1.0, 50.0, 0.01, 1000.0)")
    db.execute("INSERT INTO evaluations VALUES (?, ?)",
               ("0000aaaa", zlib.compress(json.dumps(evaluation().to_dict()).encode(), 6)))
    db.execute("INSERT INTO controls (run_id, action, value, created_at) VALUES ('0000bbbb', 'set_lr', 0.003, 1)")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2])
def test_cuda_memory_is_kept_and_an_older_store_is_upgraded_in_place(tmp_path, version):
    path = tmp_path / "runs"
    old_store(path, version)
    with RunStore(path) as store:
        db = sqlite3.connect(store.db_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"runs", "run_events", "commands"} <= tables and not tables & {"steps", "epochs", "evaluations"}
        db.close()

        # the finished run: its start, progress, epochs, evaluation and ending, as one log in order
        log = store.events("0000aaaa")
        assert [seq for seq, _ in log] == list(range(1, 14))
        events = [e for _, e in log]
        expected = [started(run_id="0000aaaa")]
        for event in whole_run()[1:-1]:
            if isinstance(event, BatchProgress) and memory_of(event.step, version):
                event = dataclasses.replace(event, memory_mib=100.0 + event.step, peak_memory_mib=200.0)
            expected.append(event)
        assert events == expected + [RunFinished(epochs_done=2, seconds=3.25)]
        # and every reader, a fold of that log, gives back what the tables held: nothing lost
        assert store.steps("0000aaaa") == [(s, 2.0 / s) for s in range(1, 9)]
        assert store.epochs("0000aaaa") == [epoch_end(1, 64.0).to_dict(), epoch_end(2, 68.0).to_dict()]
        assert store.evaluation("0000aaaa") == evaluation()
        record = store.get_run("0000aaaa")
        assert (record.status, record.name, record.epochs_done, record.best_val_acc, record.test_acc) == (
            "finished", "old", 2, 68.0, 87.5)
        assert (record.duration_s, record.last_checkpoint, record.segment) == (3.25, "/x/last.pt", 1)

        stopped = [e for _, e in store.events("0000bbbb")]
        assert [e.event_name for e in stopped] == ["run_started", "batch_progress", "run_stopped"]
        assert stopped[-1] == RunStopped(epochs_done=0, seconds=1.0, reason="stopped by request")
        assert store.take_commands("0000bbbb") == [Command("set_lr", 0.003)]  # the queue survives as commands
        assert store.events("0000cccc") == [(1, RunFailed(message="no such device: cuda:7"))]
        assert [r.state for r in store.list_runs()] == [RunState.FINISHED, RunState.STOPPED, RunState.FAILED]

        # a run recorded after the upgrade keeps its CUDA memory figures for whoever attaches later
        run_id = store.create_run(CONFIG)
        store.append(run_id, started(device="cuda:0"))
        on_gpu = dataclasses.replace(progress(1), memory_mib=412.5, peak_memory_mib=1536.0)
        store.append(run_id, on_gpu)
        assert [e for _, e in store.events(run_id)] == [started(device="cuda:0"), on_gpu]


def memory_of(step, version):
    return version >= 2 and step > 4


def test_one_process_at_a_time_can_claim_a_run(store):
    run_id = store.create_run(CONFIG)  # running, owned by this live process
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not store.claim(run_id, holder.pid)  # this process trains it: nobody takes it over
        store.end_run(run_id, RunStopped(epochs_done=1, seconds=1.0))
        assert store.claim(run_id, holder.pid)  # a stopped run: the first claim wins...
        assert not store.claim(run_id, os.getpid())  # ...and a second resume is refused while it lives
        assert store.claim(run_id, os.getpid(), also=holder.pid)  # unless it is the claimer's own parent
        assert store.get_run(run_id).pid == os.getpid()
    finally:
        holder.kill()
        holder.wait(10)
    store.end_run(run_id, RunStopped(epochs_done=1, seconds=1.0))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    assert store.claim(run_id, gone.pid)
    assert store.claim(run_id, os.getpid())  # its claimer died: the run is found interrupted, and free again
    assert store.get_run(run_id).status == "running"


def test_an_older_store_is_not_upgraded_under_a_run_it_is_still_training(tmp_path):
    import socket

    from tui_trainer.runs.store.processes import process_token

    old_store(tmp_path / "old", 2)
    db = sqlite3.connect(tmp_path / "old" / "runs.sqlite3")
    # an older release's process (this live one stands in for it) still trains run 0000bbbb here
    db.execute("UPDATE runs SET status = 'running', pid = ?, pid_token = ?, host = ? WHERE id = '0000bbbb'",
               (os.getpid(), process_token(os.getpid()), socket.gethostname()))
    db.commit()
    with pytest.raises(StoreError, match=r"^run 0000bbbb is still training under an older scratch-tui "
                                         rf"\(pid {os.getpid()}\); let it finish or stop it"):
        RunStore(tmp_path / "old")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2  # nothing changed under it
    db.execute("UPDATE runs SET status = 'stopped' WHERE id = '0000bbbb'")  # it finished
    db.commit()
    db.close()
    with RunStore(tmp_path / "old") as store:
        assert [e.epoch for _, e in store.events("0000aaaa") if isinstance(e, EpochEnded)] == [1, 2]
