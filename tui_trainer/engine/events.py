"""Events the engine emits: plain, immutable, JSON-serializable dataclasses.

Every consumer (CLI printer, TUI, run store) sees the same stream; `event_name`
is the `event` key written by `to_dict`. A run's lifecycle is declared here once too:
`next_state` folds events into the state every view shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from .config import TrainConfig


@dataclass(frozen=True)
class Event:
    event_name: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event_name, **_plain(self)}


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, all the way down; other values as they are. Not dataclasses.asdict: it
    deep-copies every list, and an evaluation's sample images made that half a second per run."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)) and value and dataclasses.is_dataclass(value[0]):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RunStarted(Event):
    event_name: ClassVar[str] = "run_started"
    config: TrainConfig
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
    # How the step runs ("eager", "cuda-graph", "cuda-graph bf16 channels-last"), chosen by the engine
    step_path: str = "eager"
    # Provenance: a hash of the exact images and labels trained on, and what trained on them
    data_fingerprint: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    processes: int = 1  # ranks training the run together under torchrun, each on its own device

    def where(self) -> str:
        """Where it trains, as the CLI and the app say it: "cuda:0 (NVIDIA H100), 2 processes (DDP)"."""
        ranks = f", {self.processes} processes (DDP)" if self.processes > 1 else ""
        return f"{self.device} ({self.device_name}){ranks}"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "config": self.config.to_dict()}


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
    seconds: float = 0.0  # training time so far, pauses left out


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
    weights_epoch: int | None = None  # the epoch whose weights were evaluated, when the loop knows it


@dataclass(frozen=True)
class RunPaused(Event):
    event_name: ClassVar[str] = "run_paused"
    epoch: int
    step: int
    seconds: float = 0.0  # training time so far


@dataclass(frozen=True)
class RunResumed(Event):
    event_name: ClassVar[str] = "run_resumed"
    epoch: int
    step: int
    seconds: float = 0.0


@dataclass(frozen=True)
class LearningRateChanged(Event):
    event_name: ClassVar[str] = "lr_changed"
    lr: float
    step: int
    reason: str = ""  # "" for a change someone asked for; "plateau" for the plateau schedule's cut
    previous: float | None = None  # the lr in force before; None in logs written before it was kept


@dataclass(frozen=True)
class EarlyStopped(Event):
    """The monitored metric has not improved for `patience` epochs: the run trains no further, is evaluated
    and finishes (a finished run, not a stopped one)."""

    event_name: ClassVar[str] = "early_stopped"
    epoch: int  # epochs done
    best_epoch: int
    monitor: str  # val_loss or val_acc
    best_value: float
    patience: int
    step: int = 0


@dataclass(frozen=True)
class BestWeightsRestored(Event):
    """With restore_best, the best epoch's weights replace the last ones before the final evaluation."""

    event_name: ClassVar[str] = "best_restored"
    epoch: int  # whose weights the model now holds
    monitor: str
    value: float
    last_epoch: int  # the epoch trained last, whose weights were replaced


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
    step: int | None = None  # set by the recorder (the loop's stop knows no more than its epochs); None in older logs


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
    # the file that keeps this state once the next save replaces `path` (last.pt): epoch-NNNN.pt at an epoch end,
    # step-N.pt for a checkpoint asked for; what a fork of this moment starts from. Empty when none does.
    kept_path: str = ""
    mid_epoch: bool = False  # saved part-way through epoch `epoch + 1` (older logs never say so)


@dataclass(frozen=True)
class RunInterrupted(Event):
    """Written by the run store (not the loop) when a run's process is found gone without an ending."""

    event_name: ClassVar[str] = "run_interrupted"
    message: str
    epochs_done: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ProcessStarted(Event):
    """Written when a training process is started for a run (new or resumed), before its first event:
    every viewer shows the run as starting instead of as it last ended."""

    event_name: ClassVar[str] = "process_started"
    pid: int
    resuming: bool = False


@dataclass(frozen=True)
class CommandReceived(Event):
    """Written by the recorder when a command reaches the training process; the loop acts on it next."""

    event_name: ClassVar[str] = "command_received"
    command: str
    value: float | None = None
    step: int | None = None  # the run's step when it arrived; None in logs written before it was kept


@dataclass(frozen=True)
class CommandIgnored(Event):
    """Written by the store when a run ends with commands still queued for it: each gets this answer instead
    of silence (the app shows it; `runs show` lists it)."""

    event_name: ClassVar[str] = "command_ignored"
    command: str
    value: float | None = None
    reason: str = "the run had ended"


