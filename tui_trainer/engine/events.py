"""Events the engine emits: plain, immutable, JSON-serializable dataclasses.

Every consumer (CLI printer, TUI, run store) sees the same stream. An event type declares itself
here, once: its fields, its JSON name (`event_name`, the `event` key written by `to_dict`; defining
the class registers it), and its sentence for people (`describe`). How a run's view folds it is in
runs/view.py. A run's lifecycle is declared here once too: `next_state` folds events into the state
every view shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from .config import TrainConfig
from .wording import arrow, counted


EVENT_TYPES: dict[str, type["Event"]] = {}  # by JSON name; each class below adds itself


@dataclass(frozen=True)
class Event:
    event_name: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_name" in cls.__dict__:
            EVENT_TYPES[cls.event_name] = cls

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event_name, **_plain(self)}

    def describe(self) -> str | None:
        """The event in one line for people, as the app's log, `attach` and `train` say it; None for an
        event people are not told of (progress, the start of a segment, which views show in other ways)."""
        return None


def metric_value(monitor: str, value: float) -> str:
    """A monitored metric as the epoch lines show it: a loss to 4 places, an accuracy in percent."""
    return f"{value:.2f}%" if monitor == "val_acc" else f"{value:.4f}"


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
    # The receipt (engine/receipt.py): package versions, the machine, the numeric flags; empty in older logs
    versions: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    numerics: dict[str, Any] = field(default_factory=dict)
    processes: int = 1  # ranks training the run together under torchrun, each on its own device
    threads: int = 0  # CPU threads it computes with (the config's, or auto pinned); 0 in older logs
    # sha256 of the model file's source the run builds from (config.model_source); "" for a built-in model
    model_sha256: str = ""
    # a run trained together with others of its shape, in one process (engine/pack.py): the pack, the others
    pack: str = ""
    pack_with: list[str] = field(default_factory=list)

    def pack_line(self) -> str:
        """'trained in pack P with 2 other runs: a b', or '' for a run trained alone."""
        if not self.pack:
            return ""
        return f"trained in pack {self.pack} with {counted(len(self.pack_with), 'other run')}: {' '.join(self.pack_with)}"

    def where(self) -> str:
        """Where it trains, as the CLI and the app say it: "cuda:0 (NVIDIA H100), 2 processes (DDP)"."""
        ranks = f", {self.processes} processes (DDP)" if self.processes > 1 else ""
        return f"{self.device} ({self.device_name}){ranks}"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "config": self.config.to_dict()}

    def receipt(self) -> dict[str, Any]:
        """Everything the run trained with besides its settings, flat ("versions.torch", "threads"): what `runs show`
        lists, `--diff` compares and `runs verify` holds against the machine it runs on. A value an older log
        never recorded is left out, not guessed."""
        flat: dict[str, Any] = {"device": self.device, "device_name": self.device_name,
                                "threads": self.threads or None, "processes": self.processes,
                                "step_path": self.step_path, "data_fingerprint": self.data_fingerprint or None,
                                "model_sha256": self.model_sha256 or None}
        for section in ("versions", "machine", "numerics"):
            flat.update({f"{section}.{key}": value for key, value in getattr(self, section).items()})
        return {key: value for key, value in flat.items() if value is not None}


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
    # with config.ema: the validation set on the moving average of the weights
    ema_val_loss: float | None = None
    ema_val_acc: float | None = None

    def describe(self) -> str:
        """In under 70 columns, so the app's log never scrolls sideways at 80x24."""
        line = f"Epoch {self.epoch}/{self.epochs}  train {self.train_loss:.4f} {self.train_acc:5.2f}%"
        if self.val_loss is not None:
            line += f"  val {self.val_loss:.4f} {self.val_acc:5.2f}%"
        if self.ema_val_acc is not None:  # the loss said by `runs show` and the CLI's line; the width is short
            return line + f"  ema {self.ema_val_acc:5.2f}%"
        return line + f"  {self.seconds:.1f}s"


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

    def describe(self) -> str:
        return f"Test Loss: {self.test_loss:.4f}, Test Accuracy: {self.test_acc:.2f}%"


