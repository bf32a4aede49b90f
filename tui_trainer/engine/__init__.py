"""The training engine: no Textual here, only config in and events out.

Names are imported on first use, so `scratch-tui runs` and the run store do not pay
for importing torch (seconds) when they only read the database.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "PRESETS": "config", "ConfigError": "errors", "TrainConfig": "config", "preset": "config",
    "TrainingControl": "control",
    "DATASETS": "registry", "MODELS": "registry", "DatasetEntry": "registry", "ModelEntry": "registry",
    "register_dataset": "registry", "register_model": "registry",
    "DatasetUnavailable": "data",
    "DeviceError": "devices", "list_devices": "devices", "resolve_device": "devices",
    "TERMINAL_EVENTS": "events", "Event": "events", "event_from_dict": "events",
    "TrainingRun": "loop",
    "build_model": "models", "count_parameters": "models", "ModelFileError": "model_file",
    "CheckpointError": "checkpoints", "load_checkpoint": "checkpoints",
}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
