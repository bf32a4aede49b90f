"""Packs in the run store: the queue forms them, one worker trains them, and each member stays a run of its own."""

import os

import pytest

from tui_trainer.engine.checkpoints import load_checkpoint
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import RunFinished
from tui_trainer.runs import queue
from tui_trainer.runs.queue import QueueError, enqueue, form_packs, queued
from tui_trainer.runs.spawn import Spawned
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.verify import verify_run
from tui_trainer.runs.worker import drive_pack, prepare_pack, train

TINY = TrainConfig(epochs=1, device="cpu", max_train_samples=256, batch_size=64, probe_every=0, threads=1)


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs") as s:
        yield s


def test_the_queue_packs_runs_of_one_shape_in_queue_order(store, monkeypatch):
    a, b, other, c, d = enqueue(store, [TINY, TINY.replace(seed=1, lr=0.01), TINY.replace(batch_size=32),
                                        TINY.replace(weight_decay=0, label_smoothing=0), TINY.replace(seed=5)])
    waiting = queued(store)
    assert form_packs(waiting, 8) == {a: [a, b, c, d]}
    assert form_packs(waiting, 3) == {a: [a, b, c]}  # d has no partner left: it trains alone
    assert form_packs(waiting, 1) == {}
    with pytest.raises(QueueError, match=r"pack: got 0; must be a whole number of runs, 1 or more"):
        queue.set_pack_size(store, 0)

    packs, alone = [], []
    monkeypatch.setattr(queue, "start_pack", lambda s, ids, device=None: packs.append(ids) or Spawned(ids[0], 1, ""))
    monkeypatch.setattr(queue, "start_queued", lambda s, i, device=None: alone.append(i) or Spawned(i, 1, ""))
    queue.set_per_device(store, 2)
    queue.set_pack_size(store, 2)
    queue._start_what_fits(store)
    assert packs == [[a, b]] and alone == [other]  # a pack takes one slot of the device, as one run does


def test_a_packs_members_are_runs_of_their_own_and_one_resumes_alone(store):
    ids = enqueue(store, [TINY, TINY.replace(seed=1, lr=0.01, ema=0.9)])
    for run_id in ids:  # as the runner hands them to the pack's process
        assert store.take_queued(run_id, os.getpid())
    runs = prepare_pack(store, ids)
    ended = drive_pack(runs, store, name=ids[0])
    assert all(isinstance(e, RunFinished) for e in ended)
    for run_id, other in zip(ids, reversed(ids)):
        record = store.get_run(run_id)
        assert record.status == "finished" and record.epochs_done == 1 and record.test_acc > 40
        view = store.view(run_id)
        assert view.pack == f"trained in pack {ids[0]} with 1 other run: {other}"
        assert f"Trained in pack {ids[0]} with 1 other run: {other}" in view.log
        checkpoint = load_checkpoint(record.last_checkpoint)
        assert (checkpoint.run_id, checkpoint.epoch, checkpoint.config.seed) == (run_id, 1, record.config["seed"])
        assert ("ema" in checkpoint.state) == (record.config["ema"] > 0)  # the moving average, kept alongside
    assert store.get_run(ids[0]).test_acc != store.get_run(ids[1]).test_acc
    # trained again alone (`runs verify`), a member's recorded losses come back bit for bit
    verified = verify_run(store, ids[0])
    assert verified.reproduced and verified.tolerance == 0.0 and verified.compared

    # resumed after the pack ended, a member trains alone from its own checkpoint
    ended = train(store, ids[1], epochs=2)
    record = store.get_run(ids[1])
    assert isinstance(ended.final, RunFinished) and record.epochs_done == 2
    assert store.view(ids[1]).pack.startswith("trained in pack")  # its record still says so