@dataclass(frozen=True)
class RunPaused(Event):
    event_name: ClassVar[str] = "run_paused"
    epoch: int
    step: int
    seconds: float = 0.0  # training time so far
    lr: float | None = None  # the lr in force (a schedule moves it between progress reports); None in older logs

    def describe(self) -> str:
        return f"Paused at step {self.step}"


@dataclass(frozen=True)
class RunUnpaused(Event):
    event_name: ClassVar[str] = "run_resumed"
    epoch: int
    step: int
    seconds: float = 0.0
    lr: float | None = None

    def describe(self) -> str:
        return f"Unpaused at step {self.step}"  # "resumed" is said of a run continued from its checkpoint


@dataclass(frozen=True)
class LearningRateChanged(Event):
    event_name: ClassVar[str] = "lr_changed"
    lr: float
    step: int
    reason: str = ""  # "" for a change someone asked for; "plateau" for the plateau schedule's cut
    previous: float | None = None  # the lr in force before; None in logs written before it was kept

    def describe(self) -> str:
        if self.reason == "plateau" and self.previous is not None:
            return f"Learning rate {self.previous:.3g} {arrow()} {self.lr:.3g} (plateau) at step {self.step}"
        line = f"Learning rate set to {self.lr:.3g}" + (f" ({self.reason})" if self.reason else "")
        return line + (f" (was {self.previous:.3g})" if self.previous is not None else "") + f" at step {self.step}"


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

    def describe(self) -> str:
        return (f"Early stop after epoch {self.epoch}: {self.monitor} has not improved for {self.patience} "
                f"epoch{'s' * (self.patience != 1)} (best {metric_value(self.monitor, self.best_value)} "
                f"at epoch {self.best_epoch})")


@dataclass(frozen=True)
class BestWeightsRestored(Event):
    """With restore_best, the best epoch's weights replace the last ones before the final evaluation."""

    event_name: ClassVar[str] = "best_restored"
    epoch: int  # whose weights the model now holds
    monitor: str
    value: float
    last_epoch: int  # the epoch trained last, whose weights were replaced

    def describe(self) -> str:
        line = (f"Evaluating the weights of epoch {self.epoch} (best {self.monitor} "
                f"{metric_value(self.monitor, self.value)})")
        return line + (f", not those of the last epoch, {self.last_epoch}" if self.last_epoch != self.epoch else "")


@dataclass(frozen=True)
class RunFinished(Event):
    event_name: ClassVar[str] = "run_finished"
    epochs_done: int
    seconds: float

    def describe(self) -> str:
        return f"Finished {counted(self.epochs_done, 'epoch')} in {self.seconds:.1f}s"


@dataclass(frozen=True)
class RunStopped(Event):
    event_name: ClassVar[str] = "run_stopped"
    epochs_done: int
    seconds: float
    reason: str = "stopped by request"
    step: int | None = None  # set by the recorder (the loop's stop knows no more than its epochs); None in older logs

    def describe(self) -> str:
        return f"Stopped after {counted(self.epochs_done, 'epoch')}"


@dataclass(frozen=True)
class RunFailed(Event):
    event_name: ClassVar[str] = "run_failed"
    message: str
    epochs_done: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        return f"Failed: {self.message}"


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """Emitted by the recorder (not the loop) once a checkpoint is safely on disk."""

    event_name: ClassVar[str] = "checkpoint_saved"
    path: str
    epoch: int  # epochs completed
    step: int
    reason: str  # epoch, stop, request, closed
    best_path: str = ""  # set when this state is also the best so far (by the run's --monitor)
    # the file that keeps this state once the next save replaces `path` (last.pt): epoch-NNNN.pt at an epoch end,
    # step-N.pt for a checkpoint asked for; what a fork of this moment starts from. Empty when none does.
    kept_path: str = ""
    mid_epoch: bool = False  # saved part-way through epoch `epoch + 1` (older logs never say so)

    def describe(self) -> str | None:
        """Where it stands in the run and the file that keeps it: "after epoch 2" at an epoch end, "at epoch 3,
        step 150, mid-epoch" part-way through one (`epoch` counts the epochs done, so the next is in progress)."""
        if self.reason == "epoch":
            return None  # one per epoch would drown the log; the epoch's own line says it
        where = f"at epoch {self.epoch + 1}, step {self.step}, mid-epoch" if self.mid_epoch else \
            f"after epoch {self.epoch}"
        return f"Checkpoint saved {where} ({self.reason}): {self.kept_path or self.path}"


