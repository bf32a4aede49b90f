"""The `scratch-tui train ...` command line that reproduces a config."""

from __future__ import annotations

import shlex

from .config import TrainConfig

# TrainConfig field -> flag, for the fields the train command takes
FLAGS = {
    "dataset": "--dataset", "data_dir": "--data-dir", "model": "--model", "hidden": "--hidden", "init": "--init",
    "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
    "momentum": "--momentum", "nesterov": "--nesterov", "weight_decay": "--weight-decay", "schedule": "--schedule",
    "label_smoothing": "--label-smoothing", "augment": "--augment", "val_split": "--val-split", "seed": "--seed",
    "device": "--device", "max_train_samples": "--max-train-samples", "name": "--name",
}


def command_line(config: TrainConfig) -> str:
    """Only the settings that differ from the defaults, so the line stays short and readable."""
    defaults = TrainConfig()
    parts = ["scratch-tui", "train"]
    for field_name, flag in FLAGS.items():
        value = getattr(config, field_name)
        if value == getattr(defaults, field_name):
            continue
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            parts += [flag, ",".join(str(v) for v in value)]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)
