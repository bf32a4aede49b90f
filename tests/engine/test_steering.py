"""Early stopping, restore_best and the plateau schedule: what the loop decides, and that a resume keeps it.

The runs overfit 200 images with a high constant lr: the validation loss falls for a few epochs and then
wanders up. Expectations are read off each run's own validation metrics, not hard-coded, so the tests
say what the rules are rather than what one torch build happened to compute.
"""

import copy

import pytest
import torch

from tui_trainer.engine.checkpoints import load_checkpoint, save_checkpoint
from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.engine.data import prepare
from tui_trainer.engine.evaluate import evaluate
from tui_trainer.engine.events import (BatchProgress, BestWeightsRestored, EarlyStopped, EpochEnded, EvaluationEnded,
                                       LearningRateChanged, RunFinished, RunState, RunStopped, event_from_dict,
                                       next_state)
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.engine.optim import plateau_cut

OVERFITS = TrainConfig(device="cpu", max_train_samples=200, batch_size=50, lr=0.01, schedule="constant",
                       label_smoothing=0, epochs=12)


@pytest.fixture(scope="module")
def data(mini_raw):
    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=200)


@pytest.fixture(scope="module")
def full(data):
    """OVERFITS trained to the end (no early stopping: patience 0 is off), with each epoch's weights."""
    return train(OVERFITS, data, keep_weights=True)


def train(config, data, keep_weights=False):
    """Every event, and (if asked) each epoch's weights as the loop left them at the epoch end."""
    run = TrainingRun(config, data=data, progress_seconds=0)
    events, weights = [], {}
    for event in run.events():
        events.append(event)
        if keep_weights and isinstance(event, EpochEnded):
            weights[event.epoch] = copy.deepcopy(run.model.state_dict())
    return run, events, weights


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


def metric(epoch, monitor):
    return epoch.val_loss if monitor == "val_loss" else epoch.val_acc


def first_stop(values, patience, lower_is_better):
    """(best epoch, epoch the rule stops after) by Keras's rule on a series of per-epoch values; None if never."""
    best, best_epoch = None, 0
    for epoch, value in enumerate(values, 1):
        if best is None or (value < best if lower_is_better else value > best):
            best, best_epoch = value, epoch
        elif epoch - best_epoch >= patience:
            return best_epoch, epoch
    return best_epoch, None


@pytest.mark.parametrize("monitor", ["val_loss", "val_acc"])
def test_early_stopping_stops_after_patience_epochs_without_improvement_then_evaluates(monitor, data, full):
    full = full[1]
    assert len(of(EpochEnded, full)) == OVERFITS.epochs and not of(EarlyStopped, full)  # patience 0: never
    _, events, _ = train(OVERFITS.replace(early_stopping=2, monitor=monitor), data)
    epochs = of(EpochEnded, events)
    best_epoch, stop_after = first_stop([metric(e, monitor) for e in of(EpochEnded, full)], 2, monitor == "val_loss")
    assert stop_after is not None and stop_after < OVERFITS.epochs  # the setup really plateaus
    assert [e.epoch for e in epochs] == list(range(1, stop_after + 1))
    assert [metric(e, monitor) for e in epochs] == [metric(e, monitor) for e in of(EpochEnded, full)][:stop_after]
    stopped = of(EarlyStopped, events)
    assert stopped == [EarlyStopped(epoch=stop_after, best_epoch=best_epoch, monitor=monitor,
                                    best_value=metric(epochs[best_epoch - 1], monitor), patience=2,
                                    step=epochs[-1].step)]
    # then still a test evaluation, and a finished run, not a stopped one
    names = [e.event_name for e in events]
    assert names[-3:] == ["early_stopped", "eval_end", "run_finished"]
    assert events[-1].epochs_done == stop_after and of(EvaluationEnded, events)[0].weights_epoch == stop_after
    state = RunState.STARTING
    for event in events:
        state = next_state(state, event)
    assert state is RunState.FINISHED
    assert event_from_dict(stopped[0].to_dict()) == stopped[0]


