"""Real training on the bundled data: the models learn, events arrive in order, controls work."""

import json
import threading

import pytest

from tui_trainer.engine import TrainConfig, TrainingControl, TrainingRun, preset
from tui_trainer.engine.events import (BatchProgress, EpochEnded, EvaluationEnded, LearningRateChanged,
                                       RunFailed, RunFinished, RunPaused, RunUnpaused, RunStarted, RunStopped)


def run_all(config, data, control=None, **kwargs):
    return list(TrainingRun(config, control, data=data, **kwargs).events())


def final_eval(events):
    return next(e for e in events if isinstance(e, EvaluationEnded))


@pytest.mark.parametrize("model", ["scratch-mlp", "sequential-mlp"])
def test_mlps_learn_fashion_mnist_mini(model, mini_data):
    events = run_all(TrainConfig(model=model, epochs=3, device="cpu"), mini_data)
    assert isinstance(events[-1], RunFinished)
    result = final_eval(events)
    # chance is 10%; three epochs on 10,800 images reach the mid 80s
    assert result.test_acc > 80.0
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_cnn_learns(small_data):
    events = run_all(TrainConfig(model="cnn", epochs=2, device="cpu", max_train_samples=3000), small_data)
    assert final_eval(events).test_acc > 72.0


def test_kaiming_beats_the_tutorials_randn_init(small_data):
    tutorial = preset("tutorial").replace(epochs=2, device="cpu")
    fixed = tutorial.replace(init="kaiming")
    randn_acc = final_eval(run_all(tutorial, small_data)).test_acc
    kaiming_acc = final_eval(run_all(fixed, small_data)).test_acc
    assert kaiming_acc > randn_acc + 5


def test_event_order_and_content(small_data):
    config = TrainConfig(epochs=2, device="cpu", batch_size=32, probe_every=0)  # the probe's events: test_probe.py
    events = run_all(config, small_data, progress_seconds=0)
    names = [e.event_name for e in events]
    assert names[0] == "run_started" and names[-2:] == ["eval_end", "run_finished"]
    assert [n for n in names if n != "batch_progress"] == [
        "run_started", "epoch_end", "epoch_end", "eval_end", "run_finished"]

    started = events[0]
    assert isinstance(started, RunStarted)
    assert started.config == config
    assert (started.train_size, started.val_size, started.test_size) == (3000, 1200, 2000)
    assert started.classes[:2] == ["T-shirt/top", "Trouser"]
    assert started.steps_per_epoch == 94

    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert progress, "progress events must arrive during an epoch"
    assert all(0 < p.batch <= p.batches == 94 for p in progress)
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert all(0 <= p.acc <= 100 and p.loss > 0 and p.samples_per_s > 0 for p in progress)

    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [(e.epoch, e.epochs) for e in epochs] == [(1, 2), (2, 2)]
    for e in epochs:
        assert 0 < e.train_acc <= 100 and 0 < e.val_acc <= 100 and e.seconds > 0 and e.lr > 0

    result = final_eval(events)
    assert sum(map(sum, result.confusion)) == 2000
    assert len(result.per_class_acc) == 10
    diagonal = sum(result.confusion[i][i] for i in range(10))
    assert result.test_acc == pytest.approx(100 * diagonal / 2000)
    sample = result.samples[0]
    assert len(sample.image) == 1 and len(sample.image[0]) == 28 and len(sample.image[0][0]) == 28
    assert 0 < sample.confidence <= 1
    assert any(s.true_label != s.predicted_label for s in result.samples)

    for e in events:  # every event survives JSON
        assert json.loads(json.dumps(e.to_dict()))["event"] == e.event_name


def test_same_seed_same_metrics_and_different_seed_differs(small_data):
    config = TrainConfig(epochs=1, device="cpu")

    def metrics(cfg):
        return [(e.train_loss, e.val_acc) for e in run_all(cfg, small_data) if isinstance(e, EpochEnded)]

    assert metrics(config) == metrics(config)
    assert metrics(config) != metrics(config.replace(seed=1))


