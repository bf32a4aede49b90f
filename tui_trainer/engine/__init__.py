"""The training engine: no Textual here, only config in and events out."""

from .config import PRESETS, ConfigError, TrainConfig, preset
from .control import TrainingControl
from .data import DATASETS, DatasetUnavailable
from .devices import DeviceError, list_devices, resolve_device
from .events import TERMINAL_EVENTS, Event
from .loop import TrainingRun, run_training
from .models import MODELS, build_model, count_parameters

__all__ = [
    "PRESETS", "ConfigError", "TrainConfig", "preset", "TrainingControl", "DATASETS", "DatasetUnavailable",
    "DeviceError", "list_devices", "resolve_device", "TERMINAL_EVENTS", "Event", "TrainingRun",
    "run_training", "MODELS", "build_model", "count_parameters",
]
