"""Optimizers and learning-rate schedules, chosen by name in TrainConfig."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """`cls` with torch's own methods as written, outside the guards that keep torch.compile from tracing into
    them. Each guard imports torch._dynamo on its first call: 1.2 s of CPU in every training process, as much again
    as importing torch, for a compiler that no step here runs under. Outside torch.compile the guards change
    nothing but the grad mode of `step`, kept here as torch keeps it. A torch whose guards no longer say what they
    wrap gets `cls` itself: slower to start, the same numbers."""
    inner = {name: getattr(getattr(cls, name), "__wrapped__", None) for name in (*_GUARDED, "step")}
    if None in inner.values():
        return cls
    inner_step = inner.pop("step")

    def step(self: torch.optim.Optimizer, closure: object = None) -> object:
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return inner_step(self, closure)

    return type(cls.__name__, (cls,), {**inner, "step": step, "__module__": __name__})


SGD, Adam, AdamW = eager(torch.optim.SGD), eager(torch.optim.Adam), eager(torch.optim.AdamW)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                   weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


ONECYCLE_WARMUP = 0.3  # fraction of steps spent warming up, as torch's OneCycleLR
ONECYCLE_START = 1 / 25  # starting lr as a fraction of the peak
ONECYCLE_END = 1e-4  # final lr as a fraction of the peak


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier on the base learning rate at `step` (0-based) of `total_steps`.

    A plain function of the step, so a schedule needs no state to checkpoint and
    a mid-run learning-rate change only rescales the base.
    """
    t = min(step / max(total_steps, 1), 1.0)
    if schedule in ("constant", "plateau"):  # plateau's cuts are state the loop keeps, not a function of the step
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "onecycle":
        if t < ONECYCLE_WARMUP:
            rise = (1.0 - math.cos(math.pi * t / ONECYCLE_WARMUP)) / 2
            return ONECYCLE_START + (1.0 - ONECYCLE_START) * rise
        fall = (1.0 + math.cos(math.pi * (t - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP))) / 2
        return ONECYCLE_END + (1.0 - ONECYCLE_END) * fall
    raise ValueError(f"unknown schedule {schedule!r}")


def plateau_cut(lr: float, factor: float, min_lr: float) -> float:
    """ReduceLROnPlateau's cut: lr times factor, never below min_lr; an lr already at or below the floor
    (a user may set one) stays where it is."""
    return max(lr * factor, min_lr) if lr > min_lr else lr
