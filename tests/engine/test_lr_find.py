"""The learning-rate range test: its ramp, its curve, its early stop, its suggestion, and that it changes no run."""

import math

import pytest
import torch

from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.engine.data import prepare
from tui_trainer.engine.lr_find import LrFindProgress, LrFindResult, check_range, find_lr, lr_at, suggest

CONFIG = TrainConfig(device="cpu", max_train_samples=3000)


@pytest.fixture(scope="module")
def data(mini_raw):
    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=3000)


def run(data, config=CONFIG, **kwargs):
    items = list(find_lr(config, data=data, **kwargs))
    assert all(isinstance(i, LrFindProgress) for i in items[:-1]) and isinstance(items[-1], LrFindResult)
    return items[:-1], items[-1]


@pytest.fixture(scope="module")
def default_range(data):
    return run(data, start_lr=1e-5, end_lr=1.0, steps=100)


def test_the_loss_falls_then_rises_and_the_suggestion_lies_before_the_minimum(default_range):
    progress, result = default_range
    assert [p.step for p in progress] == list(range(1, len(result.lrs) + 1)) and progress[-1].steps == 100
    assert result.lrs[0] == pytest.approx(1e-5) and all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    low = min(range(len(result.losses)), key=result.losses.__getitem__)
    assert 0 < low < len(result.losses) - 1  # a valley inside the range, not at an end
    assert result.losses[low] < 0.8 * result.losses[0] and result.losses[-1] > 1.2 * result.losses[low]
    assert result.min_loss_lr == result.lrs[low]
    assert result.suggestion == pytest.approx(result.lrs[low] / 10)
    assert 1e-5 <= result.suggestion <= 1.0


def test_it_stops_early_once_the_loss_diverges(data):
    # SGD with momentum blows up past an lr of 1 or so (Adam's normalized steps may only saturate)
    progress, result = run(data, CONFIG.replace(optimizer="sgd"), start_lr=1e-4, end_lr=10.0, steps=100)
    assert result.stopped_early and len(result.lrs) < 100
    assert result.losses[-1] > 4 * min(result.losses)  # that is why it stopped
    assert all(loss <= 4 * min(result.losses[:i + 1]) for i, loss in enumerate(result.losses[:-1]))
    assert 1e-4 <= result.suggestion < result.lrs[-1]


def test_it_trains_a_copy_and_the_same_config_trains_as_before(data):
    from tui_trainer.engine.loop import TrainingRun

    def first_epoch():
        run = TrainingRun(CONFIG.replace(epochs=1), data=data, progress_seconds=0)
        return [e for e in run.events() if e.event_name == "epoch_end"][0].train_loss

    before = first_epoch()
    run(data, steps=10)
    assert first_epoch() == before


def test_the_ramp_is_exponential_from_start_to_end():
    assert lr_at(0, 200, 1e-6, 1.0) == pytest.approx(1e-6)
    assert lr_at(199, 200, 1e-6, 1.0) == pytest.approx(1.0)
    assert lr_at(100, 201, 1e-6, 1.0) == pytest.approx(1e-3)  # the middle step, the middle decade


def test_a_minimum_in_the_first_decade_suggests_no_lower_than_the_start():
    assert suggest([1e-6, 1e-5, 1e-4], [1.0, 2.0, 3.0], 1e-6) == (1e-6, 1e-6)


@pytest.mark.parametrize("start, end, steps, field", [
    (1.0, 0.1, 100, "start_lr"), (0.1, 0.1, 100, "start_lr"), (0.0, 1.0, 100, "start_lr"),
    (1e-6, -1.0, 100, "end_lr"), (1e-6, math.inf, 100, "end_lr"), (1e-6, 1.0, 9, "steps"),
])
def test_an_empty_or_inverted_range_or_too_few_steps_name_the_field(start, end, steps, field):
    with pytest.raises(ConfigError) as caught:
        check_range(start, end, steps)
    assert list(caught.value.errors) == [field] and caught.value.errors[field].startswith(f"{field}: ")
