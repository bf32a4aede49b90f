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
    # A run continued from a checkpoint starts again with these set: consumers keep what they
    # drew up to this point and drop anything recorded after it.
    resumed_from_epoch: int = 0
    resumed_from_step: int = 0


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
    # CUDA only: memory the run's tensors hold now, and the most they held (MiB)
    memory_mib: float | None = None
    peak_memory_mib: float | None = None


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


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """Emitted by the recorder (not the loop) once a checkpoint is safely on disk."""

    event_name: ClassVar[str] = "checkpoint_saved"
    path: str
    epoch: int  # epochs completed
    step: int
    reason: str  # epoch, stop, request, closed
    best_path: str = ""  # set when this state is also the best so far (by validation accuracy)


TERMINAL_EVENTS = (RunFinished, RunStopped, RunFailed)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_name: cls
    for cls in (RunStarted, BatchProgress, EpochEnded, EvaluationEnded, RunPaused, RunResumed,
                LearningRateChanged, RunFinished, RunStopped, RunFailed, CheckpointSaved)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """The inverse of `Event.to_dict` (a JSON line, a stored row); keys it does not know are dropped."""
    cls = EVENT_TYPES.get(data.get("event", ""))
    if cls is None:
        raise ValueError(f"unknown event {data.get('event')!r}; known events are {', '.join(EVENT_TYPES)}")
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    if cls is EvaluationEnded:
        sample_fields = {f.name for f in dataclasses.fields(PredictionSample)}
        # `train --jsonl` leaves the images out of its lines: such a sample has no pixels to draw
        values["samples"] = [PredictionSample(**{"image": [], **{k: v for k, v in s.items() if k in sample_fields}})
                             for s in values.get("samples", [])]
    return cls(**values)