def test_restore_best_evaluates_the_best_epochs_weights_without_an_early_stop(data, full):
    """Keras #12511: restoring the best weights must not depend on stopping early."""
    run, events, _ = train(OVERFITS.replace(restore_best=True), data)
    weights = full[2]  # keeping a copy of the best changes nothing in the training: same weights each epoch
    epochs = of(EpochEnded, events)
    best = min(epochs, key=lambda e: e.val_loss).epoch
    assert len(epochs) == OVERFITS.epochs and best != OVERFITS.epochs  # the last epoch is not the best here
    assert of(BestWeightsRestored, events) == [BestWeightsRestored(epoch=best, monitor="val_loss",
                                                                   value=epochs[best - 1].val_loss,
                                                                   last_epoch=OVERFITS.epochs)]
    result = of(EvaluationEnded, events)[0]
    assert result.weights_epoch == best
    for epoch, expected in ((best, True), (OVERFITS.epochs, False)):
        run.model.load_state_dict(weights[epoch])
        again = evaluate(run.model, data.test_x, data.test_y, data.classes)
        assert (again.test_loss == result.test_loss and again.confusion == result.confusion) is expected


def test_restore_best_with_early_stopping_on_val_acc(data):
    run, events, weights = train(OVERFITS.replace(restore_best=True, early_stopping=2, monitor="val_acc"), data,
                                 keep_weights=True)
    stopped, restored = of(EarlyStopped, events)[0], of(BestWeightsRestored, events)[0]
    assert restored.epoch == stopped.best_epoch == max(of(EpochEnded, events), key=lambda e: e.val_acc).epoch
    assert restored.last_epoch == stopped.epoch
    assert all(torch.equal(v, weights[restored.epoch][k]) for k, v in run.model.state_dict().items())


def test_plateau_cuts_the_lr_after_its_patience_and_never_below_min_lr(data):
    config = OVERFITS.replace(schedule="plateau", plateau_patience=1, plateau_factor=0.1, min_lr=0.0005)
    run, events, _ = train(config, data)
    epochs, cuts = of(EpochEnded, events), of(LearningRateChanged, events)
    # Keras's ReduceLROnPlateau on this run's own val losses: a cut after `patience` epochs without a new best
    # (the wait starts again after a cut), tenfold, floored at min_lr, none once at the floor
    lr, best, wait, expected = 0.01, None, 0, []
    for e in epochs:
        assert e.lr == lr  # each epoch trains at the lr in force
        if best is None or e.val_loss < best:
            best, wait = e.val_loss, 0
            continue
        wait += 1
        if wait >= 1 and lr > 0.0005:
            expected.append((e.step, lr, max(lr * 0.1, 0.0005)))
            lr, wait = expected[-1][2], 0
    assert [(c.step, c.previous, c.lr) for c in cuts] == expected
    assert [c.lr for c in cuts] == [0.001, 0.0005]  # the second cut hits the floor, and no cut goes below it
    assert all(c.reason == "plateau" for c in cuts)
    names = [e.event_name for e in events]
    assert names[names.index("lr_changed") - 1] == "epoch_end"  # said right after the epoch that decided it
    assert run.optimizer.param_groups[0]["lr"] == 0.0005 and isinstance(events[-1], RunFinished)


def test_plateau_cut_is_a_floored_multiplication():
    assert plateau_cut(0.01, 0.5, 1e-6) == 0.005
    assert plateau_cut(1e-5, 0.1, 1e-5) == 1e-5  # at the floor: stays
    assert plateau_cut(1e-7, 0.1, 1e-6) == 1e-7  # set below the floor by a user: not raised to it


def test_a_set_lr_under_plateau_just_sets_it_and_cuts_continue_from_it(data):
    config = OVERFITS.replace(schedule="plateau", plateau_patience=1, min_lr=1e-6)
    run = TrainingRun(config, data=data, progress_seconds=0)
    events = []
    for event in run.events():
        events.append(event)
        if isinstance(event, BatchProgress) and event.step == 25:  # in epoch 7, before any cut
            run.control.set_lr(0.02)
    changes = of(LearningRateChanged, events)
    assert (changes[0].lr, changes[0].previous, changes[0].reason) == (0.02, 0.01, "")
    assert changes[1].reason == "plateau" and changes[1].previous == 0.02 and changes[1].lr == pytest.approx(0.002)
    assert of(EpochEnded, events)[6].lr == 0.02


STEERED = OVERFITS.replace(schedule="plateau", plateau_patience=1, early_stopping=3, restore_best=True,
                           epochs=30, augment="flip")


