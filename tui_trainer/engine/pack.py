"""Packs: same-shaped runs trained together as one, each still its own run.

A sweep's runs often differ only in numbers the network's shape does not see: the seed, the learning rate, the
weight decay. Trained one process each, every run pays its own start (import, data, first step) and, on a GPU,
its own kernel launches for kernels far too small to fill the card. A pack holds K such runs' weights stacked on a
leading member axis and takes one step for all of them: a linear layer is one batched matrix product (`bmm`), a
convolution one grouped convolution, a batch norm one over K×C channels.

    members = [TrainingRun(config) for config in configs]     # each set up: its data, its model, its optimizer
    pack = Pack(members)
    for member, event in pack.events():                        # every member's events, as it would yield alone
        ...

Each member keeps everything that makes it a run: its config, control, epoch and step, its own data order (its
generator's shuffle), its init and dropout masks (from its seed), its monitor, probe and checkpoints (`snapshot()`
reads the stacks back into its own model and optimizer first). Its numbers equal the same run trained alone, up to
float rounding: tests/engine/test_pack.py checks 2 epochs of the MLP and of the CNN.

Steering is per member: a new lr is its lr alone; stop (early stopping, a study's pruner, halving) ends that member
and the pack goes on without it; pause freezes its weights, optimizer state and data position while the others train on.

Who packs with whom: `pack_key` is equal for configs that may share a pack (MEMBER_FIELDS may differ).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import adam as torch_adam, sgd as torch_sgd

from .config import TrainConfig
from .events import TERMINAL_EVENTS, BatchProgress, Event, RunFailed, RunPaused, RunStopped, RunUnpaused
from .loop import on_record
from .pack_shape import pack_key  # noqa: F401  (who packs with whom, torch-free for the queue runner)
from .probe import due
from .registry import MODELS, resolve

if TYPE_CHECKING:
    from .data import DeviceData
    from .loop import TrainingRun

PROGRESS_EVERY_STEPS = 25
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch's defaults, which engine/optim.py builds with


def shared_data(configs: list[TrainConfig], download_progress: Any = None) -> list["DeviceData"]:
    """Each config's data, loaded once and split once per seed (a split is drawn from the seed)."""
    from .data import load_raw, prepare
    from .devices import resolve_device

    first = configs[0]
    device = resolve_device(first.device)
    raw = load_raw(first.dataset, first.data_dir, download_progress, config=first)
    split: dict[tuple, DeviceData] = {}
    for config in configs:
        key = (config.seed, config.val_split, config.max_train_samples)
        if key not in split:
            split[key] = prepare(raw, device, config.val_split, config.seed, config.max_train_samples)
    return [split[(c.seed, c.val_split, c.max_train_samples)] for c in configs]


# -- the stacked network ---------------------------------------------------------------------------------------
_GROUPED = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)  # computed on (B, K*C, H, W): one grouped op for all members


class _Stack:
    """One weight or buffer of the layers, stacked: (K, ...), and each member's own tensor it mirrors."""

    def __init__(self, layer: int, name: str, own: list[torch.Tensor], is_param: bool):
        self.layer, self.name, self.own, self.is_param = layer, name, own, is_param
        self.tensor = torch.stack([t.detach() for t in own])
        if is_param:
            self.tensor.requires_grad_(True)

    def keep(self, index: torch.Tensor, rows: list[int]) -> None:
        with torch.no_grad():
            self.tensor = self.tensor.detach().index_select(0, index)
        if self.is_param:
            self.tensor.requires_grad_(True)
        self.own = [self.own[i] for i in rows]


