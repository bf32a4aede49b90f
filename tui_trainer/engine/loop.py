"""The training loop: forward, loss, zero_grad, backward, step — written out, yielding events.

    run = TrainingRun(config)
    for event in run.events():
        ...

Nothing here prints or draws. Consumers (CLI, TUI, run store) read the events;
another thread steers the run through `run.control`. Between two events the run can
be saved (`snapshot()`) and later continued exactly (`from_checkpoint`, `restore`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .config import ConfigError, TrainConfig
from .control import TrainingControl
from .data import DeviceData, DownloadProgress, load_raw, prepare
from .devices import device_label, resolve_device
from .evaluate import evaluate, loss_and_accuracy
from .events import (BatchProgress, EpochEnded, Event, LearningRateChanged, RunFailed, RunFinished,
                     RunPaused, RunResumed, RunStarted, RunStopped)
from .models import build_model, count_parameters
from .optim import build_optimizer, lr_factor
from .step import CudaGraphStep, StepPath, choose_path, make_capturable, plain_optimizer_state, set_lr

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

PROGRESS_EVERY_STEPS = 25  # how often the loop even looks at the clock
PROGRESS_EVERY_SECONDS = 0.25  # how often it pays for a device sync to report progress


class _Stop(Exception):
    pass


class _NonFinite(Exception):
    pass


class TrainingRun:
    def __init__(self, config: TrainConfig, control: TrainingControl | None = None,
                 data: DeviceData | None = None, download_progress: DownloadProgress | None = None,
                 evaluate_at_end: bool = True, progress_seconds: float = PROGRESS_EVERY_SECONDS):
        self.config = config
        self.control = control or TrainingControl()
        self.data = data
        self.download_progress = download_progress
        self.evaluate_at_end = evaluate_at_end
        self.progress_seconds = progress_seconds
        self.device: torch.device | None = None
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.base_lr = config.lr
        self.run_id: str | None = None
        self.generator: torch.Generator | None = None
        self.path = StepPath()
        self._graph: CudaGraphStep | None = None  # the captured step for full batches, on the graph path
        self._last_lr: float | None = None
        self._started = 0.0
        self._seconds_before = 0.0  # run time spent before a resume
        self._paused_seconds = 0.0  # wall time spent paused in this process, left out of every rate
        # (order, batch losses, predictions, step the epoch began at) of the epoch in progress,
        # so a snapshot taken between batches can continue mid-epoch.
        self._position: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None
        self._resume_position: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None
        self._pending_restore: dict[str, Any] | None = None

    # -- setup -------------------------------------------------------------
    def setup(self) -> None:
        """Resolve the device, load the data and build the model; raises DeviceError or DatasetUnavailable."""
        if self.model is not None:
            return
        cfg = self.config
        self.device = resolve_device(cfg.device)
        if self.data is None:
            raw = load_raw(cfg.dataset, cfg.data_dir, self.download_progress)
            self.data = prepare(raw, self.device, cfg.val_split, cfg.seed, cfg.max_train_samples)
        elif self.data.train_x.device != self.device:
            raise ValueError("the data passed in lives on another device than the config asks for")
        self.path = choose_path(cfg, self.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.data.image_shape, len(self.data.classes),
                                 cfg.hidden, cfg.init).to(self.device)
        if self.path.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        if self._pending_restore is not None:
            state, self._pending_restore = self._pending_restore, None
            self._restore_or_refuse(state)
        self._capture()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_y) / self.config.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def lr(self) -> float:
        return self.base_lr * lr_factor(self.config.schedule, self.step, self.total_steps)

    # -- the run -----------------------------------------------------------
    def events(self) -> Iterator[Event]:
        self.setup()
        self._started = time.perf_counter()
        data, cfg = self.data, self.config
        yield RunStarted(
            config=cfg, device=str(self.device), device_name=device_label(self.device),
            dataset_title=data.spec.title, classes=list(data.classes), image_shape=list(data.image_shape),
            train_size=len(data.train_y), val_size=len(data.val_y), test_size=len(data.test_y),
            parameters=count_parameters(self.model), steps_per_epoch=self.steps_per_epoch, run_id=self.run_id,
            resumed_from_epoch=self.epoch, resumed_from_step=self.step, step_path=str(self.path),
            data_fingerprint=data.fingerprint, versions=_versions(self.device),
        )
        try:
            while self.epoch < cfg.epochs:
                yield from self._train_one_epoch()
            if self.evaluate_at_end:
                yield evaluate(self.model, data.test_x, data.test_y, data.classes, data.test_images)
            yield RunFinished(epochs_done=self.epoch, seconds=self.elapsed())
        except _Stop:
            yield RunStopped(epochs_done=self.epoch, seconds=self.elapsed())
        except _NonFinite as exc:
            yield RunFailed(message=str(exc), epochs_done=self.epoch, seconds=self.elapsed())
        except torch.cuda.OutOfMemoryError:
            yield RunFailed(message=f"the device ran out of memory at batch size {cfg.batch_size}; "
                                    "try a smaller --batch-size", epochs_done=self.epoch, seconds=self.elapsed())
        except Exception as exc:  # a run must end with an event, never a traceback in the UI
            yield RunFailed(message=f"{type(exc).__name__}: {exc}", epochs_done=self.epoch,
                            seconds=self.elapsed())

    def _train_one_epoch(self) -> Iterator[Event]:
        cfg, data, model, optimizer = self.config, self.data, self.model, self.optimizer
        y = data.train_y
        n, batch_size, batches = len(y), cfg.batch_size, self.steps_per_epoch
        epoch = self.epoch + 1
        model.train()
        order, batch_losses, predictions, first = self._epoch_buffers(n, batches)
        skipped = min(first * batch_size, n)  # samples a resumed epoch had already trained on
        started = last_report = time.perf_counter()
        paused_before = self._paused_seconds

        for batch in range(first, batches):
            if self.control.pending:
                yield from self._obey_control()
            start, end = batch * batch_size, min((batch + 1) * batch_size, n)
            lr = self.lr
            if lr != self._last_lr:
                set_lr(optimizer, lr)
                self._last_lr = lr
            step = self._graph if self._graph is not None and end - start == batch_size else self._train_step
            logits, loss = step(*self._batch(order[start:end], step))

            with torch.no_grad():
                batch_losses[batch] = loss
                torch.argmax(logits, 1, out=predictions[start:end])
            self.step += 1

            if self.step % PROGRESS_EVERY_STEPS == 0:
                now = time.perf_counter()
                if now - last_report >= self.progress_seconds:
                    last_report = now
                    mean_loss, acc = _epoch_so_far(batch_losses, predictions, y, order, batch_size, batch + 1, end)
                    self._check_finite(mean_loss, epoch)
                    yield BatchProgress(
                        step=self.step, epoch=epoch, epochs=cfg.epochs, batch=batch + 1, batches=batches,
                        loss=mean_loss, acc=acc, lr=lr,
                        samples_per_s=(end - skipped) / (now - started - (self._paused_seconds - paused_before)),
                        **_cuda_memory(self.device), seconds=self.elapsed(),
                    )

        self._position = None
        train_loss, train_acc = _epoch_so_far(batch_losses, predictions, y, order, batch_size, batches, n)
        self._check_finite(train_loss, epoch)
        seconds = time.perf_counter() - started - (self._paused_seconds - paused_before)
        val_loss, val_acc = loss_and_accuracy(model, data.val_x, data.val_y)
        self.epoch = epoch
        yield EpochEnded(epoch=epoch, epochs=cfg.epochs, train_loss=train_loss, train_acc=train_acc,
                         val_loss=val_loss, val_acc=val_acc, lr=self.lr, seconds=seconds,
                         samples_per_s=(n - skipped) / seconds, step=self.step)

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step, written out. On the graph path this is what gets captured and replayed."""
        model, optimizer, graph = self.model, self.optimizer, self.path.graph
        with self.path.autocast(self.device):
            logits = model(inputs)                                                                # forward
            loss = F.cross_entropy(logits, targets, label_smoothing=self.config.label_smoothing)  # loss
        optimizer.zero_grad(set_to_none=not graph)  # a graph writes into the same grads  # zero_grad
        loss.backward()                                                                       # backward
        optimizer.step()                                                                      # step
        return logits, loss

    def _batch(self, idx: torch.Tensor, step: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's images and labels, gathered straight into a captured step's inputs when it has them."""
        x, y = self.data.train_x, self.data.train_y
        into = step if isinstance(step, CudaGraphStep) else None
        inputs = torch.index_select(x, 0, idx, out=into.inputs) if into else x[idx]
        targets = torch.index_select(y, 0, idx, out=into.targets) if into else y[idx]
        if self.config.augment == "flip":
            mirror = torch.rand(len(idx), 1, 1, 1, device=self.device, generator=self.generator) < 0.5
            inputs = torch.where(mirror, inputs.flip(3), inputs)
        return inputs, targets

    def _capture(self) -> None:
        """On the graph path, capture the step for full batches; on failure, say why and train eagerly."""
        self._graph = None
        if not self.path.graph:
            return
        batch_size = self.config.batch_size
        if len(self.data.train_y) < batch_size:
            self.path = dataclasses.replace(self.path, graph=False, fallback="no full batch to capture")
            return
        make_capturable(self.optimizer, self.device)
        self._last_lr = None
        x, y = self.data.train_x[:batch_size], self.data.train_y[:batch_size]
        if self.path.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            self._graph = CudaGraphStep(self._train_step, self.model, self.optimizer, x, y)
        except RuntimeError as exc:  # train on, eagerly (out of memory too: it will say so there)
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            self.path = dataclasses.replace(self.path, graph=False, fallback=f"cuda-graph capture failed: {reason}")

    def _epoch_buffers(self, n: int, batches: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """The epoch's sample order and running-metric buffers, and the batch to start at: fresh, or restored."""
        if self._resume_position is not None:
            order, batch_losses, predictions, first = self._resume_position
            self._resume_position = None
        else:
            order = torch.randperm(n, device=self.device, generator=self.generator)
            # Per-batch results are written into device buffers (one small op each) and only
            # reduced and read back when reporting: reading is a host sync.
            batch_losses = torch.zeros(batches, device=self.device)
            predictions = torch.empty(n, dtype=torch.long, device=self.device)
            first = 0
        self._position = (order, batch_losses, predictions, self.step - first)
        return order, batch_losses, predictions, first

    def _obey_control(self) -> Iterator[Event]:
        control = self.control
        control.settle()
        yield from self._apply_requested_lr()
        if control.stop_requested:
            raise _Stop
        if control.paused:
            yield RunPaused(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed())
            paused_at = time.perf_counter()
            while not control.wait_while_paused(0.05):
                yield from self._apply_requested_lr()
            paused = time.perf_counter() - paused_at  # paused time is not run time
            self._started += paused
            self._paused_seconds += paused
            if control.stop_requested:
                raise _Stop
            yield from self._apply_requested_lr()
            yield RunResumed(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed())

    def _apply_requested_lr(self) -> Iterator[Event]:
        requested = self.control.take_lr()
        if requested is None:
            return
        factor = lr_factor(self.config.schedule, self.step, self.total_steps)
        # Rescale the base so the schedule continues from the requested value.
        self.base_lr = requested / factor if factor > 0 else requested
        yield LearningRateChanged(lr=requested, step=self.step)

    def _check_finite(self, loss: float, epoch: int) -> None:
        if not math.isfinite(loss):
            raise _NonFinite(
                f"training loss became {loss} in epoch {epoch} (step {self.step}); the learning rate "
                f"{self.lr:.3g} is too high for this model: try a lower --lr such as {self.lr / 10:.3g}"
            )

    def elapsed(self) -> float:
        """Training time so far, across resumes, pauses left out."""
        return self._seconds_before + (time.perf_counter() - self._started if self._started else 0.0)

    # -- checkpoints -------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here: weights, optimizer, schedule, RNGs, epoch position.

        Take it between two events (the loop waits at a yield, so nothing moves): at an epoch end,
        a progress event, or the stop. Tensors stay where they live; `progress` is plain numbers.
        """
        if self.model is None:
            raise RuntimeError("snapshot() needs a set-up run; call setup() or start events() first")
        rng: dict[str, torch.Tensor] = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        progress: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "base_lr": self.base_lr,
                                    "seconds": self.elapsed(), "device_type": self.device.type}
        state: dict[str, Any] = {"model": self.model.state_dict(),
                                 "optimizer": plain_optimizer_state(self.optimizer.state_dict()),
                                 "rng": rng, "progress": progress}
        if self._position is not None:
            order, batch_losses, predictions, epoch_start = self._position
            done = self.step - epoch_start
            progress["batches_done"] = done
            state["position"] = {"order": order, "batch_losses": batch_losses,
                                 "predictions": predictions[:min(done * self.config.batch_size, len(order))]}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a `snapshot()` (as a checkpoint gives it back); sets the run up first if needed."""
        self.setup()
        self._restore_or_refuse(state)
        self._capture()  # the optimizer's state tensors are new: a graph captured before points at the old ones

    def _restore_or_refuse(self, state: dict[str, Any]) -> None:
        from .checkpoints import CheckpointError, _first_line

        self._last_lr = None  # the restored optimizer holds the lr it was saved with
        try:
            self._restore(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"the checkpoint does not fit this run ({_first_line(exc)})") from None

    def _restore(self, state: dict[str, Any]) -> None:
        progress, device = state["progress"], self.device
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(progress["epoch"]), int(progress["step"])
        self.base_lr, self._seconds_before = float(progress["base_lr"]), float(progress.get("seconds", 0.0))
        rng = state.get("rng", {})
        torch.set_rng_state(rng["torch"].cpu())
        # A generator's state only fits a generator of the same kind: resumed on another kind of
        # device the run goes on, but no longer bit for bit.
        if progress.get("device_type") == device.type:
            self.generator.set_state(rng["generator"].cpu())
            if "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"].cpu(), device)
        position = state.get("position")
        if position is not None:
            order = position["order"].to(device)
            if len(order) != len(self.data.train_y):
                raise ValueError(f"its epoch covers {len(order)} training images but this data has "
                                 f"{len(self.data.train_y)}")
            predictions = torch.empty(len(order), dtype=torch.long, device=device)
            done = position["predictions"]
            predictions[:len(done)] = done.to(device)
            self._resume_position = (order, position["batch_losses"].to(device), predictions,
                                     int(progress["batches_done"]))

    @classmethod
    def from_checkpoint(cls, checkpoint: "Checkpoint | str | Path", control: TrainingControl | None = None, *,
                        epochs: int | None = None, device: str | None = None, **kwargs: Any) -> "TrainingRun":
        """A run that continues `checkpoint` exactly where it was saved; `epochs` may extend it.

        `epoch`, `step` and `base_lr` are set at once; weights, optimizer and RNGs are restored
        in `setup()`, which loads the data the checkpoint's config names (pass `data=` to reuse
        data already prepared for that config).
        """
        from .checkpoints import Checkpoint, load_checkpoint

        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        changes: dict[str, Any] = {}
        if epochs is not None:
            needed = checkpoint.epoch + (1 if checkpoint.mid_epoch else 0)
            if epochs < needed:
                raise ConfigError({"epochs": f"epochs: got {epochs}; the checkpoint has {checkpoint.epoch} epoch(s) "
                                             f"done{' and one begun' if checkpoint.mid_epoch else ''}, "
                                             f"so ask for at least {needed}"})
            changes["epochs"] = epochs
        if device is not None:
            changes["device"] = device
        run = cls(checkpoint.config.replace(**changes) if changes else checkpoint.config, control, **kwargs)
        run.run_id = checkpoint.run_id
        # Known now, so a caller can show where it resumes before setup() restores the rest.
        run.epoch, run.step = checkpoint.epoch, checkpoint.step
        run.base_lr = float(checkpoint.state["progress"]["base_lr"])
        run._pending_restore = checkpoint.state
        return run


