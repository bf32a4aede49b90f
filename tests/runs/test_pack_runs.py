"""Packs in the run store: the queue forms them, one worker trains them, and each member stays a run of its own."""

import os

import pytest

from tui_trainer.engine.checkpoints import load_checkpoint
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.data import load_raw
from tui_trainer.engine.fits import pack_bytes
from tui_trainer.engine.registry import DATASETS
from tui_trainer.engine.events import RunFinished
from tui_trainer.runs import queue
from tui_trainer.runs.queue import QueueError, enqueue, form_packs, queued
from tui_trainer.runs.spawn import Spawned
from tui_trainer.runs.store import RunStore
from tui_trainer.runs import worker
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


WIDE = TINY.replace(hidden=(1024, 1024))  # 784*1024 + 1024*1024 + 1024*10 weights and 2,058 biases
WIDE_PARAMETERS = 1_863_690
GIB = 2**30


def test_the_estimate_of_a_packs_memory_counts_each_members_weights_and_data():
    # a member of a pack keeps its weights, gradients and AdamW's two moments, as alone, besides its rows of the
    # pack's stacked weights, gradients, moments and moving average: 9 copies, about all a wide MLP's share
    # (a second lr on the first one's seed shares its data)
    one = pack_bytes([WIDE])
    assert pack_bytes([WIDE, WIDE.replace(lr=0.01)]) - one == pytest.approx(WIDE_PARAMETERS * 4 * 9, rel=0.1)
    assert pack_bytes([WIDE.replace(ema=0.9)]) - one == WIDE_PARAMETERS * 4  # its own moving average besides
    # the data is known before it is loaded: the registry's image counts are the bundled set's
    raw = load_raw("fashion-mnist-mini")
    assert DATASETS.entry("fashion-mnist-mini").images == (len(raw.train_images), len(raw.test_images))
    # a second seed brings its own split (256 training, 1,200 validation and 2,000 test images of 28x28 floats)
    # and the pack's stack of both splits' training images; a second lr on the same seed shares the first's
    split = (256 + 1200 + 2000) * (784 * 4 + 8)
    shared, own = pack_bytes([WIDE, WIDE.replace(lr=0.01)]), pack_bytes([WIDE, WIDE.replace(seed=1)])
    assert own - shared == split + 2 * 256 * 784 * 4


def test_on_a_gpu_a_pack_holds_no_more_runs_than_fit_in_its_free_memory(store, monkeypatch):
    a, b, c, d, e = enqueue(store, [WIDE.replace(seed=s) for s in range(5)])
    narrow = enqueue(store, [TINY.replace(seed=s) for s in range(3)])
    waiting = queued(store)
    # on the CPU (no free figure) only the size caps a pack; so does a GPU with room to spare
    for free in (None, 8 * GIB):
        assert form_packs(waiting, 8, lambda device: free) == {a: [a, b, c, d, e], narrow[0]: narrow}
    # about 80 MB a wide member, and 10% and 1 GiB kept back: two fit in 1.33 GiB, and those left over pack
    # next; the narrow runs all fit
    assert form_packs(waiting, 8, lambda device: int(1.33 * GIB)) == {a: [a, b], c: [c, d], narrow[0]: narrow}
    assert form_packs(waiting, 8, lambda device: int(1.2 * GIB)) == {narrow[0]: narrow}  # each wide one alone

    # the runner asks the free memory of the GPU the pack would take, and starts the packs it forms
    packs, alone = [], []
    monkeypatch.setattr(queue, "_free_memory", lambda device, busy, limit: int(1.33 * GIB))
    monkeypatch.setattr(queue, "start_pack", lambda s, ids, device=None: packs.append(ids) or Spawned(ids[0], 1, ""))
    monkeypatch.setattr(queue, "start_queued", lambda s, i, device=None: alone.append(i) or Spawned(i, 1, ""))
    queue.set_per_device(store, 3)
    queue._start_what_fits(store)
    assert packs == [[a, b], [c, d]] and alone == [e]  # three slots taken

    # the pack's process (here in this one) trains them; each member's record names its pack and partner
    for run_id in (c, d):
        assert store.take_queued(run_id, os.getpid())
    store.log_path(c).parent.mkdir(exist_ok=True)  # as the runner's spawn makes it
    assert worker._work_pack(str(store.db_path), [c, d]) == 0
    assert store.view(c).pack == f"trained in pack {c} with 1 other run: {d}"
    assert store.view(d).pack == f"trained in pack {c} with 1 other run: {c}"


