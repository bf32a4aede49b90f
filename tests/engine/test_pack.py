"""Packs (engine/pack.py): each member's numbers equal the same run trained alone, and each is steered alone."""

import pytest
import torch

from tui_trainer.engine import TrainConfig, TrainingRun
from tui_trainer.engine.events import (EpochEnded, EvaluationEnded, LearningRateChanged, RunFinished, RunPaused,
                                       RunStarted, RunStopped, TERMINAL_EVENTS)
from tui_trainer.engine.pack import Pack, pack_key, shared_data

cuda = pytest.mark.cuda


def _train(configs, **kwargs):
    """Each config alone, then all of them as one pack: their events, side by side."""
    data = shared_data(configs)
    alone = [list(TrainingRun(c, data=d, **kwargs).events()) for c, d in zip(configs, data)]
    runs = [TrainingRun(c, data=d, **kwargs) for c, d in zip(configs, data)]
    together = {id(r): [] for r in runs}
    for run, event in Pack(runs, name="p").events():
        together[id(run)].append(event)
    return alone, [together[id(r)] for r in runs]


def _assert_same_numbers(alone, packed):
    for lone, member in zip(alone, packed):
        assert isinstance(member[-1], RunFinished), member[-1]
        lone_epochs = [e for e in lone if isinstance(e, EpochEnded)]
        member_epochs = [e for e in member if isinstance(e, EpochEnded)]
        assert len(member_epochs) == len(lone_epochs) == 2
        for a, b in zip(lone_epochs, member_epochs):
            for field in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "ema_val_loss", "ema_val_acc"):
                assert getattr(b, field) == pytest.approx(getattr(a, field), abs=1e-4), (field, a.epoch)
        lone_test = [e.test_acc for e in lone if isinstance(e, EvaluationEnded)]
        assert [e.test_acc for e in member if isinstance(e, EvaluationEnded)] == pytest.approx(lone_test, abs=1e-4)
    last = [[e for e in p if isinstance(e, EpochEnded)][-1].val_loss for p in packed]
    assert len({round(v, 6) for v in last}) == len(packed)  # the members really differ


def _mlp_configs(device):
    base = TrainConfig(epochs=2, device=device, max_train_samples=1024, batch_size=100, probe_every=0, threads=1)
    return [base, base.replace(seed=1, lr=0.01, weight_decay=0.0, label_smoothing=0.0),
            base.replace(seed=2, schedule="cosine", init="randn", augment="flip", ema=0.9)]


def _cnn_configs(device):
    base = TrainConfig(model="cnn", epochs=2, device=device, max_train_samples=128, batch_size=64, probe_every=0,
                       threads=1, val_split=0.01, precision="fp32", step_mode="eager")
    return [base, base.replace(seed=1, optimizer="adamw", lr=0.002, augment="flip")]


def test_a_pack_members_numbers_equal_the_runs_trained_alone_mlp_and_cnn_sgd():
    alone, packed = _train(_mlp_configs("cpu"))
    _assert_same_numbers(alone, packed)
    # the third keeps a moving average of its weights, validated each epoch (and equal to its own alone's)
    assert [e.ema_val_acc is not None for e in packed[2] + packed[0] if isinstance(e, EpochEnded)] == [1, 1, 0, 0]
    # the CNN (batch norm, dropout masks from each member's seed), with SGD and momentum: each its own
    sgd = [c.replace(optimizer="sgd", lr=0.02) for c in _cnn_configs("cpu")]
    sgd[1] = sgd[1].replace(momentum=0.5, weight_decay=0.0)
    alone, packed = _train(sgd, evaluate_at_end=False)  # the CNN on 2,000 test images: slow on 2 cores
    _assert_same_numbers(alone, packed)
    started = packed[0][0]
    assert isinstance(started, RunStarted) and started.pack_line().startswith("trained in pack p with 1 other run")


@cuda
def test_a_pack_members_numbers_equal_the_runs_trained_alone_on_cuda():
    for configs in (_mlp_configs("cuda"), _cnn_configs("cuda")):
        alone, packed = _train(configs)
        _assert_same_numbers(alone, packed)


@cuda
def test_a_packs_memory_on_a_gpu_stays_within_its_estimate():
    """The queue caps a pack by engine/fits.py's estimate: it must not fall short of what the pack takes by more
    than the tenth of free memory the cap keeps back, nor be so far over that packs are cut for nothing."""
    from tui_trainer.engine.fits import pack_bytes

    configs = [TrainConfig(epochs=1, device="cuda", hidden=(1024, 1024), max_train_samples=2048, batch_size=128,
                           probe_every=0, seed=s, ema=0.9 * (s % 2)) for s in range(4)]
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    data = shared_data(configs)
    runs = [TrainingRun(c, data=d) for c, d in zip(configs, data)]
    ended = [e for _, e in Pack(runs).events() if isinstance(e, TERMINAL_EVENTS)]
    assert len(ended) == 4 and all(isinstance(e, RunFinished) for e in ended)
    peak = torch.cuda.max_memory_allocated() - before
    assert pack_bytes(configs) / 4 < peak <= pack_bytes(configs) * 1.1


def test_who_packs_with_whom():
    base = TrainConfig(device="cpu")
    assert pack_key(base) == pack_key(base.replace(seed=3, lr=0.1, weight_decay=0, momentum=0.5, init="randn",
                                                   label_smoothing=0, schedule="cosine", augment="flip"))
    for other in (base.replace(batch_size=64), base.replace(epochs=3), base.replace(hidden=(32,)),
                  base.replace(model="cnn"), base.replace(optimizer="sgd")):
        assert pack_key(other) != pack_key(base)


def test_steering_one_member_leaves_the_others_alone():
    """Stop one member, pause another and set the third's lr: the stopped one ends, the paused one's weights freeze
    while the third trains on at its new lr, and once let go the paused one trains to its end."""
    configs = [TrainConfig(epochs=2, device="cpu", max_train_samples=512, batch_size=64, probe_every=0, seed=s,
                           threads=1) for s in range(3)]
    data = shared_data(configs)
    runs = [TrainingRun(c, data=d) for c, d in zip(configs, data)]
    pack = Pack(runs)
    ended, frozen, changed = {}, None, []
    for run, event in pack.events():
        if run is runs[2] and isinstance(event, EpochEnded) and event.epoch == 1:
            runs[0].control.stop()
            runs[1].control.pause()
            runs[2].control.set_lr(0.0005)
        if isinstance(event, LearningRateChanged):
            changed.append((run, event.lr))
            assert runs[2].lr == 0.0005 and runs[1].lr != 0.0005  # that member's lr alone
        if isinstance(event, RunPaused):
            frozen = (runs[1].step, runs[1].snapshot()["model"]["layers.0.weight"].clone())
        if isinstance(event, (RunFinished, RunStopped)):
            ended[id(run)] = event
            if run is runs[2]:
                assert runs[1].step == frozen[0]  # paused all along the third's second epoch
                assert torch.equal(runs[1].snapshot()["model"]["layers.0.weight"], frozen[1])
                runs[1].control.unpause()
    assert isinstance(ended[id(runs[0])], RunStopped) and ended[id(runs[0])].epochs_done == 1
    assert isinstance(ended[id(runs[1])], RunFinished) and ended[id(runs[1])].epochs_done == 2
    assert isinstance(ended[id(runs[2])], RunFinished)
    assert changed == [(runs[2], 0.0005)]