@dataclass(frozen=True)
class RunInterrupted(Event):
    """Written by the run store (not the loop) when a run's process is found gone without an ending."""

    event_name: ClassVar[str] = "run_interrupted"
    message: str
    epochs_done: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        return f"Interrupted after {counted(self.epochs_done, 'epoch')}: {self.message}"


@dataclass(frozen=True)
class ProcessStarted(Event):
    """Written when a training process is started for a run (new or resumed), before its first event:
    every viewer shows the run as starting instead of as it last ended."""

    event_name: ClassVar[str] = "process_started"
    pid: int
    resuming: bool = False

    def describe(self) -> str:
        return f"Training process started (pid {self.pid})" + (" to resume the run" if self.resuming else "")


@dataclass(frozen=True)
class CommandReceived(Event):
    """Written by the recorder when a command reaches the training process; the loop acts on it next."""

    event_name: ClassVar[str] = "command_received"
    command: str
    value: float | None = None
    step: int | None = None  # the run's step when it arrived; None in logs written before it was kept

    def describe(self) -> str | None:
        return "Checkpoint requested" if self.command == "checkpoint" else None  # the others show by their effect


@dataclass(frozen=True)
class CommandIgnored(Event):
    """Written by the store when a run ends with commands still queued for it: each gets this answer instead
    of silence (the app shows it; `runs show` lists it)."""

    event_name: ClassVar[str] = "command_ignored"
    command: str
    value: float | None = None
    reason: str = "the run had ended"

    def describe(self) -> str:
        value = f" {self.value:g}" if self.value is not None else ""
        return f"{self.command}{value} not applied: {self.reason}"


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

    def point(self) -> str:
        """What follows `--fork PARENT@` to start there again: "3", or "step-150" for a checkpoint asked for."""
        return self.checkpoint.removesuffix(".pt") if self.checkpoint.startswith("step-") else str(self.epoch)

    def where(self) -> str:
        """Where in the parent it starts, for people: "epoch 3", or "epoch 3, step 150 (mid-epoch)" (`epoch` is
        the epochs done, and a mid-epoch checkpoint is part-way through the next)."""
        return f"epoch {self.epoch + 1}, step {self.step} (mid-epoch)" if self.mid_epoch else f"epoch {self.epoch}"

    def describe(self) -> str:
        return f"Forked from run {self.parent_id}@{self.point()} (step {self.step:,})"


@dataclass(frozen=True)
class ReplayPlanned(Event):
    """Written before a run starts when it repeats another's mid-run lr changes (`train --replay`): each
    (step, lr) is applied at that step through the run's control, as a set lr is."""

    event_name: ClassVar[str] = "replay_planned"
    source_id: str
    lr_changes: list[list[float]] = field(default_factory=list)  # [step, lr] pairs, in step order

    def describe(self) -> str:
        return f"Replays the {counted(len(self.lr_changes), 'lr change')} of run {self.source_id}"


@dataclass(frozen=True)
class RunQueued(Event):
    """Written when a run is put in the queue, its first event: the queue's runner starts it later."""

    event_name: ClassVar[str] = "run_queued"
    position: int  # 1-based place in the queue when it was added
    sweep_id: str = ""  # runs queued together (a sweep, the seeds of one config) share an id and a name
    sweep_name: str = ""

    def describe(self) -> str:
        sweep = f" (sweep {self.sweep_name or self.sweep_id})" if self.sweep_id else ""
        return f"Queued at position {self.position}{sweep}"