def _train_as_the_packs_process(store, ids):
    """What the runner's start_pack hands the pack's process (its worker, run here in this one)."""
    for run_id in ids:
        assert store.take_queued(run_id, os.getpid())
    store.log_path(ids[0]).parent.mkdir(exist_ok=True)  # as the runner's spawn makes it
    assert worker._work_pack(str(store.db_path), ids) == 0


def test_early_stopping_ends_that_member_and_the_pack_goes_on(store):
    # at an lr of 1e-9 its predictions, and so its val accuracy, cannot change: patience 1 is spent at epoch 2
    base = TINY.replace(epochs=3)
    still, plain = enqueue(store, [base.replace(lr=1e-9, monitor="val_acc", early_stopping=1), base.replace(seed=1)])
    _train_as_the_packs_process(store, [still, plain])
    stopped, trained = store.get_run(still), store.get_run(plain)
    assert stopped.status == "finished" and stopped.epochs_done == 2 and stopped.test_acc is not None
    early = [c.detail for c in store.view(still).changes if c.what == "early_stop"]
    assert len(early) == 1 and early[0].startswith("Early stop after epoch 2: val_acc has not improved for 1 epoch")
    assert trained.status == "finished" and trained.epochs_done == 3
    assert not [c for c in store.view(plain).changes if c.what == "early_stop"]


def test_a_studys_pruner_stops_its_trial_in_a_pack_and_the_pack_goes_on(store, tmp_path):
    optuna = pytest.importorskip("optuna")
    from tui_trainer.runs import study as study_module
    from tui_trainer.runs.sweep import SweepSpec

    data = {**{k: v for k, v in TINY.to_dict().items() if k in ("dataset", "device", "max_train_samples",
                                                                  "batch_size", "probe_every", "threads")},
            "epochs": 3, "monitor": "val_acc",
            "sweep": {"search": "tpe", "pruner": "asha", "samples": 3, "lr": {"log": [1e-4, 2e-4]}, "seed": [0]}}
    spec = SweepSpec.from_dict(data)
    link = study_module.open_link(store, spec, data, str(tmp_path / "s.journal"), "p")
    study = study_module.load(link).study
    for value in (80.0, 85.0):  # two earlier trials far ahead at epoch 1, as ASHA marks them
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, params={"lr": 1.5e-4}, value=value,
            distributions=study_module.distributions(spec), intermediate_values={1: value},
            user_attrs={"seed": 0, "planned": True}, system_attrs={"completed_rung_0": value}))
    [trial_run] = study_module.draw_trials(store, lambda config: True)
    # a plain queued run of the trial's shape packs with it
    [plain] = enqueue(store, [store.get_run(trial_run).train_config().replace(seed=1, lr=0.01, name="")])
    assert form_packs(queued(store), 8) == {trial_run: [trial_run, plain]}

    _train_as_the_packs_process(store, [trial_run, plain])
    pruned, trained = store.get_run(trial_run), store.get_run(plain)
    assert pruned.status == "stopped" and pruned.epochs_done == 1  # its stop acted before its second epoch
    assert store.view(trial_run).ended.reason == "pruned by asha at epoch 1"
    trial = next(t for t in study.get_trials() if t.user_attrs.get("run_id") == trial_run)
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    assert trained.status == "finished" and trained.epochs_done == 3
