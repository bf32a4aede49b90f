"""The learning-rate range test (Leslie Smith, 2015; fastai's lr_find): which lr to train with.

    for item in find_lr(config):
        if isinstance(item, LrFindProgress): ...   # one per step, to show how far it got
    result = item                                   # the last item is the LrFindResult

A fresh copy of the config's model (same seed, same init) trains on the config's data with its
optimizer and loss, while the lr rises exponentially from `start_lr` to `end_lr`, one step per
mini-batch. The loss is smoothed (an exponential moving average with bias correction), and the
test stops early once the smoothed loss passes 4 times the best: past that point it only diverges.
Nothing here touches a run: no events, no store, no checkpoint.

The suggestion is the lr at the smoothed loss's minimum, divided by 10. The other common choice, the
lr where the smoothed loss falls most steeply, reads a derivative off a noisy curve and on a flat
start it picks the noise; the minimum is robust, and a tenth of it is the "an order of magnitude
before the loss blows up" rule that Smith and fastai (`lr_min`) give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from .config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from .data import DeviceData, DownloadProgress

START_LR, END_LR, STEPS = 1e-6, 1.0, 200
MIN_STEPS, MAX_STEPS = 10, 100_000
SMOOTHING = 0.98  # weight of the past in the loss's moving average, as fastai
DIVERGED = 4.0  # stop once the smoothed loss is this many times the best


@dataclass(frozen=True)
class LrFindProgress:
    step: int  # steps done
    steps: int  # steps asked for (the test may stop before)
    lr: float
    loss: float  # smoothed


@dataclass(frozen=True)
class LrFindResult:
    lrs: list[float]  # one per step taken
    losses: list[float]  # the smoothed loss after each step
    suggestion: float
    stopped_early: bool  # the loss diverged before end_lr
    min_loss_lr: float  # where the smoothed loss was lowest; the suggestion is a tenth of it
    raw_losses: list[float] = field(default_factory=list)


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """ConfigError naming start_lr, end_lr or steps when the range test cannot run as asked."""
    errors: dict[str, str] = {}
    if not (math.isfinite(start_lr) and 0 < start_lr <= 10):
        errors["start_lr"] = f"start_lr: got {start_lr!r}; must be a number greater than 0 and at most 10"
    if not (math.isfinite(end_lr) and 0 < end_lr <= 10):
        errors["end_lr"] = f"end_lr: got {end_lr!r}; must be a number greater than 0 and at most 10"
    elif "start_lr" not in errors and start_lr >= end_lr:
        errors["start_lr"] = (f"start_lr: got {start_lr:g} with end_lr {end_lr:g}; the range is empty or inverted: "
                              f"start_lr must be below end_lr")
    if not (isinstance(steps, int) and MIN_STEPS <= steps <= MAX_STEPS):
        errors["steps"] = f"steps: got {steps!r}; must be a whole number from {MIN_STEPS} to {MAX_STEPS}"
    if errors:
        raise ConfigError(errors)


def lr_at(step: int, steps: int, start_lr: float, end_lr: float) -> float:
    """The exponential ramp: start_lr at step 0, end_lr at the last step."""
    return start_lr * (end_lr / start_lr) ** (step / max(steps - 1, 1))


def suggest(lrs: list[float], losses: list[float], start_lr: float) -> tuple[float, float]:
    """(suggestion, lr at the minimum): a tenth of the lr where the smoothed loss is lowest, never below start_lr."""
    best = min(range(len(losses)), key=losses.__getitem__)
    return max(lrs[best] / 10, start_lr), lrs[best]


def find_lr(config: TrainConfig, start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS,
            data: DeviceData | None = None,
            download_progress: DownloadProgress | None = None) -> Iterator[LrFindProgress | LrFindResult]:
    """Yield progress after every step, then the result; raises ConfigError, DeviceError or DatasetUnavailable
    before the first step."""
    # torch only here, where the test runs: `lr-find --help` shows this module's defaults without waiting for it
    import torch
    import torch.nn.functional as F

    from .data import load_raw, prepare
    from .devices import resolve_device
    from .models import build_model
    from .optim import build_optimizer
    from .step import choose_path, set_lr

    check_range(start_lr, end_lr, steps)
    device = resolve_device(config.device)
    if data is None:
        raw = load_raw(config.dataset, config.data_dir, download_progress, config=config)
        data = prepare(raw, device, config.val_split, config.seed, config.max_train_samples)
    path = choose_path(config, device)  # bf16 where the run would use it; eager steps, no graph to capture
    torch.manual_seed(config.seed)
    model = build_model(config, data.image_shape, len(data.classes)).to(device)
    optimizer = build_optimizer(model, config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model.train()

    x, y, batch_size = data.train_x, data.train_y, min(config.batch_size, len(data.train_y))
    order, position = torch.empty(0, dtype=torch.long, device=device), 0
    lrs: list[float] = []
    raw_losses: list[float] = []
    losses: list[float] = []
    average, best, stopped_early = 0.0, math.inf, False
    for step in range(steps):
        if position + batch_size > len(order):  # a new pass over the images, in a new order
            order, position = torch.randperm(len(y), device=device, generator=generator), 0
        idx = order[position:position + batch_size]
        position += batch_size
        lr = lr_at(step, steps, start_lr, end_lr)
        set_lr(optimizer, lr)
        with path.autocast(device):
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # One host sync a step: the stop test needs every loss, and a few hundred steps cost little.
        value = loss.item()
        if not math.isfinite(value):
            stopped_early = True
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (step + 1))  # bias correction: early averages lean to 0
        lrs.append(lr)
        raw_losses.append(value)
        losses.append(smoothed)
        best = min(best, smoothed)
        yield LrFindProgress(step=step + 1, steps=steps, lr=lr, loss=smoothed)
        if step > 0 and smoothed > DIVERGED * best:
            stopped_early = True
            break
    if not losses:  # the very first step was not finite
        raise ConfigError({"start_lr": f"start_lr: the loss was not finite at {start_lr:g}; start lower"})
    suggestion, min_loss_lr = suggest(lrs, losses, start_lr)
    yield LrFindResult(lrs=lrs, losses=losses, suggestion=suggestion, stopped_early=stopped_early,
                       min_loss_lr=min_loss_lr, raw_losses=raw_losses)
