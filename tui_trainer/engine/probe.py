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


def due(step: int, probe_every: int, steps_per_epoch: int) -> bool:
    """Whether the probe runs before optimizer step `step` (0: before any update)."""
    if probe_every <= 0:
        return False
    return step == 0 or (step <= EARLY_STEPS and step % probe_every == 0)


def _histogram(values: torch.Tensor) -> list[float]:
    """[low, high, count, count, ...] of `values` in BINS equal bins."""
    flat = values.detach().float().flatten()
    low, high = float(flat.min()), float(flat.max())
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1e-12
    return [low, high, *torch.histc(flat, BINS, low, high).tolist()]


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
        layers = [self._layer(name, module, outputs.get(name), weights, grad_of, name == last, steps)
                  for name, module in leaves]
        self._previous = {n: p.detach().clone() for n, p in weights.items()}
        self._previous_step = step
        return LayerStats(step=step, epoch=epoch, loss=_round(float(loss.detach())),
                          logits_std=_round(float(logits.detach().float().std())),
                          expected_loss=_round(math.log(self.num_classes)),
                          layers=[layer for layer in layers if layer is not None])

    def _layer(self, name: str, module: nn.Module, out: Any, weights: dict, grads: dict, last: bool,
               steps: int) -> LayerStat | None:
        if not isinstance(out, torch.Tensor):
            return None
        act = out.detach().float()
        kind = type(module).__name__
        own = {n.rpartition(".")[2]: (n, p) for n, p in weights.items() if n.rpartition(".")[0] == name}
        weight = own.get("weight")
        dead = saturated = None
        if isinstance(module, nn.ReLU):
            dead = float((act <= 0).all(0).float().mean())
        elif weight is not None and not last and act.dim() >= 2:
            # a unit whose output is never positive on the batch: dead if a ReLU follows, as in the scratch MLP
            units = act.transpose(0, 1).reshape(act.shape[1], -1)
            dead = float((units <= 0).all(1).float().mean())
        if isinstance(module, nn.Tanh):
            saturated = float((act.abs() > 0.97).float().mean())
        elif isinstance(module, nn.Sigmoid):
            saturated = float(((act < 0.03) | (act > 0.97)).float().mean())
        weight_std = grad_norm = update = fan_in = None
        weight_hist: list[float] = []
        grad_hist: list[float] = []
        if weight is not None:
            wname, w = weight
            weight_std = float(w.detach().float().std()) if w.numel() > 1 else 0.0
            fan_in = int(w[0].numel()) if w.dim() >= 2 else None
            weight_hist = _histogram(w)
            g = grads.get(wname)
            if g is not None:
                grad_norm = float(g.detach().float().norm())
                grad_hist = _histogram(g)
            before = self._previous.get(wname)
            if before is not None and weight_std and steps > 0:  # per step, as makemore's ratio is
                update = float((w.detach().float() - before.float()).std()) / weight_std / steps
        return LayerStat(name=name, kind=kind, act_mean=_round(float(act.mean())), act_std=_round(float(act.std())),
                         dead=_round(dead), saturated=_round(saturated), weight_std=_round(weight_std),
                         weight_norm=_round(float(weight[1].detach().float().norm())) if weight else None,
                         grad_norm=_round(grad_norm), update_ratio=_round(update), fan_in=fan_in,
                         act_hist=_histogram(act), weight_hist=weight_hist, grad_hist=grad_hist)


# -- what the numbers say ------------------------------------------------------------------------------------------
def diagnose(stats: LayerStats, init: bool, scaled_init_hint: str = "") -> list[Diagnosis]:
    """What is wrong, each in one sentence naming the layer, the number and the likely cause; at init (step 0) a
    healthy model gets one "init looks healthy". `scaled_init_hint` is what to try against unscaled weights
    (`--init kaiming` for a model with that setting)."""
    found: list[tuple[str, str]] = []  # (what and where, so that a flag is said once; the sentence)
    k, loss = stats.expected_loss, stats.loss
    if init and loss is not None and k and loss > 3 * k:
        found.append(("loss", f"initial loss {loss:.3g} vs {k:.2f} expected for {round(math.exp(k))} classes"
                     + _first_blowup(stats, scaled_init_hint)))
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
        if layer.update_ratio is not None and not 1e-5 <= layer.update_ratio <= 1e-1:
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