def _versions(device: torch.device) -> dict[str, str]:
    """What trained the run: the project, torch and the device, for its record."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        project = version("scratch-tui")
    except PackageNotFoundError:  # run from a source tree that was never installed
        project = "unknown"
    found = {"scratch-tui": project, "torch": torch.__version__, "device": device_label(device)}
    if device.type == "cuda":
        found["cuda"] = str(torch.version.cuda)
    return found


def _cuda_memory(device: torch.device) -> dict[str, float]:
    """Measured here, in the training process: a viewer in another process cannot see this memory."""
    if device.type != "cuda":
        return {}
    return {"memory_mib": round(torch.cuda.memory_allocated(device) / 2**20, 1),
            "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


def _epoch_so_far(batch_losses: torch.Tensor, predictions: torch.Tensor, y: torch.Tensor, order: torch.Tensor,
                  batch_size: int, batches_done: int, seen: int) -> tuple[float, float]:
    """Mean loss (weighted by batch size) and accuracy in percent over the first `seen` samples of the epoch."""
    last_batch = seen - batch_size * (batches_done - 1)  # only the epoch's final batch can be short
    losses = batch_losses[:batches_done]
    loss = (losses[:-1].sum() * batch_size + losses[-1] * last_batch) / seen
    correct = (predictions[:seen] == y[order[:seen]]).sum()
    return loss.item(), 100.0 * correct.item() / seen


def run_training(config: TrainConfig, on_event: Callable[[Event], None],
                 control: TrainingControl | None = None, **kwargs) -> Event:
    """Callback form of `TrainingRun.events()`; returns the final event."""
    last: Event | None = None
    for last in TrainingRun(config, control, **kwargs).events():
        on_event(last)
    return last
