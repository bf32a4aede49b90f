"""Looking inside the network: per-layer statistics on a fixed probe batch, and the init check they feed.

    probe = Probe(model, x, y, num_classes)       # a fixed batch of training images
    stats = probe.measure(step, epoch)            # LayerStats: eager, outside any CUDA graph
    diagnose(stats, first=True)                   # the sentences that say what is wrong, if anything

The numbers are those teachers of this material have learners look at (makemore part 3): the loss at init
against ln K, each layer's activation spread, the share of units that never fire after a ReLU (or sit
saturated after tanh and sigmoid), each parameter's gradient norm, and the update-to-weight ratio (about 1e-3 is
healthy). The probe runs its own forward and backward in train mode on a copy of the RNG state and with the
model's buffers (BatchNorm's running statistics) put back, and takes gradients with autograd.grad: training's
grads, buffers and random numbers are as if it had not run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .events import Diagnosis, LayerStat, LayerStats

PROBE_IMAGES = 128  # the fixed batch: enough to estimate a spread, small beside an epoch (bench/run_all.py)
EARLY_STEPS = 100  # the probe runs every `probe_every` steps this early on, then once an epoch
BINS = 24  # histogram bins
HEALTHY_UPDATE = 1e-3  # update-to-weight ratio per step, as makemore part 3 puts it


PROBE_SHARE = 0.03  # the most of the training time the probe may take, the init check at step 0 aside (issue 20)


def affordable(spent: float, cost: float, trained: float, steps: int, steps_left: int,
               share: float | None = None) -> bool:
    """Whether one more probe of `cost` seconds keeps the `spent` probing within `share` of the training time by
    the end of this epoch: `trained` seconds over `steps` steps so far, and the epoch's `steps_left` at that pace.

    On the CPU a probe costs about two steps and the default cadence fits (bench/probe_cost.py). On a fast GPU a
    step replays a CUDA graph in a fraction of a millisecond while the eager probe costs many steps: there this
    spaces the probes out, beyond once an epoch if it must, rather than let them slow training down."""
    share = PROBE_SHARE if share is None else share
    if steps <= 0:
        return True
    return spent + cost <= share * trained / steps * (steps + steps_left)


def due(step: int, probe_every: int, steps_per_epoch: int) -> bool:
    """Whether the probe runs before optimizer step `step` (0: before any update)."""
    if probe_every <= 0:
        return False
    return step == 0 or (step <= EARLY_STEPS and step % probe_every == 0)


class _Readout:
    """Numbers kept as device tensors while the probe runs, read to the host in one transfer at the end: one sync
    a probe, not one per number (on CUDA, ~100 syncs would cost more than the probe's arithmetic)."""

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []

    def keep(self, value: torch.Tensor | None) -> int | None:
        if value is None:
            return None
        self._parts.append(value.detach().float().reshape(-1))
        return len(self._parts) - 1

    def histogram(self, values: torch.Tensor) -> int:
        """[low, high, count, ...] of `values` in BINS equal bins, as histc draws them, without reading the range
        to the host first (histc would)."""
        flat = values.detach().float().flatten()
        low, high = torch.aminmax(flat)
        span = (high - low).clamp_min(1e-12)
        index = ((flat - low) / span * BINS).long().clamp_(0, BINS - 1)
        counts = torch.zeros(BINS, device=flat.device).scatter_add_(0, index, torch.ones_like(flat))
        return self.keep(torch.cat([low.view(1), high.view(1), counts]))

    def read(self) -> list[list[float]]:
        if not self._parts:
            return []
        sizes = [len(part) for part in self._parts]
        flat = torch.cat(self._parts).tolist()
        out, at = [], 0
        for size in sizes:
            out.append(flat[at:at + size])
            at += size
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


class Probe:
    """Measures a model on one fixed batch; keeps the weights of the last measurement for the update ratio."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
        self.model, self.images, self.labels, self.num_classes = model, images, labels, num_classes
        self._previous: dict[str, torch.Tensor] = {}
        self._previous_step = 0

    def measure(self, step: int, epoch: int) -> LayerStats:
        model = self.model
        outputs: dict[str, torch.Tensor] = {}
        leaves = [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]
        hooks = [m.register_forward_hook(lambda mod, args, out, name=name: outputs.__setitem__(name, out))
                 for name, m in leaves]
        buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
        devices = [self.images.device] if self.images.device.type == "cuda" else []
        was_training = model.training
        try:
            with torch.random.fork_rng(devices=devices):
                model.train()
                logits = model(self.images)
                loss = F.cross_entropy(logits.float(), self.labels)
                params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
                grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        finally:
            for hook in hooks:
                hook.remove()
            with torch.no_grad():
                for k, v in model.named_buffers():
                    v.copy_(buffers[k])
            model.train(was_training)
        grad_of = {n: g for (n, _), g in zip(params, grads)}
        weights = dict(params)
        last = leaves[-1][0] if leaves else ""
        steps = step - self._previous_step if self._previous else 0  # optimizer steps since the last probe
        readout = _Readout()
        whole = (readout.keep(loss), readout.keep(logits.float().std()))
        kept = [(name, module, self._layer(readout, name, module, outputs.get(name), weights, grad_of,
                                            name == last, steps)) for name, module in leaves]
        numbers = readout.read()
        self._previous = {n: p.detach().clone() for n, p in weights.items()}
        self._previous_step = step
        loss_value, logits_std = (numbers[i][0] for i in whole)
        return LayerStats(step=step, epoch=epoch, loss=_round(loss_value), logits_std=_round(logits_std),
                          expected_loss=_round(math.log(self.num_classes)),
                          layers=[_stat(name, module, fields, numbers) for name, module, fields in kept
                                  if fields is not None])

    def _layer(self, readout: _Readout, name: str, module: nn.Module, out: Any, weights: dict, grads: dict,
               last: bool, steps: int) -> dict | None:
        """What to measure of one leaf, as readout indexes (or plain values) by LayerStat's field names."""
        if not isinstance(out, torch.Tensor):
            return None
        act = out.detach().float()
        own = {n.rpartition(".")[2]: (n, p) for n, p in weights.items() if n.rpartition(".")[0] == name}
        weight = own.get("weight")
        fields: dict[str, Any] = {"act_mean": readout.keep(act.mean()), "act_std": readout.keep(act.std()),
                                  "act_hist": readout.histogram(act)}
        if isinstance(module, nn.ReLU):
            fields["dead"] = readout.keep((act <= 0).all(0).float().mean())
        elif weight is not None and not last and act.dim() >= 2:
            # a unit whose output is never positive on the batch: dead if a ReLU follows, as in the scratch MLP
            units = act.transpose(0, 1).reshape(act.shape[1], -1)
            fields["dead"] = readout.keep((units <= 0).all(1).float().mean())
        if isinstance(module, nn.Tanh):
            fields["saturated"] = readout.keep((act.abs() > 0.97).float().mean())
        elif isinstance(module, nn.Sigmoid):
            fields["saturated"] = readout.keep(((act < 0.03) | (act > 0.97)).float().mean())
        if weight is not None:
            wname, w = weight
            w = w.detach().float()
            weight_std = w.std() if w.numel() > 1 else torch.zeros((), device=w.device)
            fields.update(weight_std=readout.keep(weight_std), weight_norm=readout.keep(w.norm()),
                          weight_hist=readout.histogram(w), fan_in=int(w[0].numel()) if w.dim() >= 2 else None)
            g = grads.get(wname)
            if g is not None:
                fields.update(grad_norm=readout.keep(g.float().norm()), grad_hist=readout.histogram(g))
            before = self._previous.get(wname)
            if before is not None and steps > 0:  # per step, as makemore's ratio is
                fields["update_ratio"] = readout.keep((w - before.float()).std() / weight_std / steps)
        return fields


_PLAIN = {"fan_in"}  # LayerStat fields given as they are, not read from the device
_LISTS = {"act_hist", "weight_hist", "grad_hist"}


def _stat(name: str, module: nn.Module, fields: dict, numbers: list[list[float]]) -> LayerStat:
    values: dict[str, Any] = {}
    for key, at in fields.items():
        if key in _PLAIN or at is None:
            values[key] = at
        elif key in _LISTS:
            hist = numbers[at]
            values[key] = hist if math.isfinite(hist[0]) and math.isfinite(hist[1]) else []
        else:
            number = numbers[at][0]
            values[key] = None if key == "update_ratio" and not math.isfinite(number) else _round(number)
    values.setdefault("act_mean", None)
    values.setdefault("act_std", None)
    return LayerStat(name=name, kind=type(module).__name__, **values)


# -- what the numbers say ------------------------------------------------------------------------------------------
def diagnose(stats: LayerStats, init: bool, scaled_init_hint: str = "", lr_scale: float = 1.0) -> list[Diagnosis]:
    """What is wrong, each in one sentence naming the layer, the number and the likely cause; at init (step 0) a
    healthy model gets one "init looks healthy". `scaled_init_hint` is what to try against unscaled weights
    (`--init kaiming` for a model with that setting); `lr_scale` is the lr in force over the run's base lr,
    below 0.1 in a schedule's warm-up or tail, where small updates are meant."""
    found: list[tuple[str, str]] = []  # (what and where, so that a flag is said once; the sentence)
    k, loss = stats.expected_loss, stats.loss
    if init and loss is not None and k and loss > 2 * k:  # a kaiming head starts near 1.3 ln K
        found.append(("loss", f"initial loss {loss:.3g} vs {k:.2f} expected for {round(math.exp(k))} classes"
                     + _first_blowup(stats, scaled_init_hint)))
    if init and (collapse := _first_collapse(stats, scaled_init_hint)):
        found.append(("collapse", collapse))
    for layer in stats.layers:
        if layer.dead is not None and layer.dead >= 0.5:
            found.append((f"dead {layer.name}", f"{layer.name}: {layer.dead:.0%} of ReLUs dead"
                          + (" at init" if init else "")))
        if layer.saturated is not None and layer.saturated >= 0.5:
            found.append((f"saturated {layer.name}", f"{layer.name}: {layer.saturated:.0%} of {layer.kind} units "
                                                     "saturated"))
        if layer.grad_norm is not None and layer.weight_norm:
            ratio = layer.grad_norm / layer.weight_norm
            if ratio < 1e-7:
                found.append((f"vanishing {layer.name}",
                              f"the gradient at {layer.name} is {ratio:.0e} of its weights: vanishing"))
            elif ratio > 1e2:
                found.append((f"exploding {layer.name}",
                              f"the gradient at {layer.name} is {ratio:.0e} times its weights: exploding"))
        # a schedule's own tail (lr_scale: the lr in force over the run's base lr) makes small updates on purpose
        small = layer.update_ratio is not None and layer.update_ratio < 1e-5 and lr_scale >= 0.1
        if small or layer.update_ratio is not None and layer.update_ratio > 1e-1:
            found.append((f"update {layer.name}", f"{layer.name}: updates are {layer.update_ratio:.0e} of its "
                          f"weights per step (about {HEALTHY_UPDATE:.0e} is healthy): the lr is far too "
                          + ("small" if layer.update_ratio < 1e-5 else "large")))
    if not found and init:
        return [Diagnosis(step=stats.step, text=f"init looks healthy (loss {loss:.3g} vs {k:.2f} expected for "
                                                f"{round(math.exp(k))} classes)", healthy=True, key="healthy")]
    return [Diagnosis(step=stats.step, text=text, key=key) for key, text in found]


def _first_blowup(stats: LayerStats, hint: str) -> str:
    """The first layer whose output spreads far beyond 1, and by how much its weights are too large."""
    for layer in stats.layers:
        if layer.act_std is None or layer.act_std <= 3 or layer.weight_std is None or not layer.fan_in:
            continue
        scale = 1 / math.sqrt(layer.fan_in)  # the weight std that keeps an output's spread near its input's
        line = f"; {layer.name} output std {layer.act_std:.2g} (≈1 expected)"
        if layer.weight_std > 3 * scale:
            line += (f": weights with std {layer.weight_std:.2g} are ~{layer.weight_std / scale:.0f}× too large for "
                     f"{layer.fan_in} inputs")
            if hint:
                line += f"; try {hint}"
        return line
    return ""


def _first_collapse(stats: LayerStats, hint: str) -> str:
    """The first hidden layer whose output all but vanishes because its weights are far too small: the loss looks
    healthy then (every logit near 0), but the signal and the gradient fade layer by layer."""
    for layer in stats.layers[:-1]:  # the last layer's small outputs are small logits, which are fine
        if layer.act_std is None or layer.weight_std is None or not layer.fan_in:
            continue
        scale = 1 / math.sqrt(layer.fan_in)
        if layer.act_std < 0.1 and layer.weight_std < scale / 3:
            return (f"{layer.name} output std {layer.act_std:.2g} (≈1 expected): weights with std "
                    f"{layer.weight_std:.2g} are ~{scale / max(layer.weight_std, 1e-30):.0f}× too small for "
                    f"{layer.fan_in} inputs, so the signal fades from there on" + (f"; try {hint}" if hint else ""))
    return ""