@dataclass(frozen=True)
class LayerStat:
    """One leaf module on the probe batch (engine/probe.py); None where it does not apply (a ReLU has no weight)."""

    name: str  # as model.named_modules() names it: "layers.0"
    kind: str  # its class: Linear, ReLU, Conv2d, ...
    act_mean: float | None
    act_std: float | None
    dead: float | None = None  # share of units never positive on the batch (after a ReLU, or a layer one follows)
    saturated: float | None = None  # share of tanh or sigmoid outputs at their limits
    weight_std: float | None = None
    weight_norm: float | None = None
    grad_norm: float | None = None
    update_ratio: float | None = None  # std of the weights' change per step over their std, since the last probe
    fan_in: int | None = None
    act_hist: list[float] = field(default_factory=list)  # [low, high, count, ...]
    weight_hist: list[float] = field(default_factory=list)
    grad_hist: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class LayerStats(Event):
    """The probe's measurement of every layer at `step` (before that step's update): what the Layers view shows."""

    event_name: ClassVar[str] = "layer_stats"
    step: int
    epoch: int
    loss: float | None
    logits_std: float | None
    expected_loss: float | None  # ln K: a uniform guess over K classes
    layers: list[LayerStat] = field(default_factory=list)


@dataclass(frozen=True)
class Diagnosis(Event):
    """What the probe found, in one sentence: the init check's verdict at step 0, and each later flag once, when it
    first appears."""

    event_name: ClassVar[str] = "diagnosis"
    step: int
    text: str
    healthy: bool = False
    key: str = ""  # what and where ("dead layers.1"): a flag already said is not said again

    def describe(self) -> str:
        return ("Init check: " if self.step == 0 else f"Probe at step {self.step}: ") + self.text


TERMINAL_EVENTS = (RunFinished, RunStopped, RunFailed, RunInterrupted)
# written only by a process that trains the run
TRAINING_SIGNS = (BatchProgress, EpochEnded, EvaluationEnded, CheckpointSaved, CommandReceived, LearningRateChanged)



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
        """A process trains it, or is about to: it takes commands."""
        return self in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED)

    @property
    def ended(self) -> bool:
        """Its log ends with an ending: nothing trains it until it is resumed."""
        return self in ENDING_STATE.values()

    def __str__(self) -> str:
        return self.value


ENDING_STATE: dict[type[Event], RunState] = {
    RunFinished: RunState.FINISHED, RunStopped: RunState.STOPPED, RunFailed: RunState.FAILED,
    RunInterrupted: RunState.INTERRUPTED,
}


def next_state(state: RunState, event: Event) -> RunState:
    """The one lifecycle: the state after `event`, for the store, the app and the printer alike."""
    if isinstance(event, (RunStarted, RunUnpaused)):
        return RunState.RUNNING
    if isinstance(event, RunPaused):
        return RunState.PAUSED
    if isinstance(event, ProcessStarted):
        return RunState.STARTING
    if isinstance(event, RunQueued):
        return RunState.QUEUED
    if state in (RunState.QUEUED, RunState.INTERRUPTED) and isinstance(event, TRAINING_SIGNS):
        return RunState.RUNNING  # a process trains it after all: one the liveness check gave up on too soon
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
    if cls is LayerStats:
        layer_fields = {f.name for f in dataclasses.fields(LayerStat)}
        values["layers"] = [LayerStat(**{k: v for k, v in layer.items() if k in layer_fields})
                            for layer in values.get("layers", [])]
    if cls is EvaluationEnded:
        sample_fields = {f.name for f in dataclasses.fields(PredictionSample)}
        # `train --jsonl` leaves the images out of its lines: such a sample has no pixels to draw
        values["samples"] = [PredictionSample(**{"image": [], **{k: v for k, v in s.items() if k in sample_fields}})
                             for s in values.get("samples", [])]
    return cls(**values)