class StackedNet:
    """K same-shaped models' layers with their weights stacked on a leading member axis."""

    def __init__(self, models: list[nn.Module], layers_of: Callable[[nn.Module], list[nn.Module]]):
        layer_lists = [layers_of(m) for m in models]
        self.layers = layer_lists[0]
        self.stacks: list[_Stack] = []
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, (nn.Flatten, nn.ReLU, nn.Dropout, nn.Linear, nn.Conv2d, nn.BatchNorm2d,
                                      nn.MaxPool2d)) and type(layer).__name__ != "ScratchLinear":
                raise ValueError(f"a pack cannot stack a {type(layer).__name__} layer")
            for name, tensor in [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]:
                if tensor is not None:
                    self.stacks.append(_Stack(i, name, [getattr(member[i], name) for member in layer_lists],
                                              isinstance(tensor, nn.Parameter)))
        self._index()

    def _index(self) -> None:
        self.named: list[dict[str, torch.Tensor]] = [{} for _ in self.layers]
        for stack in self.stacks:
            self.named[stack.layer][stack.name] = stack.tensor

    @property
    def params(self) -> list[torch.Tensor]:
        return [s.tensor for s in self.stacks if s.is_param]

    @property
    def buffers(self) -> list[torch.Tensor]:
        return [s.tensor for s in self.stacks if not s.is_param]

    def member_params(self, k: int) -> list[torch.Tensor]:
        """Member k's own parameters, in the order of `params`: the keys of its optimizer's state."""
        return [s.own[k] for s in self.stacks if s.is_param]

    @torch.no_grad()
    def unstack(self, k: int) -> None:
        """Member k's own model gets its weights and buffers from the stacks."""
        for stack in self.stacks:
            stack.own[k].copy_(stack.tensor[k])

    def keep(self, rows: list[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=self.stacks[0].tensor.device)
        for stack in self.stacks:
            stack.keep(index, rows)
        self._index()

    def forward_each(self, x: torch.Tensor, dropout: Callable[[int, tuple[int, ...], float], torch.Tensor]
                     ) -> torch.Tensor:
        """`forward`, member by member, each layer computed as the member's own model computes it: on the CPU that
        costs nothing (its cores are busy either way) and each member's numbers are those of its run alone, bit
        for bit."""
        logits = []
        for k in range(x.shape[0]):
            h = x[k]
            for i, layer in enumerate(self.layers):
                w = {name: t[k] for name, t in self.named[i].items()}
                if isinstance(layer, nn.ReLU):
                    h = torch.relu(h)
                elif isinstance(layer, nn.Flatten):
                    h = h.flatten(1)
                elif isinstance(layer, nn.Dropout):
                    if layer.p > 0:
                        h = h * dropout(k, tuple(h.shape), layer.p)
                elif isinstance(layer, nn.Conv2d):
                    h = F.conv2d(h, w["weight"], w.get("bias"), layer.stride, layer.padding, layer.dilation,
                                 layer.groups)
                elif isinstance(layer, nn.BatchNorm2d):
                    h = F.batch_norm(h, w["running_mean"], w["running_var"], w["weight"], w["bias"], True,
                                     layer.momentum, layer.eps)
                elif isinstance(layer, nn.MaxPool2d):
                    h = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                     layer.ceil_mode)
                elif isinstance(layer, nn.Linear):
                    h = F.linear(h, w["weight"], w["bias"])
                else:  # the hand-written Linear (engine/models.py)
                    h = torch.matmul(h, w["weight"].T) + w["bias"]
            logits.append(h)
        return torch.stack(logits)

    def forward(self, x: torch.Tensor, dropout: Callable[[int, tuple[int, ...], float], torch.Tensor]) -> torch.Tensor:
        """Logits (K, B, classes) of inputs (K, B, ...), in training mode, every member at once: a batched product
        per linear layer, a grouped convolution per convolution; `dropout(k, shape, p)` gives member k's mask."""
        k, b = x.shape[:2]
        h, grouped = x, False
        for i, layer in enumerate(self.layers):
            w = self.named[i]
            if isinstance(layer, _GROUPED) and not grouped:
                h, grouped = h.transpose(0, 1).reshape(b, -1, *h.shape[3:]), True
            elif not isinstance(layer, (*_GROUPED, nn.ReLU)) and grouped:
                h, grouped = h.reshape(b, k, -1, *h.shape[2:]).transpose(0, 1), False
            if isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif isinstance(layer, nn.Flatten):
                h = h.flatten(2)
            elif isinstance(layer, nn.Dropout):
                if layer.p > 0:
                    h = h * torch.stack([dropout(m, tuple(h.shape[1:]), layer.p) for m in range(k)])
            elif isinstance(layer, nn.Conv2d):
                bias = w.get("bias")
                h = F.conv2d(h, w["weight"].flatten(0, 1), None if bias is None else bias.flatten(),
                             layer.stride, layer.padding, layer.dilation, k * layer.groups)
            elif isinstance(layer, nn.BatchNorm2d):
                h = F.batch_norm(h, w["running_mean"].view(-1), w["running_var"].view(-1),
                                 w["weight"].view(-1), w["bias"].view(-1), True, layer.momentum, layer.eps)
            elif isinstance(layer, nn.MaxPool2d):
                h = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
            else:  # a linear layer: x @ W.T + b, one batched product for every member
                h = torch.bmm(h, w["weight"].transpose(1, 2)) + w["bias"].unsqueeze(1)
        return h

    def count_batch(self, active: torch.Tensor) -> None:
        """A batch norm counts the batches it saw (`num_batches_tracked`): those of the members that stepped."""
        for named in self.named:
            if "num_batches_tracked" in named:
                named["num_batches_tracked"].add_(active.to(torch.long))


