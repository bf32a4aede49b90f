"""Whether this machine can train a config as it asks, checked before a run is recorded or queued, and how much
device memory a run (or a pack of runs) takes as it trains.

A config is valid on its own (engine/config.py); this says whether it fits here: the device it names, the GPUs
it wants, a CUDA-graph step without CUDA, and a model whose weights, gradients and optimizer state outgrow the
memory. A refusal now is one line and nothing recorded, where a run started anyway would fail in its log (or be
killed by the kernel for its memory). The queue's runner asks `pack_fits` how many runs of one shape a GPU's free
memory holds as one pack (runs/queue.py).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from .config import ConfigError, TrainConfig
from .devices import DeviceError, cpu_memory_bytes, resolve_device
from .registry import DATASETS, MODELS, resolve

_FLOAT_BYTES = 4  # the weights, their gradients and the optimizer's state are kept in fp32 on every path
_LABEL_BYTES = 8  # int64
# copies of the parameters an optimizer keeps besides the weights and gradients (Adam: two moments)
_OPTIMIZER_COPIES = {"sgd": 1, "adam": 2, "adamw": 2}
# Of a GPU's free memory, what a pack may plan to take: the rest is for what the estimate leaves out (the pack
# process's own CUDA context, cuBLAS and cuDNN workspaces, the allocator's rounding).
_PACK_SHARE, _PROCESS_BYTES = 0.9, 2**30


def check_fits(configs: Iterable[TrainConfig]) -> None:
    """A ConfigError naming the field (device, gpus, step_mode, hidden) of the first config this machine cannot
    train as asked; nothing when all fit."""
    from .distributed import gpus_missing

    seen: set[tuple] = set()
    for config in configs:
        key = (config.device, config.gpus, config.step_mode, config.model, config.hidden, config.optimizer,
               config.dataset, config.ema > 0, config.batch_size, config.precision)
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
    memory = _memory_bytes(device)
    weights = _model_footprint(config, device, activations=False)
    if memory is None or weights is None:
        return None
    spec = DATASETS.entry(config.dataset)
    sizes = [math.prod(spec.image_shape), *config.hidden, len(spec.classes)]
    # an MLP's layer outputs and their gradients, a batch of each size, in fp32 at most: where the weights with
    # that leave half the memory, nothing is traced, since tracing a batch on the meta device imports torch's
    # compiler (1.2 s of CPU) in every run
    most = weights[0] * _weight_copies(config) * _FLOAT_BYTES + config.batch_size * sum(sizes) * 2 * _FLOAT_BYTES
    if most <= memory / 2:
        return None
    found = _model_footprint(config, device)
    if found is None:
        return None
    parameters, activations = found
    needed = parameters * _weight_copies(config) * _FLOAT_BYTES + activations
    if needed <= memory:
        return None
    average = ", the moving average" if config.ema > 0 else ""
    return (f"hidden: a {'-'.join(map(str, sizes))} MLP has {parameters:,} parameters, about {needed / 2**30:,.1f} "
            f"GiB with their gradients{average}, {config.optimizer}'s state and a batch's activations, more than "
            f"the {memory / 2**30:,.1f} GiB of {device}; choose smaller --hidden sizes")


def _memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    if device.type == "cpu":
        return cpu_memory_bytes()
    return None  # MPS shares the memory it reports nowhere


# -- the estimate --------------------------------------------------------------------------------------------------
def _weight_copies(config: TrainConfig, packed: bool = False) -> int:
    """Copies of its weights a run keeps on its device: the weights, their gradients, the optimizer's state and
    the moving average where it keeps one (`ema`). A pack's member keeps its own set (set up as a run alone)
    besides its rows of the pack's stacks: weights, gradients, optimizer state and an average row every member
    has (engine/pack.py)."""
    optimizer = _OPTIMIZER_COPIES.get(config.optimizer, 2)
    alone = 2 + optimizer + (config.ema > 0)
    return alone + 3 + optimizer if packed else alone


def _model_footprint(config: TrainConfig, device: torch.device, activations: bool = True) -> tuple[int, int] | None:
    """(parameters, bytes of one batch's layer outputs and their gradients) of the config's model, built on the
    meta device (no memory, no time); without `activations`, the bytes are not traced (0). None for a model whose
    layers are not known (no registry `layers`) or a dataset whose image shape is not known before loading."""
    from .step import choose_path

    try:
        spec = DATASETS.entry(config.dataset)
        image_shape, classes = tuple(int(n) for n in spec.image_shape), len(spec.classes)
        entry = MODELS.entry(config.model)
    except (LookupError, AttributeError, TypeError, ValueError):
        return None
    if entry.layers is None or not all(image_shape) or not classes:
        return None
    try:
        with torch.device("meta"), torch.no_grad():
            model = entry.build(config, image_shape, classes)
            if not activations:
                return sum(p.numel() for p in model.parameters()), 0
            h = torch.empty(config.batch_size, *image_shape)
            outputs = 0
            for layer in resolve(entry.layers)(model):
                h = layer(h)
                outputs += h.numel()
    except Exception:  # a model that cannot be built or run on the meta device: nothing to estimate from
        return None
    # the input batch is fp32; the layers' outputs are bf16 where the step autocasts
    width = 2 if choose_path(config, device).bf16 else _FLOAT_BYTES
    input_bytes = config.batch_size * math.prod(image_shape) * _FLOAT_BYTES
    return sum(p.numel() for p in model.parameters()), input_bytes + outputs * 2 * width


def _split_sizes(config: TrainConfig) -> tuple[int, int, int, int]:
    """(training, validation, test images, floats an image) of the run's data on its device; zeros where the
    dataset's size is not known before loading (engine/data.py `prepare` makes these)."""
    try:
        spec = DATASETS.entry(config.dataset)
        train, test = spec.images
        pixels = math.prod(spec.image_shape)
    except (LookupError, AttributeError, TypeError, ValueError):
        return 0, 0, 0, 0
    validation = int(round(train * config.val_split))
    kept = train - validation
    if config.max_train_samples:
        kept = min(kept, config.max_train_samples)
    return kept, validation, test, pixels


def pack_bytes(configs: list[TrainConfig]) -> int | None:
    """About how many bytes of a GPU `configs` (of one shape: engine/pack_shape.py) take, trained as one pack:
    each member's weights and their copies (`_weight_copies`), a batch's activations for its own step and its
    share of the pack's, and the data: one split per distinct seed, stacked again where the pack has several
    (engine/pack.py). None where the model's size is not known before it is built."""
    cuda = torch.device("cuda")  # a pack's memory caps it only on a GPU; asking about one touches no GPU
    found = _model_footprint(configs[0], cuda)
    if found is None:
        return None
    parameters, activations = found
    from .step import choose_path

    # on the graph path each member also keeps its own captured step, with its own batch's activations
    steps = 2 if choose_path(configs[0], cuda).graph else 1
    needed = sum(parameters * _weight_copies(c, packed=True) * _FLOAT_BYTES + activations * steps for c in configs)
    splits = {(c.seed, c.val_split, c.max_train_samples): _split_sizes(c) for c in configs}
    for train, validation, test, pixels in splits.values():
        needed += (train + validation + test) * (pixels * _FLOAT_BYTES + _LABEL_BYTES)
        if len(splits) > 1:  # the pack's own stack of the members' training images
            needed += train * pixels * _FLOAT_BYTES
    needed += sum(_split_sizes(c)[0] for c in configs) * _LABEL_BYTES  # the pack's stack of labels, a row each
    return needed


def pack_fits(configs: list[TrainConfig], free_bytes: int) -> bool:
    """Whether `configs` trained as one pack fit in a GPU's `free_bytes`, with room to spare for what the estimate
    leaves out. One run always fits here: it trains alone, as it would outside a pack."""
    if len(configs) <= 1:
        return True
    needed = pack_bytes(configs)
    return needed is None or needed <= free_bytes * _PACK_SHARE - _PROCESS_BYTES
