"""The run queue: queued runs are recorded runs, in an order one can change; one runner per store; device slots;
and a store from before the queue upgrades with nothing lost."""

import os
import sqlite3
import subprocess
import sys

import pytest

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import RunFinished, RunQueued, RunState, RunStopped, next_state
from tui_trainer.runs import queue
from tui_trainer.runs.queue import QueueError, cancel, enqueue, move, queued, runner_status
from tui_trainer.runs.spawn import Spawned
from tui_trainer.runs.store.processes import process_token
from tui_trainer.runs.store.schema import MIGRATIONS
from tui_trainer.runs.store import RunStore

from .test_store import made_by_another_version, old_store, record_whole_run

CPU = TrainConfig(epochs=1, device="cpu", max_train_samples=256)


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs") as s:
        yield s


def ids(runs):
    return [r.id for r in runs]


def test_queued_runs_are_recorded_runs_that_nothing_trains_yet(store):
    first = enqueue(store, [CPU])
    seeds = enqueue(store, [CPU.replace(seed=s) for s in (0, 1)], "5eed0001", "seeds of x", ["x seed 0", "x seed 1"])
    assert ids(queued(store)) == first + seeds
    assert [q.position for q in queued(store)] == [1, 2, 3]
    assert store.events(seeds[1]) == [(1, RunQueued(position=3, sweep_id="5eed0001", sweep_name="seeds of x"))]
    record = store.get_run(seeds[1])
    assert (record.state, record.name, record.config["seed"], record.sweep_id, record.sweep_name) == (
        RunState.QUEUED, "x seed 1", 1, "5eed0001", "seeds of x")
    assert not record.state.active and next_state(RunState.FINISHED, RunQueued(position=1)) == RunState.QUEUED
    assert store.mark_interrupted() == []  # no process yet, and none missing
    assert {r.id: r.state for r in store.list_runs()} == {i: RunState.QUEUED for i in first + seeds}
    assert {r.id for r in store.list_runs(sweep="5eed")} == set(seeds)
    assert store.list_runs(sweep="ffff") == []
    with pytest.raises(QueueError, match="names: got 1 for 2 configs"):
        enqueue(store, [CPU, CPU], names=["one"])
    assert len(queued(store)) == 3  # nothing half-queued


def test_queued_runs_move_and_cancel(store):
    a, b, c, d = enqueue(store, [CPU.replace(seed=s) for s in range(4)])
    assert move(store, c, to=1) == 1 and ids(queued(store)) == [c, a, b, d]
    assert move(store, c[:5], by=2) == 3 and ids(queued(store)) == [a, b, c, d]
    assert move(store, a, by=-5) == 1 and move(store, a, by=99) == 4  # past an end stops there
    assert ids(queued(store)) == [b, c, d, a]
    with pytest.raises(QueueError, match=r"^position: got 5; the queue has positions 1 to 4$"):
        move(store, a, to=5)
    cancel(store, c)
    assert ids(queued(store)) == [b, d, a] and c not in ids(store.list_runs())
    later = enqueue(store, [CPU])  # after a move, new runs still join at the end
    assert ids(queued(store)) == [b, d, a, *later]

    store.take_queued(b, os.getpid())  # started by a runner: no longer the queue's to move or cancel
    with pytest.raises(QueueError, match=rf"run {b} is not queued \(it is running\); stop it with"):
        cancel(store, b)
    store.end_run(b, RunStopped(epochs_done=0, seconds=0.0))
    with pytest.raises(QueueError, match=rf"run {b} is not queued \(it is stopped\)"):
        move(store, b, to=1)
    assert [q.position for q in queued(store, include_running=True)] == [1, 2, 3]


def test_one_runner_per_store_and_it_leaves_when_there_is_nothing_to_start(store):
    assert runner_status(store).running is False
    assert queue.run_queue(store, poll_s=0.01) == 0  # empty queue: it claims, finds nothing, leaves
    assert store.query("SELECT count(*) FROM queue_runner")[0][0] == 0

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with store.transaction() as db:  # another live runner holds the store
            db.execute("INSERT INTO queue_runner (id, pid, pid_token, host, beat_at) VALUES (1, ?, ?, ?, 0)",
                       (holder.pid, process_token(holder.pid), store.host))
        enqueue(store, [CPU])
        assert runner_status(store).runner_pid == holder.pid
        assert queue.ensure_runner(store) is None  # no second runner
        assert queue.run_queue(store, poll_s=0.01) == 0 and len(queued(store)) == 1
    finally:
        holder.kill()
        holder.wait(10)
    assert runner_status(store).running is False  # its process is gone: the claim is free again

    queue.pause_queue(store)
    assert runner_status(store).paused and queue.ensure_runner(store) is None
    assert queue.run_queue(store, poll_s=0.01) == 0 and len(queued(store)) == 1  # paused: nothing starts


