"""The training loop: forward, loss, zero_grad, backward, step — written out, yielding events.

    run = TrainingRun(config)
    for event in run.events():
        ...

Nothing here prints or draws. Consumers (CLI, TUI, run store) read the events;
another thread steers the run through `run.control`. Between two events the run can
be saved (`snapshot()`) and later continued exactly (`from_checkpoint`, `restore`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F

from .config import ConfigError, TrainConfig, applies
from .control import TrainingControl
from .data import DeviceData, DownloadProgress, load_raw, prepare
from .devices import device_label, resolve_device
from .probe import PROBE_IMAGES, Probe, affordable, diagnose, due
from .receipt import receipt
from .registry import MODELS
from .threads import pin_cpu_threads
from .wording import counted
from .distributed import Agreed, Distributed, launched_by_torchrun
from .evaluate import evaluate, loss_and_accuracy
from .events import (BatchProgress, BestWeightsRestored, EarlyStopped, EpochEnded, Event, LearningRateChanged,
                     RunFailed, RunFinished, RunPaused, RunUnpaused, RunStarted, RunStopped)
from .models import build_model, count_parameters
from .monitor import Monitor
from .optim import build_optimizer, lr_factor, plateau_cut
from .step import CudaGraphStep, StepPath, choose_path, make_capturable, plain_optimizer_state, set_lr

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

PROGRESS_EVERY_STEPS = 25  # how often the loop even looks at the clock
PROGRESS_EVERY_SECONDS = 0.25  # how often it pays for a device sync to report progress


class _Stop(Exception):
    pass


def on_record(step: int) -> bool:
    """Steps 25, 50, 100, 200, ... (doubling): reported whatever the clock says, so that every run's log holds its
    running loss at the same steps, and `runs verify` has those to hold a second training against. A sync each,
    a handful in a whole run."""
    laps, rest = divmod(step, PROGRESS_EVERY_STEPS)
    return rest == 0 and laps > 0 and laps & (laps - 1) == 0


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
        self.threads = 0  # CPU threads it computes with, pinned by setup(): a resume keeps its run's count
        self._probe: Probe | None = None
        self._probed_step = -1
        self._probe_spent = self._probe_cost = 0.0  # seconds in the probe since step 0, and its latest cost
        self._said: set[str] = set()  # the probe's flags said so far: each once
        self.run_id: str | None = None
        self.generator: torch.Generator | None = None
        self.path = StepPath()
        self.dist: Distributed | None = None  # set when torchrun started this process as one of several
        self._net: torch.nn.Module | None = None  # what the step calls: the model, or DDP around it
        self._graph: CudaGraphStep | None = None  # the captured step for full batches, on the graph path
        self._last_lr: float | None = None
        self._started = 0.0
        # the last progress report; kept across epochs, so an epoch shorter than `progress_seconds` still
        # gets one now and then (a checkpoint asked for is written at the next one)
        self._last_report = 0.0
        self._seconds_before = 0.0  # run time spent before a resume
        self._paused_seconds = 0.0  # wall time spent paused in this process, left out of every rate
        # (sample order, step the epoch began at) of the epoch in progress, so a snapshot taken
        # between batches can continue mid-epoch; the epoch's running sums are in `_sums`.
        self._position: tuple[torch.Tensor, int] | None = None
        self._resume_position: tuple[torch.Tensor, int] | None = None
        # The epoch's running loss sum and correct count, added to on the device by every step
        # (inside the graph on the graph path) and read back only to report: a read is a host sync.
        self._sums: torch.Tensor | None = None
        self._agreed_sums: torch.Tensor | None = None  # under DDP: the sums over every rank at the last agreement
        self._pending_restore: dict[str, Any] | None = None
        # The validation metric early stopping, restore_best and plateau watch, and (with restore_best)
        # a copy of the best epoch's weights on the device: a few MB for these models, and no disk trip.
        self.monitor = Monitor(config.monitor)
        self._best_weights: dict[str, torch.Tensor] | None = None
        # Set while the run trains in a pack (engine/pack.py), whose stacked weights are the live ones; its name
        # and the other runs' ids go in its record. `rng_state`: torch's global RNG as setup() left it (after the
        # init): its dropout masks are drawn from there, and a pack keeps one per member.
        self.pack: Any = None
        self.pack_name = ""
        self.pack_with: list[str] = []
        # With config.ema: the moving average of the weights, one tensor per parameter, on the device
        self.ema: list[torch.Tensor] | None = None
        self.rng_state: dict[str, torch.Tensor] = {}

    # -- setup -------------------------------------------------------------
    def setup(self) -> None:
        """Resolve the device, load the data and build the model; raises DeviceError or DatasetUnavailable."""
        if self.model is not None:
            return
        cfg = self.config
        # before anything computes: the config's count, else the one a resumed run started with, else auto
        self.threads = pin_cpu_threads(cfg.threads or self.threads)
        self.device = resolve_device(cfg.device)
        if launched_by_torchrun():
            self.dist = Distributed.from_environment(self.device.type)
            self.device = self.dist.device(self.device)
        if self.data is None:
            raw = load_raw(cfg.dataset, cfg.data_dir, self.download_progress, config=cfg)
            self.data = prepare(raw, self.device, cfg.val_split, cfg.seed, cfg.max_train_samples)
        elif self.data.train_x.device != self.device:
            raise ValueError("the data passed in lives on another device than the config asks for")
        if applies("model_source", cfg) and not cfg.model_source:  # a config never made ready: its file, now
            from .model_file import with_source

            self.config = cfg = with_source(cfg)
        self.path = choose_path(cfg, self.device)
        if self.dist and self.path.graph:  # DDP's all-reduce runs between the step's kernels
            self.path = dataclasses.replace(self.path, graph=False, fallback="eager under DDP")
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.data.image_shape, len(self.data.classes)).to(self.device)
        if self.path.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg)
        self.ema = [p.detach().clone() for p in self.model.parameters()] if cfg.ema > 0 else None
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self._sums = torch.zeros(2, device=self.device)
        if self._pending_restore is not None:
            state, self._pending_restore = self._pending_restore, None
            self._restore_or_refuse(state)
        self._net = self.model
        self._probe = None if cfg.probe_every <= 0 or (self.dist and not self.dist.main) else Probe(
            self.model, self.data.train_x[:PROBE_IMAGES], self.data.train_y[:PROBE_IMAGES], len(self.data.classes))
        if self.dist:  # after the restore: DDP starts every rank from rank 0's weights
            from torch.nn.parallel import DistributedDataParallel

            self._net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                if self.device.type == "cuda" else None)
        self._capture()
        self.rng_state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            self.rng_state["cuda"] = torch.cuda.get_rng_state(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_y) / self.config.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def mid_epoch(self) -> bool:
        """Whether a snapshot now is part-way through epoch `epoch + 1` (and continues it where it stands)."""
        return self._position is not None

    @property
    def lr(self) -> float:
        return self.base_lr * lr_factor(self.config.schedule, self.step, self.total_steps)

    # -- the run -----------------------------------------------------------
    def events(self) -> Iterator[Event]:
        if self.pack is not None:  # its steps are the pack's: its events come from there (engine/pack.py)
            return self.pack.member_events(self)
        return self._events()

    def _events(self) -> Iterator[Event]:
        self.setup()
        self._started = self._last_report = time.perf_counter()
        data, cfg = self.data, self.config
        yield self.started_event()
        together = True  # every rank ends here at the same step; false for a failure of this process alone
        try:
            while self.epoch < cfg.epochs:
                stopped = self.early_stopped()
                if stopped is not None:
                    yield stopped
                    break
                yield from self._train_one_epoch()
            yield from self.finish()
        except _Stop:
            why = self.control.stop_reason  # a pruner's (runs/trial_report.py); else said by whoever asked
            yield RunStopped(epochs_done=self.epoch, seconds=self.elapsed(), **({"reason": why} if why else {}))
        except _NonFinite as exc:
            yield RunFailed(message=str(exc), epochs_done=self.epoch, seconds=self.elapsed())
        except torch.cuda.OutOfMemoryError:
            together = False
            yield RunFailed(message=f"the device ran out of memory at batch size {cfg.batch_size}; "
                                    "try a smaller --batch-size", epochs_done=self.epoch, seconds=self.elapsed())
        except Exception as exc:  # a run must end with an event, never a traceback in the UI
            together = False
            yield RunFailed(message=f"{type(exc).__name__}: {exc}", epochs_done=self.epoch,
                            seconds=self.elapsed())
        finally:
            if self.dist:
                self.dist.close(together)

    def started_event(self) -> RunStarted:
        data, cfg = self.data, self.config
        return RunStarted(
            config=cfg, device=str(self.device), device_name=device_label(self.device),
            dataset_title=data.spec.title, classes=list(data.classes), image_shape=list(data.image_shape),
            train_size=len(data.train_y), val_size=len(data.val_y), test_size=len(data.test_y),
            parameters=count_parameters(self.model), steps_per_epoch=self.steps_per_epoch, run_id=self.run_id,
            resumed_from_epoch=self.epoch, resumed_from_step=self.step, step_path=str(self.path),
            data_fingerprint=data.fingerprint, **receipt(self.device), threads=self.threads,
            processes=self.dist.world_size if self.dist else 1, model_sha256=_source_sha256(cfg),
            pack=self.pack_name, pack_with=list(self.pack_with))

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """The model holding the moving average of its weights (config.ema) while the block runs."""
        params = [p.detach() for p in self.model.parameters()]
        live = [p.clone() for p in params]
        torch._foreach_copy_(params, self.ema)
        try:
            yield
        finally:
            torch._foreach_copy_(params, live)

    def early_stopped(self) -> EarlyStopped | None:
        """EarlyStopped when the patience is spent. Checked before an epoch rather than after one, so a run
        resumed from the checkpoint of the epoch that exhausted the patience stops too."""
        if not self.monitor.exhausted(self.config.early_stopping):
            return None
        return EarlyStopped(epoch=self.epoch, best_epoch=self.monitor.best_epoch, monitor=self.config.monitor,
                            best_value=self.monitor.best, patience=self.config.early_stopping, step=self.step)

    def finish(self) -> Iterator[Event]:
        """The ending of a run that trained its epochs (or stopped early): best weights, the test set, the end."""
        data = self.data
        weights_epoch = yield from self._restore_best()
        if self.evaluate_at_end:
            # the moving average's weights, where the run keeps one (and has not gone back to its best epoch's)
            averaged = self.ema is not None and not (self.config.restore_best and self._best_weights is not None)
            with self.averaged() if averaged else contextlib.nullcontext():
                result = evaluate(self.model, data.test_x, data.test_y, data.classes, data.test_images,
                                  weights_epoch=weights_epoch)
            yield result
        yield RunFinished(epochs_done=self.epoch, seconds=self.elapsed())

    def end_epoch(self, epoch: int, trained: int, skipped: int, seconds: float) -> Iterator[Event]:
        """The epoch's end: its training sums read, the validation set measured, the monitor told."""
        cfg, data = self.config, self.data
        self._position = None
        train_loss, train_acc = self._epoch_so_far(trained)
        self._check_finite(train_loss, epoch)
        val_loss, val_acc = loss_and_accuracy(self.model, data.val_x, data.val_y)
        ema_loss = ema_acc = None
        if self.ema is not None:
            with self.averaged():
                ema_loss, ema_acc = loss_and_accuracy(self.model, data.val_x, data.val_y)
        self.epoch = epoch
        ended = EpochEnded(epoch=epoch, epochs=cfg.epochs, train_loss=train_loss, train_acc=train_acc,
                           val_loss=val_loss, val_acc=val_acc, lr=self.lr, seconds=seconds,
                           samples_per_s=(len(data.train_y) - skipped) / seconds, step=self.step,
                           ema_val_loss=ema_loss, ema_val_acc=ema_acc)
        # Before the yield: a checkpoint taken at the epoch end must hold what this epoch decided.
        cut = self._watch(epoch, val_loss, val_acc)
        yield ended
        if cut is not None:
            yield cut
        yield from self.look_inside(epoch)  # once an epoch, on the weights it ends with

    def _train_one_epoch(self) -> Iterator[Event]:
        cfg, data, model, optimizer = self.config, self.data, self.model, self.optimizer
        y = data.train_y
        n, batch_size, batches = len(y), cfg.batch_size, self.steps_per_epoch
        epoch = self.epoch + 1
        model.train()
        order, first = self._epoch_order(n)
        skipped = min(first * batch_size, n)  # samples a resumed epoch had already trained on
        started = time.perf_counter()
        paused_before = self._paused_seconds

        for batch in range(first, batches):
            if self.control.pending and not self.dist:  # several ranks obey only at agreed steps
                yield from self._obey_control()
            if due(self.step, cfg.probe_every, batches):
                yield from self.look_inside(epoch)
            start, end = batch * batch_size, min((batch + 1) * batch_size, n)
            lr = self.lr
            if lr != self._last_lr:
                set_lr(optimizer, lr)
                self._last_lr = lr
            step = self._graph if self._graph is not None and end - start == batch_size else self._train_step
            if not self.dist or end - start >= self.dist.world_size:  # a tail too small to share is left out
                step(*self._batch(order, start, end, step))
            self.step += 1

            if self.step % PROGRESS_EVERY_STEPS == 0:
                now = time.perf_counter()
                report = now - self._last_report >= self.progress_seconds or on_record(self.step)
                if self.dist:
                    agreed = self.dist.agree(self.control, report, self.device)
                    yield from self._obey_agreed(agreed)
                    report = agreed.report
                if report:
                    self._last_report = now
                    mean_loss, acc = self._epoch_so_far(end)
                    self._check_finite(mean_loss, epoch)
                    yield BatchProgress(
                        step=self.step, epoch=epoch, epochs=cfg.epochs, batch=batch + 1, batches=batches,
                        loss=mean_loss, acc=acc, lr=lr,
                        samples_per_s=(end - skipped) / (now - started - (self._paused_seconds - paused_before)),
                        **_cuda_memory(self.device), seconds=self.elapsed(),
                    )

        tail = n % batch_size
        trained = n - tail if self.dist and 0 < tail < self.dist.world_size else n  # that tail was left out
        seconds = time.perf_counter() - started - (self._paused_seconds - paused_before)
        yield from self.end_epoch(epoch, trained, skipped, seconds)

    def look_inside(self, epoch: int) -> Iterator[Event]:
        """The probe's layer statistics now, and what they say that has not been said (engine/probe.py)."""
        if self._probe is None or self._probed_step == self.step:
            return
        steps_left = self.steps_per_epoch * epoch - self.step
        if self.step and not affordable(self._probe_spent, self._probe_cost, self.elapsed(), self.step, steps_left):
            return  # over its share of the time: a later due probe runs once training has earned it
        self._probed_step = self.step
        started = time.perf_counter()
        stats = self._probe.measure(self.step, epoch)  # it reads its numbers back, so the device is done with it
        self._probe_cost = time.perf_counter() - started
        if self.step:  # the init check is owed whatever it costs
            self._probe_spent += self._probe_cost
        yield stats
        cfg = self.config
        hint = "`--init kaiming`" if "init" in MODELS.entry(cfg.model).settings and cfg.init != "kaiming" else ""
        scale = self.lr / self.base_lr if self.base_lr > 0 else 1.0
        for diagnosis in diagnose(stats, init=self.step == 0, scaled_init_hint=hint, lr_scale=scale):
            if diagnosis.key not in self._said:
                self._said.add(diagnosis.key)
                yield diagnosis

    def _watch(self, epoch: int, val_loss: float | None, val_acc: float | None) -> LearningRateChanged | None:
        """Update the monitor with this epoch; keep its weights if best; cut the lr at a plateau."""
        cfg = self.config
        if self.monitor.update(epoch, val_loss, val_acc) and cfg.restore_best:
            self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if cfg.schedule != "plateau" or self.monitor.plateau_wait < cfg.plateau_patience:
            return None
        before = self.lr
        after = plateau_cut(before, cfg.plateau_factor, cfg.min_lr)
        if after == before:  # at the floor already: nothing to cut, and (as Keras) the wait goes on
            return None
        self.monitor.plateau_wait = 0
        # plateau's schedule factor is 1, so the base is the lr in force; a set lr rewrites it the same way,
        # and snapshot() keeps it: the cut needs no state of its own
        self.base_lr = after
        return LearningRateChanged(lr=after, step=self.step, reason="plateau", previous=before)

    def _restore_best(self) -> Iterator[Event]:
        """With restore_best, load the best epoch's weights; returns the epoch whose weights the model holds."""
        if not self.config.restore_best or self._best_weights is None:
            return self.epoch
        self.model.load_state_dict(self._best_weights)
        yield BestWeightsRestored(epoch=self.monitor.best_epoch, monitor=self.monitor.metric,
                                  value=self.monitor.best, last_epoch=self.epoch)
        return self.monitor.best_epoch

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step, written out. On the graph path this is what gets captured and replayed."""
        optimizer, graph = self.optimizer, self.path.graph
        with self.path.autocast(self.device):
            logits = self._net(inputs)                                                            # forward
            loss = F.cross_entropy(logits, targets, label_smoothing=self.config.label_smoothing)  # loss
        optimizer.zero_grad(set_to_none=not graph)  # a graph writes into the same grads  # zero_grad
        loss.backward()                                                                       # backward
        optimizer.step()                                                                      # step
        with torch.no_grad():
            if self.ema is not None:  # the average moves a (1 - decay) share of the way to the new weights
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.model.parameters()], 1 - self.config.ema)
            correct = (logits.argmax(1) == targets).sum()
            self._sums += torch.stack((loss * len(targets), correct.to(loss.dtype))).float()
        # Detached, so nothing keeps this step's autograd graph (and its grad accumulators) alive
        # into the next: on the graph path that would tie them to the capture's stream.
        return logits.detach(), loss.detach()

    def _batch(self, order: torch.Tensor, start: int, end: int, step: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the batch order[start:end], gathered straight into a captured step's inputs."""
        x, y = self.data.train_x, self.data.train_y
        lo, hi = self.dist.share(start, end) if self.dist else (start, end)
        idx = order[lo:hi]
        into = step if isinstance(step, CudaGraphStep) else None
        inputs = torch.index_select(x, 0, idx, out=into.inputs) if into else x[idx]
        targets = torch.index_select(y, 0, idx, out=into.targets) if into else y[idx]
        if self.config.augment == "flip":
            # drawn for the whole batch on every rank, so the ranks' generators stay in step
            mirror = torch.rand(end - start, 1, 1, 1, device=self.device, generator=self.generator) < 0.5
            inputs = torch.where(mirror[lo - start:hi - start], inputs.flip(3), inputs)
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
        sums = self._sums.clone()  # warm-up adds to them
        ema = None if self.ema is None else [t.clone() for t in self.ema]  # and moves the average
        try:
            self._graph = CudaGraphStep(self._train_step, self.model, self.optimizer, x, y)
        except Exception as exc:  # train on, eagerly (out of memory too: it will say so there); a user's model
            # that cannot be captured (a .item() or a branch on values in its forward) lands here too
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            self.path = dataclasses.replace(self.path, graph=False, fallback=f"cuda-graph capture failed: {reason}")
        finally:
            self._sums.copy_(sums)
            if ema is not None:
                torch._foreach_copy_(self.ema, ema)

    def _epoch_order(self, n: int) -> tuple[torch.Tensor, int]:
        """The epoch's sample order and the batch to start at: fresh, or where a checkpoint left it."""
        if self._resume_position is not None:
            order, first = self._resume_position
            self._resume_position = None
        else:
            order = torch.randperm(n, device=self.device, generator=self.generator)
            self._sums.zero_()
            first = 0
        self._position = (order, self.step - first)
        return order, first

    def _epoch_so_far(self, seen: int) -> tuple[float, float]:
        """Mean loss and accuracy in percent over the epoch's first `seen` samples (of every rank)."""
        loss_sum, correct = self._global_sums().tolist()
        return loss_sum / seen, 100.0 * correct / seen

    def _global_sums(self) -> torch.Tensor:
        """The running sums over every rank; kept, so that rank 0 can checkpoint them without a collective."""
        if self.dist:
            self._agreed_sums = self.dist.sum(self._sums)
            return self._agreed_sums
        return self._sums

    def _obey_control(self) -> Iterator[Event]:
        control = self.control
        control.settle()
        yield from self._change_lr(control.take_lr())
        if control.stop_requested:
            raise _Stop
        if control.paused:
            yield RunPaused(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed(), lr=self.lr)
            paused_at = time.perf_counter()
            while not control.wait_while_paused(0.05):
                yield from self._change_lr(control.take_lr())
            self._leave_out(time.perf_counter() - paused_at)
            if control.stop_requested:
                raise _Stop
            yield from self._change_lr(control.take_lr())
            yield RunUnpaused(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed(), lr=self.lr)

    def _obey_agreed(self, agreed: Agreed) -> Iterator[Event]:
        """`_obey_control` for several ranks: every rank acts on what rank 0 broadcast, at the same step."""
        yield from self._change_lr(agreed.lr)
        if agreed.stop or agreed.paused:
            self._global_sums()  # a checkpoint taken now (by rank 0 alone) needs them
        if agreed.paused and not agreed.stop:
            yield RunPaused(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed(), lr=self.lr)
            paused_at = time.perf_counter()
            while agreed.paused and not agreed.stop:
                if self.dist.main:
                    self.control.wait_while_paused(0.05)
                agreed = self.dist.agree(self.control, False, self.device)
                yield from self._change_lr(agreed.lr)
            self._leave_out(time.perf_counter() - paused_at)
            if not agreed.stop:
                yield RunUnpaused(epoch=self.epoch + 1, step=self.step, seconds=self.elapsed(), lr=self.lr)
        if agreed.stop:
            raise _Stop

    def _leave_out(self, paused: float) -> None:
        """Paused time is not run time."""
        self._started += paused
        self._paused_seconds += paused

    def _change_lr(self, requested: float | None) -> Iterator[Event]:
        if requested is None:
            return
        before = self.lr
        factor = lr_factor(self.config.schedule, self.step, self.total_steps)
        # Rescale the base so the schedule continues from the requested value.
        self.base_lr = requested / factor if factor > 0 else requested
        yield LearningRateChanged(lr=requested, step=self.step, previous=before)

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
        if self.pack is not None:  # its weights, optimizer state and RNG live in the pack's stacks
            self.pack.sync(self)
        rng: dict[str, torch.Tensor] = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        progress: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "base_lr": self.base_lr,
                                    "seconds": self.elapsed(), "device_type": self.device.type,
                                    "monitor": self.monitor.state()}
        state: dict[str, Any] = {"model": self.model.state_dict(),
                                 "optimizer": plain_optimizer_state(self.optimizer.state_dict()),
                                 "rng": rng, "progress": progress}
        if self._best_weights is not None:
            state["best_weights"] = self._best_weights  # replaced, never written in place: safe to share
        if self.ema is not None:
            state["ema"] = {name: e.clone() for (name, _), e in zip(self.model.named_parameters(), self.ema)}
        if self._position is not None:
            order, epoch_start = self._position
            progress["batches_done"] = self.step - epoch_start
            state["position"] = {"order": order, "sums": (self._agreed_sums if self.dist else self._sums).clone()}
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
        self.monitor = Monitor.from_state(self.config.monitor, progress.get("monitor"))
        if self.ema is not None and "ema" in state:
            named = dict(state["ema"])
            for (name, _), e in zip(self.model.named_parameters(), self.ema):
                e.copy_(named[name])
        best = state.get("best_weights")
        self._best_weights = None if best is None else {k: v.to(device) for k, v in best.items()}
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
            done = int(progress["batches_done"])
            self._sums.copy_(position["sums"] if "sums" in position else self._older_sums(position, order, done))
            if self.dist and not self.dist.main:  # rank 0 carries the whole sums on
                self._sums.zero_()
            self._resume_position = (order, done)

    def _older_sums(self, position: dict[str, Any], order: torch.Tensor, done: int) -> torch.Tensor:
        """The running sums of a checkpoint written before they were kept (0.1 kept per-batch losses and
        predictions): every batch before a mid-epoch position is a full one."""
        predictions = position["predictions"].to(self.device)
        loss_sum = position["batch_losses"][:done].to(self.device).sum() * self.config.batch_size
        correct = (predictions == self.data.train_y[order[:len(predictions)]]).sum()
        return torch.stack((loss_sum, correct.to(loss_sum.dtype)))

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
                raise ConfigError({"epochs": f"epochs: got {epochs}; the checkpoint has "
                                             f"{counted(checkpoint.epoch, 'epoch')} done{' and one begun' if checkpoint.mid_epoch else ''}, "
                                             f"so ask for at least {needed}"})
            changes["epochs"] = epochs
        if device is not None:
            changes["device"] = device
        run = cls(checkpoint.config.replace(**changes) if changes else checkpoint.config, control, **kwargs)
        run.run_id = checkpoint.run_id
        # Known now, so a caller can show where it resumes before setup() restores the rest.
        run.epoch, run.step = checkpoint.epoch, checkpoint.step
        run.base_lr = float(checkpoint.state["progress"]["base_lr"])
        run.threads = int(checkpoint.meta.get("threads", 0))  # its sums in the same order (0: older checkpoints)
        state = checkpoint.state
        if "monitor" in checkpoint.meta and "monitor" not in state["progress"]:
            # the loader passes on the progress keys it knows; the monitor's plain numbers are in the meta
            state = {**state, "progress": {**state["progress"], "monitor": checkpoint.meta["monitor"]}}
        run._pending_restore = state
        return run


def _source_sha256(config: TrainConfig) -> str:
    """The sha256 of the model file's source the run builds from; '' for a built-in model."""
    if not config.model_source:
        return ""
    from .model_file import source_sha256

    return source_sha256(config.model_source)


def _cuda_memory(device: torch.device) -> dict[str, float]:
    """Measured here, in the training process: a viewer in another process cannot see this memory."""
    if device.type != "cuda":
        return {}
    return {"memory_mib": round(torch.cuda.memory_allocated(device) / 2**20, 1),
            "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