# -- the stacked optimizer -------------------------------------------------------------------------------------
class StackedOptimizer:
    """SGD, Adam or AdamW (engine/optim.py builds torch's) over stacked weights: torch's own update, written by
    torch (torch.optim's functional form), on each member's rows with its own lr, weight decay and momentum."""

    def __init__(self, kind: str, params: list[torch.Tensor], nesterov: bool):
        self.kind, self.params, self.nesterov = kind, params, nesterov
        names = ("momentum_buffer",) if kind == "sgd" else ("exp_avg", "exp_avg_sq")
        self.state: dict[str, list[torch.Tensor]] = {name: [torch.zeros_like(p) for p in params] for name in names}
        self.steps: list[list[torch.Tensor]] = []  # per member, per parameter: Adam's step count, as torch's
        self.stepped: list[bool] = []  # whether the member has stepped (SGD's momentum starts from its first grad)

    @torch.no_grad()
    def step(self, grads: tuple[torch.Tensor, ...], lr: list[float], wd: list[float], momentum: list[float],
             active: list[bool]) -> None:
        foreach = self.params[0].device.type == "cuda"
        for k, on in enumerate(active):
            if not on:
                continue
            params, member_grads = [p[k] for p in self.params], [g[k] for g in grads]
            if self.kind == "sgd":
                buffers = [b[k] for b in self.state["momentum_buffer"]] if self.stepped[k] else [None] * len(params)
                torch_sgd.sgd(params, member_grads, buffers, foreach=foreach, weight_decay=wd[k],
                                    momentum=momentum[k], lr=lr[k], dampening=0.0, nesterov=self.nesterov,
                                    maximize=False)
                if not self.stepped[k] and momentum[k] != 0:
                    for stacked, new in zip(self.state["momentum_buffer"], buffers):
                        stacked[k].copy_(new)
            else:
                torch_adam.adam(params, member_grads, [m[k] for m in self.state["exp_avg"]],
                                [v[k] for v in self.state["exp_avg_sq"]], [], self.steps[k], foreach=foreach,
                                decoupled_weight_decay=self.kind == "adamw", amsgrad=False, beta1=ADAM_BETAS[0],
                                beta2=ADAM_BETAS[1], lr=lr[k], weight_decay=wd[k], eps=ADAM_EPS, maximize=False)
            self.stepped[k] = True

    def keep(self, rows: list[int], params: list[torch.Tensor]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=params[0].device)
        self.params = params
        for values in self.state.values():
            values[:] = [v.index_select(0, index) for v in values]
        self.steps = [self.steps[i] for i in rows]
        self.stepped = [self.stepped[i] for i in rows]

    def member_state(self, k: int) -> list[dict[str, torch.Tensor]]:
        """Member k's state per parameter, as torch's optimizer keeps it (none before its first step)."""
        if not self.stepped[k]:
            return [{} for _ in self.params]
        found = [{name: values[i][k].clone() for name, values in self.state.items()} for i in range(len(self.params))]
        if self.kind != "sgd":
            for state, step in zip(found, self.steps[k]):
                state["step"] = step.clone()
        return found

    @torch.no_grad()
    def load_member(self, states: list[dict[str, Any]]) -> None:
        """The next member's state from its own torch optimizer (a run resumed from a checkpoint carries one)."""
        k = len(self.stepped)
        self.steps.append([torch.tensor(float(state.get("step", 0.0))) for state in states])
        self.stepped.append(any(states))
        for i, state in enumerate(states):
            for name, values in self.state.items():
                if state.get(name) is not None:
                    values[i][k].copy_(state[name])