@dataclass(frozen=True)
class ForkedFrom(Event):
    """A fork's first event: the run it starts from and where (that run's checkpoint of `epoch`, at `step`)."""

    event_name: ClassVar[str] = "forked_from"
    parent_id: str
    epoch: int  # epochs the parent had completed (a mid-epoch checkpoint is part-way through the next)
    step: int
    # the parent's checkpoint file (epoch-0004.pt, step-150.pt, last.pt), so a fork started in another process
    # loads the same one; empty in older logs, whose forks start from the epoch's file
    checkpoint: str = ""
    mid_epoch: bool = False  # that checkpoint is part-way through epoch `epoch + 1`
    keep_steering: bool = False  # the parent's early-stopping, plateau and best-epoch state carried on


@dataclass(frozen=True)
class ReplayPlanned(Event):
    """Written before a run starts when it repeats another's mid-run lr changes (`train --replay`): each
    (step, lr) is applied at that step through the run's control, as a set lr is."""

    event_name: ClassVar[str] = "replay_planned"
    source_id: str
    lr_changes: list[list[float]] = field(default_factory=list)  # [step, lr] pairs, in step order


@dataclass(frozen=True)
class RunQueued(Event):
    """Written when a run is put in the queue, its first event: the queue's runner starts it later."""

    event_name: ClassVar[str] = "run_queued"
    position: int  # 1-based place in the queue when it was added
    sweep_id: str = ""  # runs queued together (a sweep, the seeds of one config) share an id and a name
    sweep_name: str = ""


TERMINAL_EVENTS = (RunFinished, RunStopped, RunFailed, RunInterrupted)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_name: cls
    for cls in (RunStarted, BatchProgress, EpochEnded, EvaluationEnded, RunPaused, RunResumed,
                LearningRateChanged, EarlyStopped, BestWeightsRestored, RunFinished, RunStopped, RunFailed,
                RunInterrupted, CheckpointSaved, CommandReceived, ProcessStarted, RunQueued, CommandIgnored,
                ForkedFrom, ReplayPlanned)
}


class RunState(str, Enum):
    """Where a run is in its life; the run store's status column holds these values."""

    QUEUED = "queued"  # waiting in the queue; nothing trains it yet, so it is neither active nor interrupted
    STARTING = "starting"  # created or resumed, its process not yet training
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED)

    def __str__(self) -> str:
        return self.value


ENDING_STATE: dict[type[Event], RunState] = {
    RunFinished: RunState.FINISHED, RunStopped: RunState.STOPPED, RunFailed: RunState.FAILED,
    RunInterrupted: RunState.INTERRUPTED,
}


def next_state(state: RunState, event: Event) -> RunState:
    """The one lifecycle: the state after `event`, for the store, the app and the printer alike."""
    if isinstance(event, (RunStarted, RunResumed)):
        return RunState.RUNNING
    if isinstance(event, RunPaused):
        return RunState.PAUSED
    if isinstance(event, ProcessStarted):
        return RunState.STARTING
    if isinstance(event, RunQueued):
        return RunState.QUEUED
    return ENDING_STATE.get(type(event), state)


def ending_message(event: Event) -> str:
    """Why a run ended, as the store keeps it: empty for a finished run."""
    if isinstance(event, RunFinished):
        return ""
    return getattr(event, "reason", None) or getattr(event, "message", "")


def event_from_dict(data: dict[str, Any]) -> Event:
    """The inverse of `Event.to_dict` (a JSON line, a stored row); keys it does not know are dropped."""
    cls = EVENT_TYPES.get(data.get("event", ""))
    if cls is None:
        raise ValueError(f"unknown event {data.get('event')!r}; known events are {', '.join(EVENT_TYPES)}")
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    if cls is RunStarted and isinstance(values.get("config"), dict):
        values["config"] = TrainConfig.from_dict(values["config"])
    if cls is EvaluationEnded:
        sample_fields = {f.name for f in dataclasses.fields(PredictionSample)}
        # `train --jsonl` leaves the images out of its lines: such a sample has no pixels to draw
        values["samples"] = [PredictionSample(**{"image": [], **{k: v for k, v in s.items() if k in sample_fields}})
                             for s in values.get("samples", [])]
    return cls(**values)
