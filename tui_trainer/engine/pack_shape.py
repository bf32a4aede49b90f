"""Who packs with whom (engine/pack.py), without torch: the queue runner forms packs and needs no more.

Configs pack together when everything but MEMBER_FIELDS is equal; each member keeps its own of those.
"""

from __future__ import annotations

import json

from .config import TrainConfig
from .registry import MODELS

# What members of one pack may differ in: each is a number per member in the stacked step, or decides only when
# a member stops or what it records. Everything else (model and its settings, dataset, batch size, epochs, device,
# optimizer, ...) is the pack's.
MEMBER_FIELDS = ("seed", "lr", "weight_decay", "momentum", "init", "label_smoothing", "schedule", "augment",
                 "plateau_patience", "plateau_factor", "min_lr", "early_stopping", "monitor", "restore_best",
                 "probe_every", "name", "keep_checkpoints", "ema")


def pack_key(config: TrainConfig) -> str | None:
    """Equal for configs that may train in one pack; None for one that always trains alone (a model whose
    registry entry gives no layers to stack, several GPUs)."""
    if MODELS.entry(config.model).layers is None or config.gpus > 1:
        return None
    shared = {k: v for k, v in config.to_dict().items() if k not in MEMBER_FIELDS}
    if "init" not in MODELS.entry(config.model).settings:
        shared.pop("init", None)
    return json.dumps(shared, sort_keys=True)
