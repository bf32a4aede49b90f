"""Forking a run: a new run that starts from one of another run's checkpoints with some settings changed.

    run = fork_run(store, "3fa2c1d0", epoch=4, changes={"lr": 0.001})   # record it with `recorded`

The fork keeps the parent's weights, optimizer state, step and RNGs; its config is the parent's with only
`changes` applied. Its log begins with ForkedFrom(parent_id, epoch, step) (the store keeps them as columns),
so `runs show` names the parent and the settings that differ. The schedule goes on from the parent's step
on the parent's base lr (with every set lr and plateau cut kept) unless the fork changes the lr or the
schedule, which then start from the fork's --lr at that step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..engine.checkpoints import Checkpoint, load_checkpoint
from ..engine.config import ConfigError, TrainConfig
from ..engine.control import TrainingControl
from ..engine.events import ForkedFrom
from ..engine.loop import TrainingRun
from .retention import epoch_checkpoint
from .store import RunStore

# what a checkpoint's weights and optimizer state are made of: a fork cannot change them
FIXED = ("dataset", "model", "hidden", "init", "optimizer")


class ForkRefused(ValueError):
    """The fork cannot start as asked (unknown run, missing epoch, a setting it cannot change): one line."""


def parse_fork(text: str) -> tuple[str, int | None]:
    """'RUN_ID' or 'RUN_ID@EPOCH' -> (run id, epoch or None)."""
    run_id, at, epoch = text.partition("@")
    if not run_id.strip():
        raise ForkRefused(f"--fork: got {text!r}; give RUN_ID or RUN_ID@EPOCH")
    if not at:
        return run_id.strip(), None
    if not epoch.strip().isdigit() or int(epoch) < 1:
        raise ForkRefused(f"--fork: got {text!r}; the epoch after @ must be a whole number of 1 or more")
    return run_id.strip(), int(epoch)


def fork_config(parent: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """The parent's config with `changes`; ForkRefused for a setting the checkpoint fixes, ConfigError for a bad value."""
    fixed = [name for name in FIXED if name in changes and changes[name] != getattr(parent, name)]
    if fixed:
        flags = ", ".join("--" + name.replace("_", "-") for name in fixed)
        raise ForkRefused(f"--fork: a fork keeps its parent's {', '.join(fixed)} (its checkpoint holds them); "
                          f"drop {flags}")
    return parent.replace(**changes)


def fork_run(store: RunStore, parent_id: str, epoch: int | None, changes: dict[str, Any],
             control: TrainingControl | None = None, **kwargs: Any) -> TrainingRun:
    """A new recorded run (its row and ForkedFrom written) that continues `parent_id`'s checkpoint of `epoch`
    (its last when None) with `changes`. Raises RunNotFound, ForkRefused, ConfigError or CheckpointError."""
    parent = store.get_run(parent_id)
    try:
        path = epoch_checkpoint(store, parent.id, epoch)
    except LookupError as exc:
        raise ForkRefused(f"--fork: {exc}") from None
    checkpoint = load_checkpoint(path)
    config = fork_config(checkpoint.config, changes)
    if config.epochs <= checkpoint.epoch and not checkpoint.mid_epoch:
        raise ConfigError({"epochs": f"epochs: got {config.epochs}; the fork starts after epoch {checkpoint.epoch}, "
                                     f"so ask for more epochs"})
    run = run_from(checkpoint, config, control, **kwargs)
    run.run_id = store.create_run(config)
    store.record(run.run_id, ForkedFrom(parent.id, checkpoint.epoch, checkpoint.step))
    return run


def resume_fork(store: RunStore, run_id: str, control: TrainingControl | None = None,
                **kwargs: Any) -> TrainingRun | None:
    """The fork `run_id` (created, never trained: a detached child starts it) rebuilt from its parent's
    checkpoint; None when the run is not a fork."""
    record = store.get_run(run_id)
    if not record.parent_id:
        return None
    forked = store.logged(record.id, "forked_from")[-1]
    path = epoch_checkpoint(store, record.parent_id, forked["epoch"])
    run = run_from(load_checkpoint(path), record.train_config(), control, **kwargs)
    run.run_id = record.id
    return run


def run_from(checkpoint: Checkpoint, config: TrainConfig, control: TrainingControl | None,
             **kwargs: Any) -> TrainingRun:
    """A run of `config` starting from `checkpoint`'s state, with the changed settings written into that state."""
    parent = checkpoint.config
    state = dict(checkpoint.state)
    progress = dict(state["progress"])
    if config.lr != parent.lr or config.schedule != parent.schedule:
        progress["base_lr"] = config.lr  # a new lr or schedule starts from the fork's own lr
    state["progress"] = progress
    state["optimizer"] = _with_hyperparameters(state["optimizer"], config)
    changed = dataclasses.replace(checkpoint, config=config, run_id=None, state=state)
    return TrainingRun.from_checkpoint(changed, control, epochs=config.epochs, **kwargs)


def _with_hyperparameters(optimizer: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The optimizer's state with the fork's weight decay (and SGD momentum): loading a state sets them back to
    what they were when it was saved."""
    wanted = {"weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        wanted |= {"momentum": config.momentum, "nesterov": config.nesterov}
    groups = [{**group, **{k: v for k, v in wanted.items() if k in group}} for group in optimizer["param_groups"]]
    return {**optimizer, "param_groups": groups}


def config_diff(parent: dict[str, Any], child: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, parent's value, child's value) of the settings that differ, in the config's order."""
    return [(key, parent.get(key), value) for key, value in child.items() if parent.get(key) != value]
