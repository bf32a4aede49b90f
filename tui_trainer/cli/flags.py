"""The train flags and the TrainConfig they build."""

from __future__ import annotations

import argparse
from typing import Any

from ..engine.config import (AUGMENT_NAMES, DATASET_NAMES, INIT_NAMES, MODEL_NAMES, OPTIMIZER_NAMES, SCHEDULE_NAMES,
                             ConfigError, TrainConfig, parse_hidden, preset)

# flag -> (TrainConfig field, argparse kwargs)
TRAIN_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--dataset": ("dataset", dict(choices=DATASET_NAMES, help="images to train on (default: the bundled fashion-mnist-mini)")),
    "--data-dir": ("data_dir", dict(metavar="DIR", help="where full datasets live (default: $SCRATCH_TUI_DATA or the user cache)")),
    "--model": ("model", dict(choices=MODEL_NAMES)),
    "--hidden": ("hidden", dict(metavar="SIZES", help="MLP hidden layer sizes, e.g. 128,64")),
    "--init": ("init", dict(choices=INIT_NAMES, help="MLP weight init: kaiming (scaled) or randn (unscaled N(0,1))")),
    "--epochs": ("epochs", dict(type=int)),
    "--batch-size": ("batch_size", dict(type=int)),
    "--lr": ("lr", dict(type=float, help="learning rate (peak rate for onecycle)")),
    "--optimizer": ("optimizer", dict(choices=OPTIMIZER_NAMES)),
    "--momentum": ("momentum", dict(type=float, help="SGD momentum")),
    "--nesterov": ("nesterov", dict(action=argparse.BooleanOptionalAction, help="Nesterov momentum for SGD")),
    "--weight-decay": ("weight_decay", dict(type=float)),
    "--schedule": ("schedule", dict(choices=SCHEDULE_NAMES)),
    "--label-smoothing": ("label_smoothing", dict(type=float)),
    "--augment": ("augment", dict(choices=AUGMENT_NAMES, help="flip: mirror training images at random "
                                                               "(for clothes and CIFAR-10, not digits)")),
    "--val-split": ("val_split", dict(type=float, help="fraction of train held out for validation (0 allowed)")),
    "--seed": ("seed", dict(type=int)),
    "--device": ("device", dict(help="auto, cpu, cuda, cuda:N or mps (default auto)")),
    "--max-train-samples": ("max_train_samples", dict(type=int, metavar="N", help="train on at most N images (0: all)")),
    "--name": ("name", dict(help="a name for this run")),
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.preset:
        config = preset(args.preset, config)
    overrides: dict[str, Any] = {}
    for flag, (field_name, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            overrides[field_name] = parse_hidden(value) if field_name == "hidden" else value
    return config.replace(**overrides) if overrides else config


def name_flags(exc: ConfigError) -> str:
    """Config messages name fields; on the command line, name the flag the user typed."""
    flags = {field_name: flag for flag, (field_name, _) in TRAIN_FLAGS.items()}
    return "; ".join(
        msg.replace(f"{name}:", f"{flags[name]}:", 1) if name in flags else msg for name, msg in exc.errors.items()
    )


def given_train_flags(args: argparse.Namespace) -> list[str]:
    """Settings flags typed on the command line (those a resumed run cannot take)."""
    given = [flag for flag in ("--preset", "--config", "--save-config") if getattr(args, flag[2:].replace("-", "_"))]
    given += [flag for flag in TRAIN_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    return given + (["--no-record"] if args.no_record else [])
