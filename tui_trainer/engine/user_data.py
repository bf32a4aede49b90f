"""A dataset of the user's own as a dataset entry: a folder of images, a `.npz` or a CSV, named by its path.

    scratch-tui train --dataset ./my-images [--image-shape 1,28,28] [--resize 28,28]

The registry's path pattern (engine/registry.py) makes the entry; this module loads it through
engine/own_data.py, converted once and cached under the data dir, and checks it before a run is recorded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig
from .registry import DATASETS, DatasetEntry


def load_path(entry: DatasetEntry, data_dir: str | Path | None = None, progress: Any = None, download: bool = True,
              image_shape: tuple[int, ...] = (), resize: tuple[int, ...] = ()) -> Any:
    """The entry's data as the built-ins' RawDataset: its classes, image shape and any decision made for the user
    (a held-out test split) said in its title."""
    from .data import RawDataset, default_data_dir
    from .own_data import load_own

    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    own = load_own(entry.trait("path"), image_shape=tuple(image_shape) or None, resize=tuple(resize) or None,
                   progress=progress, cache_dir=root / "own")
    title = f"{own.name} ({own.kind}" + (f"; {own.notice}" if own.notice else "") + ")"
    spec = dataclasses.replace(entry, title=title, classes=tuple(own.classes), image_shape=own.image_shape)
    return RawDataset(spec, own.train_images, own.train_labels, own.test_images, own.test_labels, own.source)


def path_status(entry: DatasetEntry, data_dir: str | Path | None = None) -> str:
    """What setup says of it: its kind, or that there is nothing there."""
    from .own_data import OwnDataError, own_kind

    try:
        return f"your {own_kind(entry.trait('path'))}"
    except OwnDataError:
        return "not found"


def checked_data(config: TrainConfig) -> TrainConfig:
    """`config` unchanged once its dataset, where it is the user's, converts (or is in the cache): a ConfigError
    naming the file and what to fix otherwise, before any run is recorded."""
    if "path" not in DATASETS.entry(config.dataset).traits:
        return config
    from .data import load_raw
    from .own_data import OwnDataError

    try:
        load_raw(config.dataset, config.data_dir, config=config)
    except OwnDataError as exc:
        raise ConfigError({"dataset": f"dataset: {exc}"}) from None
    return config