@pytest.fixture(scope="module")
def steered(data):
    run, events, _ = train(STEERED, data)
    return run, events


def resume_epoch(events):
    """An epoch end after the last best and the first cut, before the stop: every counter holds something,
    and the best weights exist only in the snapshot."""
    stopped, cuts = of(EarlyStopped, events), of(LearningRateChanged, events)
    assert stopped and cuts
    epoch = stopped[0].best_epoch + 1
    assert cuts[0].step <= of(EpochEnded, events)[epoch - 1].step and epoch < stopped[0].epoch
    return epoch


def outcome(run, events):
    """What must match bit for bit: the epochs' numbers, the decisions, the evaluation and the weights."""
    epochs = [(e.epoch, e.train_loss, e.val_loss, e.val_acc, e.lr, e.step) for e in of(EpochEnded, events)]
    decisions = of(LearningRateChanged, events) + of(EarlyStopped, events) + of(BestWeightsRestored, events)
    result = of(EvaluationEnded, events)[0]
    return epochs, decisions, (result.test_loss, result.confusion, result.weights_epoch), run.model.state_dict()


def resumed_after(epoch, data, through_file=None):
    """The run stopped at the end of `epoch` (as `runs control stop` stops it: at the next batch boundary) and
    continued from its snapshot there, in memory or through a checkpoint file."""
    first = TrainingRun(STEERED, data=data, progress_seconds=0)
    before = []
    for event in first.events():
        before.append(event)
        if isinstance(event, EpochEnded) and event.epoch == epoch:
            first.control.stop()
        if isinstance(event, RunStopped):
            if through_file:
                second = TrainingRun.from_checkpoint(save_checkpoint(through_file, first), data=data,
                                                     progress_seconds=0)
            else:
                second = TrainingRun(STEERED, data=data, progress_seconds=0)
                second.restore(copy.deepcopy(first.snapshot()))
    after = list(second.events())[1:]  # from its RunStarted on
    return second, before + after


def test_a_run_resumed_mid_plateau_stops_and_restores_exactly_as_an_uninterrupted_one(data, steered):
    run, events = steered
    second, resumed = resumed_after(resume_epoch(events), data)
    a, b = outcome(second, resumed), outcome(run, events)
    assert a[:3] == b[:3]
    assert all(torch.equal(a[3][k], b[3][k]) for k in b[3])


def test_a_checkpoint_file_carries_the_monitor(data, steered, tmp_path):
    """The monitor's numbers travel in the checkpoint's meta: early stopping and plateau resume exactly."""
    run, events = steered
    second, resumed = resumed_after(resume_epoch(events), data, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt").meta["monitor"]["metric"] == "val_loss"
    a, b = outcome(second, resumed), outcome(run, events)
    assert a[0] == b[0] and of(EarlyStopped, resumed) == of(EarlyStopped, events)
    assert of(LearningRateChanged, resumed) == of(LearningRateChanged, events)


def test_a_checkpoint_file_carries_the_best_weights(data, steered, tmp_path):
    """Resumed after its best epoch, the run can only evaluate that epoch's weights if the file kept them."""
    run, events = steered
    second, resumed = resumed_after(resume_epoch(events), data, tmp_path / "last.pt")
    assert outcome(second, resumed)[2] == outcome(run, events)[2]


@pytest.mark.parametrize("changes, field, words", [
    ({"early_stopping": -1}, "early_stopping", "0 turns early stopping off"),
    ({"monitor": "acc"}, "monitor", "choose one of val_loss, val_acc"),
    ({"early_stopping": 3, "val_split": 0}, "early_stopping", "needs a validation split: set --val-split above 0"),
    ({"restore_best": True, "val_split": 0}, "restore_best", "needs a validation split: set --val-split above 0"),
    ({"schedule": "plateau", "val_split": 0}, "schedule", "needs a validation split: set --val-split above 0"),
    ({"plateau_factor": 1.0}, "plateau_factor", "between 0 and 1, neither included"),
    ({"plateau_patience": 0}, "plateau_patience", "from 1 to"),
])
def test_bad_steering_settings_name_their_field(changes, field, words):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**changes)
    assert list(caught.value.errors) == [field]
    message = caught.value.errors[field]
    assert message.startswith(f"{field}: ") and words in message and "\n" not in message