def test_validation_can_be_turned_off(mini_raw):
    import torch

    from tui_trainer.engine.data import prepare

    data = prepare(mini_raw, torch.device("cpu"), val_split=0, seed=0, max_train_samples=500)
    events = run_all(TrainConfig(epochs=1, device="cpu", val_split=0), data)
    epoch = next(e for e in events if isinstance(e, EpochEnded))
    assert epoch.val_loss is None and epoch.val_acc is None


def test_pause_resume_set_lr_and_stop_from_another_thread(small_data):
    control = TrainingControl()
    config = TrainConfig(epochs=50, device="cpu", batch_size=16, schedule="constant", probe_every=0)
    run = TrainingRun(config, control, data=small_data, progress_seconds=0)
    seen = []
    paused = threading.Event()

    def steer():
        control.pause()
        assert paused.wait(10)
        control.set_lr(0.0005)
        control.unpause()

    for event in run.events():
        seen.append(event)
        if isinstance(event, BatchProgress) and len(seen) == 3:
            threading.Thread(target=steer).start()
        if isinstance(event, RunPaused):
            paused.set()
        if isinstance(event, RunUnpaused):
            control.stop()

    names = [e.event_name for e in seen]
    assert "run_paused" in names and "run_resumed" in names
    assert names.index("run_paused") < names.index("lr_changed") < names.index("run_resumed")
    assert isinstance(seen[-1], RunStopped)
    assert seen[-1].epochs_done < 50
    assert "eval_end" not in names
    changed = next(e for e in seen if isinstance(e, LearningRateChanged))
    assert changed.lr == 0.0005
    assert run.lr == pytest.approx(0.0005)


def test_set_lr_rescales_the_schedule_from_the_new_value(small_data):
    from tui_trainer.engine.optim import lr_factor

    control = TrainingControl()
    run = TrainingRun(TrainConfig(epochs=2, device="cpu", schedule="cosine", batch_size=32), control, data=small_data,
                      progress_seconds=0)
    events = run.events()
    for event in events:
        if isinstance(event, BatchProgress) and event.step >= 30:
            control.set_lr(0.01)
            break
    changed = next(e for e in events if isinstance(e, LearningRateChanged))
    assert changed.lr == 0.01 and run.lr == pytest.approx(0.01)
    rest = list(events)
    last_epoch = [e for e in rest if isinstance(e, EpochEnded)][-1]
    expected = 0.01 / lr_factor("cosine", changed.step, run.total_steps) * lr_factor("cosine", last_epoch.step,
                                                                                       run.total_steps)
    assert last_epoch.lr == pytest.approx(expected)
    assert isinstance(rest[-1], RunFinished)


def test_stop_while_paused_ends_the_run(small_data):
    control = TrainingControl()
    run = TrainingRun(TrainConfig(epochs=20, device="cpu", probe_every=0), control, data=small_data,
                      progress_seconds=0)
    events = []
    for event in run.events():
        events.append(event)
        if isinstance(event, BatchProgress) and not control.paused and len(events) < 5:
            control.pause()
        if isinstance(event, RunPaused):
            threading.Timer(0.1, control.stop).start()
    assert isinstance(events[-1], RunStopped)


def test_non_finite_loss_fails_the_run_with_advice(small_data):
    config = preset("tutorial").replace(lr=10.0, epochs=3, device="cpu")
    events = run_all(config, small_data, progress_seconds=0)
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert "lower --lr" in failed.message
    assert "nan" in failed.message or "inf" in failed.message
    assert not any(isinstance(e, EvaluationEnded) for e in events)


def test_flip_augmentation_trains_and_changes_the_run(small_data):
    config = TrainConfig(epochs=1, device="cpu")
    plain = [e for e in run_all(config, small_data) if isinstance(e, EpochEnded)][0]
    flipped_events = run_all(config.replace(augment="flip"), small_data)
    flipped = [e for e in flipped_events if isinstance(e, EpochEnded)][0]
    assert flipped.train_loss != plain.train_loss
    assert final_eval(flipped_events).test_acc > 70
