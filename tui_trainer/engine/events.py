"""Events the engine emits: plain, immutable, JSON-serializable dataclasses.

Every consumer (CLI printer, TUI, run store) sees the same stream; `event_name`
is the `event` key written by `to_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    event_name: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event_name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    event_name: ClassVar[str] = "run_started"
    config: dict[str, Any]
    device: str
    device_name: str
    dataset_title: str
    classes: list[str]
    image_shape: list[int]
    train_size: int
    val_size: int
    test_size: int
    parameters: int
    steps_per_epoch: int
    run_id: str | None = None


@dataclass(frozen=True)
class BatchProgress(Event):
    event_name: ClassVar[str] = "batch_progress"
    step: int  # global optimizer steps so far
    epoch: int  # 1-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int  # batches per epoch
    loss: float  # running mean since the epoch began
    acc: float  # running accuracy since the epoch began, percent
    lr: float
    samples_per_s: float


@dataclass(frozen=True)
class EpochEnded(Event):
    event_name: ClassVar[str] = "epoch_end"
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float
    samples_per_s: float
    step: int = 0


@dataclass(frozen=True)
class PredictionSample:
    index: int  # position in the test split
    image: list[list[list[int]]]  # [channel][row][col], uint8 values
    true_label: int
    predicted_label: int
    confidence: float  # softmax probability of the predicted label


@dataclass(frozen=True)
class EvaluationEnded(Event):
    event_name: ClassVar[str] = "eval_end"
    test_loss: float
    test_acc: float
    per_class_acc: list[float]
    confusion: list[list[int]]  # rows: true label, columns: predicted label
    classes: list[str]
    samples: list[PredictionSample] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class RunPaused(Event):
    event_name: ClassVar[str] = "run_paused"
    epoch: int
    step: int


@dataclass(frozen=True)
class RunResumed(Event):
    event_name: ClassVar[str] = "run_resumed"
    epoch: int
    step: int


@dataclass(frozen=True)
class LearningRateChanged(Event):
    event_name: ClassVar[str] = "lr_changed"
    lr: float
    step: int


@dataclass(frozen=True)
class RunFinished(Event):
    event_name: ClassVar[str] = "run_finished"
    epochs_done: int
    seconds: float


@dataclass(frozen=True)
class RunStopped(Event):
    event_name: ClassVar[str] = "run_stopped"
    epochs_done: int
    seconds: float
    reason: str = "stopped by request"


@dataclass(frozen=True)
class RunFailed(Event):
    event_name: ClassVar[str] = "run_failed"
    message: str
    epochs_done: int = 0
    seconds: float = 0.0


TERMINAL_EVENTS = (RunFinished, RunStopped, RunFailed)