def starting_by_hand(monkeypatch) -> list[str]:
    """The runner's starts, taken from the queue but not spawned: the list of run ids it started, in order."""
    started = []

    def start(store_, run_id, device=None):
        assert store_.take_queued(run_id, os.getpid(), device)
        started.append(run_id)
        return Spawned(run_id, os.getpid(), store_.log_path(run_id))

    monkeypatch.setattr(queue, "start_queued", start)
    monkeypatch.setattr(queue, "DEFAULT_PACK", 1)  # each alone: packs are tests/runs/test_pack_runs.py's
    return started


def test_runs_start_in_order_while_their_device_has_a_free_slot(store, monkeypatch):
    started = starting_by_hand(monkeypatch)
    by_hand = store.create_run(CPU)  # a run this process trains on the CPU takes the CPU's one slot
    a, b, c = enqueue(store, [CPU, CPU, CPU])
    assert queue._start_what_fits(store) == [] and started == []
    queue.set_per_device(store, 3)
    assert len(queue._start_what_fits(store)) == 2 and started == [a, b]
    assert store.get_run(a).status == "running" and ids(queued(store)) == [c]
    assert ids(queued(store, include_running=True)) == [c, a, b]  # by_hand was never queued
    with pytest.raises(QueueError, match="per-device: got 0"):
        queue.set_per_device(store, 0)
    assert by_hand not in started


def test_a_queued_run_this_version_cannot_read_is_listed_then_failed_saying_why(store, monkeypatch, capsys):
    started = starting_by_hand(monkeypatch)
    foreign, mine = enqueue(store, [CPU, CPU])
    made_by_another_version(store, foreign)
    why = "model 'foo' is not known to this version of scratch-tui"
    assert [(q.id, q.config, q.unreadable) for q in queued(store)] == [(foreign, None, why), (mine, CPU, "")]

    # the runner cannot train it, and left waiting it would keep the runner up for ever
    assert len(queue._start_what_fits(store)) == 1 and started == [mine]
    record = store.get_run(foreign)
    assert (record.status, record.message) == ("failed", f"this version of scratch-tui cannot train it: {why}")
    assert f"run {foreign} could not start: {why}" in capsys.readouterr().out
    assert queued(store) == []


def test_a_store_from_before_the_queue_upgrades_with_nothing_lost(tmp_path):
    path = tmp_path / "old"
    old_store(path, 2)
    db = sqlite3.connect(path / "runs.sqlite3")  # as the release before the queue left it: schema 3
    for statements in MIGRATIONS[2:3]:
        for statement in statements:
            statement(db) if callable(statement) else db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.commit()
    before = {run_id: db.execute("SELECT seq, name, data FROM run_events WHERE run_id = ? ORDER BY seq",
                                 (run_id,)).fetchall() for (run_id,) in db.execute("SELECT id FROM runs")}
    rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
    db.close()

    with RunStore(path) as store:
        db = sqlite3.connect(store.db_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        for run_id, log in before.items():
            assert db.execute("SELECT seq, name, data FROM run_events WHERE run_id = ? ORDER BY seq",
                              (run_id,)).fetchall() == log
        upgraded = db.execute("SELECT *, sweep_id, sweep_name, queue_order FROM runs ORDER BY id").fetchall()
        width = len(rows[0])
        assert [r[:width] for r in upgraded] == rows  # every column as it was
        assert {r[-3:] for r in upgraded} == {("", "", None)}  # in no sweep, never queued
        db.close()
        assert [r.state for r in store.list_runs()] == [RunState.FINISHED, RunState.STOPPED, RunState.FAILED]
        new = store.create_run(CPU)  # and the upgraded store records and queues as a new one does
        record_whole_run(store, new)
        assert store.get_run(new).status == "finished" and ids(queued(store)) == []
        assert ids(queued(store)) == [] and len(enqueue(store, [CPU])) == 1


def test_a_queued_run_is_not_resumed_from_under_the_queue(store):
    from tui_trainer.runs.spawn import resume_in_background
    from tui_trainer.runs.store import StoreError

    (run_id,) = enqueue(store, [CPU])
    assert not store.claim(run_id, os.getpid())
    with pytest.raises(StoreError, match=rf"^run {run_id} is queued, not stopped: the queue's runner starts it"):
        resume_in_background(store, run_id)
    assert ids(queued(store)) == [run_id]


def test_a_run_on_several_gpus_waits_for_each_of_them_and_then_holds_them_all(store, monkeypatch):
    started = starting_by_hand(monkeypatch)
    on_second = TrainConfig(epochs=1, device="cuda:1", max_train_samples=256)
    both = on_second.replace(device="cuda", gpus=2)  # its ranks take cuda:0 and cuda:1
    first, wide, last = enqueue(store, [on_second, both, on_second])
    queue._start_what_fits(store)
    assert started == [first]  # cuda:1 is taken: the two-GPU run waits, and so does the next one on cuda:1
    store.end_run(first, RunFinished(epochs_done=1, seconds=1.0))
    queue._start_what_fits(store)
    assert started == [first, wide] and ids(queued(store)) == [last]  # it holds cuda:1 now
    queue._start_what_fits(store)
    assert started == [first, wide]
