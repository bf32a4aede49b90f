"""Whether this machine can train a config as it asks, checked before a run is recorded or queued.

A config is valid on its own (engine/config.py); this says whether it fits here: the device it names, the GPUs
it wants, a CUDA-graph step without CUDA, and a model whose weights, gradients and optimizer state outgrow the
memory. A refusal now is one line and nothing recorded, where a run started anyway would fail in its log (or be
killed by the kernel for its memory).
"""

from __future__ import annotations

from typing import Iterable

import torch

from .config import ConfigError, TrainConfig
from .devices import DeviceError, cpu_memory_bytes, resolve_device
from .registry import DATASETS, MODELS

_FLOAT_BYTES = 4  # the weights, their gradients and the optimizer's state are kept in fp32 on every path
# copies of the parameters an optimizer keeps besides the weights and gradients (Adam: two moments)
_OPTIMIZER_COPIES = {"sgd": 1, "adam": 2, "adamw": 2}


def check_fits(configs: Iterable[TrainConfig]) -> None:
    """A ConfigError naming the field (device, gpus, step_mode, hidden) of the first config this machine cannot
    train as asked; nothing when all fit."""
    from .distributed import gpus_missing

    seen: set[tuple] = set()
    for config in configs:
        key = (config.device, config.gpus, config.step_mode, config.model, config.hidden, config.optimizer,
               config.dataset)
        if key in seen:  # a sweep's runs mostly differ in what does not matter here
            continue
        seen.add(key)
        try:
            device = resolve_device(config.device)
        except DeviceError as exc:
            raise ConfigError({"device": str(exc)}) from None
        if (missing := gpus_missing(config.gpus)) is not None:
            raise ConfigError({"gpus": missing})
        if config.step_mode == "cuda-graph" and device.type != "cuda":
            raise ConfigError({"step_mode": f"step_mode: cuda-graph needs a CUDA device, and this run would train on "
                                            f"{device}; choose --step-mode auto or eager"})
        if (too_big := _memory_problem(config, device)) is not None:
            raise ConfigError({"hidden": too_big})


def _memory_problem(config: TrainConfig, device: torch.device) -> str | None:
    """Why the MLP's hidden sizes cannot fit in `device`'s memory, or None (also when it cannot tell)."""
    if config.model not in MODELS.reading("hidden"):
        return None
    try:  # a dataset of the user's not converted yet has no known shape: nothing to estimate from
        spec = DATASETS.entry(config.dataset)
        image_shape, classes = tuple(spec.image_shape), len(spec.classes)
    except (LookupError, AttributeError, TypeError):
        return None
    sizes = [image_shape[0] * image_shape[1] * image_shape[2], *config.hidden, classes]
    parameters = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))
    # each layer's output and its gradient, for a whole batch
    activations = config.batch_size * sum(sizes) * 2
    needed = (parameters * (2 + _OPTIMIZER_COPIES.get(config.optimizer, 2)) + activations) * _FLOAT_BYTES
    memory = _memory_bytes(device)
    if memory is None or needed <= memory:
        return None
    return (f"hidden: a {'-'.join(map(str, sizes))} MLP has {parameters:,} parameters, about {needed / 2**30:,.1f} "
            f"GiB with their gradients, {config.optimizer}'s state and a batch's activations, more than the "
            f"{memory / 2**30:,.1f} GiB of {device}; choose smaller --hidden sizes")


def _memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    if device.type == "cpu":
        return cpu_memory_bytes()
    return None  # MPS shares the memory it reports nowhere
