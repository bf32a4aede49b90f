"""Forking a run: a new run that starts from one of another run's checkpoints with some settings changed.

    run = fork_run(store, "3fa2c1d0", 4, changes={"lr": 0.001})   # record it with `recorded`
    run = fork_run(store, "3fa2c1d0", "step-150", changes={})       # from a checkpoint asked for mid-epoch

The fork keeps the parent's weights, optimizer state, step and RNGs; its config is the parent's with only
`changes` applied. Its log begins with ForkedFrom(parent_id, epoch, step, checkpoint) (the store keeps the first
three as columns), so `runs show` names the parent and the settings that differ. The schedule goes on from the
parent's step on the parent's base lr (with every set lr and plateau cut kept) unless the fork changes the lr or
the schedule, which then start from the fork's --lr at that step.

A fork is a new run, so what watches its epochs starts fresh: early stopping's patience, the plateau count and
the best epoch (and its weights, for restore_best) are its own, as Keras's callbacks are for each fit(). A parent
stopped early would otherwise stop its fork before a single epoch. `keep_steering` carries them on instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..engine.checkpoints import MODEL_SETTINGS, Checkpoint, load_checkpoint, without_steering
from ..engine.config import SETTINGS, ConfigError, TrainConfig
from ..engine.control import TrainingControl
from ..engine.events import ForkedFrom
from ..engine.loop import TrainingRun
from ..engine.user_text import shown
from .retention import epoch_checkpoint, fork_checkpoint, parse_fork_point, stable_name
from .store import RunStore

# what a checkpoint's weights and optimizer state are made of: a fork cannot change them
FIXED = (*MODEL_SETTINGS, "init", "optimizer")


class ForkRefused(ValueError):
    """The fork cannot start as asked (unknown run, missing epoch, a setting it cannot change): one line."""


def parse_fork(text: str) -> tuple[str, int | str | None]:
    """'RUN_ID', 'RUN_ID@EPOCH' or 'RUN_ID@step-STEP' -> (run id, the epoch, the step checkpoint's name or None)."""
    run_id, at, point = text.partition("@")
    if not run_id.strip():
        raise ForkRefused(f"--fork: got {shown(text)}; give RUN_ID, RUN_ID@EPOCH or RUN_ID@step-STEP")
    if not at:
        return run_id.strip(), None
    try:
        return run_id.strip(), parse_fork_point(point)
    except ValueError as exc:
        raise ForkRefused(f"--fork: got {shown(text)}; {exc}") from None


def fork_config(parent: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """The parent's config with `changes`; ForkRefused for a setting the checkpoint fixes, ConfigError for a bad value."""
    fixed = [name for name in FIXED if name in changes and changes[name] != getattr(parent, name)]
    if fixed:
        flags = ", ".join(SETTINGS[name].flag for name in fixed if SETTINGS[name].typed)
        raise ForkRefused(f"--fork: a fork keeps its parent's {', '.join(fixed)} (its checkpoint holds them); "
                          f"drop {flags}")
    return parent.replace(**changes)


def fork_run(store: RunStore, parent_id: str, at: int | str | None, changes: dict[str, Any],
             control: TrainingControl | None = None, keep_steering: bool = False, **kwargs: Any) -> TrainingRun:
    """A new recorded run (its row and ForkedFrom written) that continues `parent_id`'s checkpoint `at` (an epoch,
    a step checkpoint's name as `parse_fork` gives it, or None for its last) with `changes`. Raises RunNotFound,
    ForkRefused, ConfigError or CheckpointError."""
    parent = store.get_run(parent_id)
    if parent.damaged:
        raise ForkRefused(f"--fork: run {parent.id} cannot be opened: {parent.damaged}")
    try:
        path = fork_checkpoint(store, parent.id, at)
    except LookupError as exc:
        raise ForkRefused(f"--fork: {exc}") from None
    checkpoint = load_checkpoint(path, run_id=parent.id, config=parent.train_config())
    config = fork_config(checkpoint.config, changes)
    if config.epochs <= checkpoint.epoch and not checkpoint.mid_epoch:
        raise ConfigError({"epochs": f"epochs: got {config.epochs}; the fork starts after epoch {checkpoint.epoch}, "
                                     f"so ask for more epochs"})
    run = run_from(checkpoint, config, control, keep_steering, **kwargs)
    run.run_id = store.create_run(config)
    store.append(run.run_id, ForkedFrom(parent.id, checkpoint.epoch, checkpoint.step, stable_name(path),
                                        checkpoint.mid_epoch, keep_steering))
    return run


def build_fork(store: RunStore, run_id: str, control: TrainingControl | None = None,
                config: TrainConfig | None = None, **kwargs: Any) -> TrainingRun | None:
    """The fork `run_id` (created, never trained: a detached child starts it) rebuilt from its parent's
    checkpoint, with its recorded config (or `config`); None when the run is not a fork."""
    record = store.get_run(run_id)
    if not record.parent_id:
        return None
    forked = store.view(record.id, only=("forked_from",)).forked
    path = fork_source(store, record.parent_id, forked)
    config = config or record.train_config()  # the parent's model, as fork_config kept it
    run = run_from(load_checkpoint(path, run_id=record.parent_id, config=config), config, control,
                   forked.keep_steering, **kwargs)
    run.run_id = record.id
    return run


def fork_source(store: RunStore, parent_id: str, forked: ForkedFrom) -> Path:
    """The parent's checkpoint a fork's ForkedFrom names: by its file (older logs: the epoch's file)."""
    name = forked.checkpoint
    if not name:
        return epoch_checkpoint(store, parent_id, forked.epoch)
    path = store.checkpoint_dir(store.resolve(parent_id)) / name
    if not path.is_file():
        raise LookupError(f"run {parent_id}'s checkpoint {name}, which this fork starts from, is gone (pruned or "
                          f"deleted); fork it again from one it has (`scratch-tui runs show {parent_id}`)")
    return path


def run_from(checkpoint: Checkpoint, config: TrainConfig, control: TrainingControl | None,
             keep_steering: bool = False, **kwargs: Any) -> TrainingRun:
    """A run of `config` starting from `checkpoint`'s state, with the changed settings written into that state,
    and (unless `keep_steering`) with fresh early stopping, plateau count and best epoch."""
    if not keep_steering:
        checkpoint = without_steering(checkpoint)
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