# -- the pack --------------------------------------------------------------------------------------------------
class _Member:
    """What the pack keeps of one member besides its run: where it stands in its epoch, its random streams."""

    def __init__(self, run: "TrainingRun"):
        self.run = run
        self.events: deque[Event] = deque()
        self.ended = False
        self.synced = False  # whether its own model holds its final state already (it finished)
        self.paused_at: float | None = None
        self.batch = 0  # the next batch of its epoch
        self.order: torch.Tensor | None = None
        self.epoch_started = 0.0
        self.paused_before = 0.0
        self.skipped = 0
        device = run.device
        # its dropout masks' stream: torch's RNG as its setup left it, as it would draw them alone
        self.cpu_random = torch.Generator().manual_seed(0)
        self.cpu_random.set_state(run.rng_state["torch"])
        self.cuda_state = run.rng_state.get("cuda")
        self.device = device

    def dropout_mask(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        if self.device.type != "cuda":  # F.dropout on the CPU: bernoulli_(1 - p) on the default generator
            return torch.empty(shape, device=self.device).bernoulli_(1 - p, generator=self.cpu_random).div_(1 - p)
        # on CUDA, dropout's own kernel, on this member's state of the device's generator
        torch.cuda.set_rng_state(self.cuda_state, self.device)
        mask = F.dropout(torch.ones(shape, device=self.device), p, True)
        self.cuda_state = torch.cuda.get_rng_state(self.device)
        return mask

    def rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": self.cpu_random.get_state()}
        if self.cuda_state is not None:
            state["cuda"] = self.cuda_state
        return state


class Pack:
    """K set-up runs of one shape (`pack_key` equal), trained as one; see the module docstring."""

    def __init__(self, runs: list["TrainingRun"], name: str = "", progress_seconds: float = 0.25):
        if not runs:
            raise ValueError("a pack needs at least one run")
        keys = {pack_key(run.config) for run in runs}
        if None in keys or len(keys) > 1:
            raise ValueError("a pack's runs must share their model, data and step settings (engine/pack.py)")
        for run in runs:
            run.setup()
        self.name = name
        self.progress_seconds = progress_seconds
        self.members = [_Member(run) for run in runs]
        self._everyone = list(self.members)  # members stay here after they leave the pack, for member_events
        first = runs[0]
        self.device = first.device
        self.path = first.path
        self.classes = len(first.data.classes)
        layers_of = resolve(MODELS.entry(first.config.model).layers)
        self.net = StackedNet([run.model for run in runs], layers_of)
        self.optimizer = StackedOptimizer(first.config.optimizer, self.net.params, first.config.nesterov)
        for k, run in enumerate(runs):
            self.optimizer.load_member([run.optimizer.state.get(p, {}) for p in self.net.member_params(k)])
        # the moving averages of the weights (config.ema), stacked as the weights are; a member without one has
        # a row that never moves
        self.ema = [torch.stack([self._ema_of(run, k)[i] for k, run in enumerate(runs)])
                    for i in range(len(self.net.params))]
        # the members' data: each one's split, stacked once per distinct split
        splits: list[torch.Tensor] = []
        self.split_of: list[int] = []
        for run in runs:
            index = next((i for i, x in enumerate(splits) if x is run.data.train_x), None)
            if index is None:
                splits.append(run.data.train_x)
                index = len(splits) - 1
            self.split_of.append(index)
        self.train_x = torch.stack(splits) if len(splits) > 1 else splits[0].unsqueeze(0)
        self.train_y = torch.stack([run.data.train_y for run in runs])
        self.sums = torch.stack([run._sums for run in runs])
        for k, run in enumerate(runs):
            run._sums = self.sums[k]  # a view: the member's epoch sums are its row of the pack's
            run.pack = self
            run.pack_name = name or "-"
            run.pack_with = [r.run_id or "?" for r in runs if r is not run]
        self._last_report = 0.0

    # -- membership ------------------------------------------------------------------------------------------
    def _ema_of(self, run: "TrainingRun", k: int) -> list[torch.Tensor]:
        """Member k's moving average in the order of the stacks (its weights where it keeps none)."""
        mine = self.net.member_params(k)
        if run.ema is None:
            return [p.detach() for p in mine]
        position = {id(p): i for i, p in enumerate(run.model.parameters())}
        return [run.ema[position[id(p)]] for p in mine]

    def _index(self, run: "TrainingRun") -> int:
        return next(k for k, m in enumerate(self.members) if m.run is run)

    def sync(self, run: "TrainingRun") -> None:
        """The stacks' state of `run` into its own model, optimizer and RNG: what its snapshot and evaluation read."""
        k = self._index(run)
        self.net.unstack(k)
        if run.ema is not None:
            torch._foreach_copy_(self._ema_of(run, k), [e[k] for e in self.ema])
        run.optimizer.state.clear()
        for param, state in zip(self.net.member_params(k), self.optimizer.member_state(k)):
            if state and (self.optimizer.kind != "sgd" or run.config.momentum != 0):  # SGD without momentum: none
                run.optimizer.state[param] = state
        member = self.members[k]
        torch.set_rng_state(member.cpu_random.get_state())
        if member.cuda_state is not None:
            torch.cuda.set_rng_state(member.cuda_state, self.device)

    def _drop(self, k: int, synced: bool) -> None:
        """Member k leaves the pack: its state goes back into its own run, and the stacks lose its row."""
        run = self.members[k].run
        if not synced:
            self.sync(run)
        run._sums = self.sums[k].clone()
        run.pack = None
        rows = [i for i in range(len(self.members)) if i != k]
        index = torch.tensor(rows, device=self.device, dtype=torch.long)
        self.net.keep(rows)
        self.optimizer.keep(rows, self.net.params)
        self.ema = [e.index_select(0, index) for e in self.ema]
        self.sums = self.sums.index_select(0, index)
        del self.members[k]
        for i, m in enumerate(self.members):
            m.run._sums = self.sums[i]
        splits = sorted({self.split_of[i] for i in rows})
        self.train_x = self.train_x.index_select(0, torch.tensor(splits, dtype=torch.long, device=self.device))
        self.split_of = [splits.index(self.split_of[i]) for i in rows]
        self.train_y = self.train_y.index_select(0, index)

    # -- events ----------------------------------------------------------------------------------------------
    def member_events(self, run: "TrainingRun") -> Iterator[Event]:
        """Member `run`'s events, each taken from the pack once `events()` has produced it (whoever drives the pack
        asks a member for an event only when it has one waiting), up to its ending."""
        member = next(m for m in self._everyone if m.run is run)
        while True:
            event = member.events.popleft()
            yield event
            if isinstance(event, TERMINAL_EVENTS):
                return

    def waiting(self, run: "TrainingRun") -> int:
        """How many of `run`'s events `member_events` has still to give."""
        return len(next(m for m in self._everyone if m.run is run).events)

    def events(self) -> Iterator[tuple["TrainingRun", Event]]:
        """Train every member to its end: each event with the run it belongs to, in the order it happened, also
        kept for `member_events`. While a yield waits nothing moves, so a member's snapshot holds what its events
        said."""
        for run, event in self._produce():
            next(m for m in self._everyone if m.run is run).events.append(event)
            yield run, event

    def _produce(self) -> Iterator[tuple["TrainingRun", Event]]:
        now = time.perf_counter()
        self._last_report = now
        for member in self.members:
            member.run._started = member.run._last_report = now
            yield member.run, member.run.started_event()
        try:
            while self.members:
                for k in reversed(range(len(self.members))):
                    member = self.members[k]
                    try:
                        yield from self._before_step(member)
                    except Exception as exc:  # one member's failure is its own: the pack goes on without it
                        member.ended, member.synced = True, False
                        yield member.run, _failure(member.run, exc)
                    if member.ended:
                        self._drop(k, member.synced)
                stepping = [m for m in self.members if m.paused_at is None]
                if not stepping:
                    if self.members:
                        time.sleep(0.05)  # every member left is paused: wait for one to go on
                    continue
                self._step(stepping)
                yield from self._after_step()
        except Exception as exc:  # the stacked step itself failed: every member still in the pack ends with it
            size = len(self.members)
            for member in list(self.members):
                member.ended = True
                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    yield member.run, RunFailed(
                        message=f"the device ran out of memory training {size} runs as one pack; queue them again "
                                f"with a smaller --pack (1 trains each alone)",
                        epochs_done=member.run.epoch, seconds=member.run.elapsed())
                else:
                    yield member.run, _failure(member.run, exc)
            self.members.clear()

    def _before_step(self, member: _Member) -> Iterator[tuple["TrainingRun", Event]]:
        """The member's commands, then its epoch's start (or its end of training), then its probe if due."""
        run = member.run
        control = run.control
        if control.pending:
            control.settle()
            yield from self._lr_changes(run, control.take_lr())
            if control.stop_requested:
                member.ended, member.synced = True, False
                why = {"reason": control.stop_reason} if control.stop_reason else {}  # a pruner's, as alone
                yield run, RunStopped(epochs_done=run.epoch, seconds=run.elapsed(), **why)
                return
            if control.paused and member.paused_at is None:
                member.paused_at = time.perf_counter()
                yield run, RunPaused(epoch=run.epoch + 1, step=run.step, seconds=run.elapsed(), lr=run.lr)
            elif not control.paused and member.paused_at is not None:
                run._leave_out(time.perf_counter() - member.paused_at)
                member.paused_at = None
                yield run, RunUnpaused(epoch=run.epoch + 1, step=run.step, seconds=run.elapsed(), lr=run.lr)
        if member.paused_at is not None:
            return
        if member.order is None:
            stopped = run.early_stopped()
            if run.epoch >= run.config.epochs or stopped is not None:
                if stopped is not None:
                    yield run, stopped
                self.sync(run)
                member.ended, member.synced = True, True
                for event in run.finish():
                    yield run, event
                return
            n = len(run.data.train_y)
            member.order, member.batch = run._epoch_order(n)
            member.skipped = min(member.batch * run.config.batch_size, n)
            member.epoch_started = time.perf_counter()
            member.paused_before = run._paused_seconds
        if run._probe is not None and due(run.step, run.config.probe_every, run.steps_per_epoch):
            self.sync(run)
            for event in run.look_inside(run.epoch + 1):
                yield run, event

    def _lr_changes(self, run: "TrainingRun", requested: float | None) -> Iterator[tuple["TrainingRun", Event]]:
        for event in run._change_lr(requested):
            yield run, event

    def _step(self, stepping: list[_Member]) -> None:
        """One batch for each member that trains now, as one stacked step (or one per batch size, where members
        stand at different places in their epochs)."""
        sizes: dict[int, list[_Member]] = {}
        for m in stepping:
            n, b = len(m.run.data.train_y), m.run.config.batch_size
            sizes.setdefault(min((m.batch + 1) * b, n) - m.batch * b, []).append(m)
        for size, group in sizes.items():
            self._stacked_step(size, group)

    def _stacked_step(self, size: int, group: list[_Member]) -> None:
        members, device = self.members, self.device
        on = [m in group for m in members]
        index = torch.stack([m.order[m.batch * m.run.config.batch_size:][:size] if on[k]
                             else torch.arange(size, device=device)  # a stand-in batch, its results thrown away
                             for k, m in enumerate(members)])
        rows = torch.tensor(self.split_of, device=device).unsqueeze(1)
        x = self.train_x[rows, index]
        y = self.train_y.gather(1, index)
        for k, m in enumerate(members):
            if on[k] and m.run.config.augment == "flip":  # drawn from its own generator, as alone
                mirror = torch.rand(size, 1, 1, 1, device=device, generator=m.run.generator) < 0.5
                x[k] = torch.where(mirror, x[k].flip(3), x[k])

        def dropout(k: int, shape: tuple[int, ...], p: float) -> torch.Tensor:
            return members[k].dropout_mask(shape, p) if on[k] else torch.ones(shape, device=device)

        kept = None if all(on) else [b.clone() for b in self.net.buffers]
        smoothing = [m.run.config.label_smoothing for m in members]
        with self.path.autocast(device):
            if device.type == "cpu":  # see StackedNet.forward_each
                logits = self.net.forward_each(x, dropout)
                losses = torch.stack([F.cross_entropy(logits[k], y[k], label_smoothing=smoothing[k])
                                      for k in range(len(members))])
            else:
                logits = self.net.forward(x, dropout)
                losses = _cross_entropy(logits, y, smoothing)
        grads = torch.autograd.grad(losses.sum(), self.net.params)
        active = torch.tensor(on, device=device)
        with torch.no_grad():
            if kept is not None:  # a member that did not step keeps its batch norm's statistics
                for b, before in zip(self.net.buffers, kept):
                    b.copy_(torch.where(active.view(-1, *[1] * (b.dim() - 1)), b, before))
            self.net.count_batch(active)
            configs = [m.run.config for m in members]
            self.optimizer.step(list(grads), [m.run.lr for m in members], [c.weight_decay for c in configs],
                                [c.momentum for c in configs], on)
            for k, config in enumerate(configs):
                if on[k] and config.ema > 0:  # as TrainingRun._train_step moves a run's own average
                    torch._foreach_lerp_([e[k] for e in self.ema], [p[k].detach() for p in self.net.params],
                                         1 - config.ema)
            correct = (logits.detach().argmax(2) == y).sum(1)
            self.sums += torch.stack((losses.detach().float() * size, correct.float()), 1) * active.unsqueeze(1)
        for k, m in enumerate(members):
            if on[k]:
                m.batch += 1
                m.run.step += 1

    def _after_step(self) -> Iterator[tuple["TrainingRun", Event]]:
        """Progress now and then; each member whose epoch ended says so."""
        now = time.perf_counter()
        report = now - self._last_report >= self.progress_seconds
        if report:
            self._last_report = now
        for member in list(self.members):
            run = member.run
            if member.order is None or member.paused_at is not None:
                continue
            cfg = run.config
            n, batches = len(run.data.train_y), run.steps_per_epoch
            epoch = run.epoch + 1
            seconds = max(now - member.epoch_started - (run._paused_seconds - member.paused_before), 1e-9)
            try:
                if member.batch >= batches:
                    member.order = None
                    self.sync(run)
                    for event in run.end_epoch(epoch, n, member.skipped, seconds):
                        yield run, event
                elif report or on_record(run.step):  # the steps every run's log holds, as alone
                    end = min(member.batch * cfg.batch_size, n)
                    loss, acc = run._epoch_so_far(end)
                    run._check_finite(loss, epoch)
                    yield run, BatchProgress(
                        step=run.step, epoch=epoch, epochs=cfg.epochs, batch=member.batch, batches=batches,
                        loss=loss, acc=acc, lr=run.lr, samples_per_s=(end - member.skipped) / seconds,
                        seconds=run.elapsed())
            except Exception as exc:  # a loss gone to nan, say: that member fails, the others go on
                member.order = None
                member.ended, member.synced = True, False
                yield run, _failure(run, exc)
        for k in reversed(range(len(self.members))):
            if self.members[k].ended:
                self._drop(k, self.members[k].synced)


def _failure(run: "TrainingRun", exc: Exception) -> RunFailed:
    from .loop import _NonFinite

    message = str(exc) if isinstance(exc, _NonFinite) else f"{type(exc).__name__}: {exc}"
    return RunFailed(message=message, epochs_done=run.epoch, seconds=run.elapsed())


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: list[float]) -> torch.Tensor:
    """Each member's mean cross-entropy over its batch, with its own label smoothing, as F.cross_entropy has it."""
    k, b, classes = logits.shape
    if len(set(smoothing)) == 1:
        per_sample = F.cross_entropy(logits.reshape(k * b, classes), targets.reshape(k * b),
                                     label_smoothing=smoothing[0], reduction="none")
        return per_sample.view(k, b).mean(1)
    log_p = logits.float().log_softmax(-1)
    nll = -log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    eps = torch.tensor(smoothing, device=logits.device).unsqueeze(1)
    return ((1 - eps) * nll + eps * -log_p.mean(-1)).mean(1)
