"""How one training step runs: op by op, or captured once as a CUDA graph and replayed.

A 784-128-64-10 MLP step is a few dozen tiny kernels. On a big GPU each launch costs more
than its arithmetic, so an eager step leaves the card idle most of the time. A CUDA graph
launches the whole step (forward, loss, zero_grad, backward, optimizer step) at once.

What a graph needs, and why:
- static input tensors that each batch is written into: the graph replays fixed addresses;
- the optimizer fused and capturable, with the lr as a device tensor: a replay cannot read
  a Python float, and a capturable optimizer keeps its step count on the device;
- `zero_grad(set_to_none=False)`: the captured backward writes into the same grad tensors;
- a few warm-up steps on a side stream before capture. Those would train the model, so the
  weights, buffers, optimizer state and RNG are put back afterwards: the run's first real
  step is its first step.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from .config import ConfigError, TrainConfig
from .registry import MODELS

WARMUP_STEPS = 3

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class StepPath:
    """How a run's steps run, resolved from the config and the device."""

    graph: bool = False
    bf16: bool = False
    channels_last: bool = False
    fallback: str = ""  # why a graph was asked for but the step runs eagerly

    def __str__(self) -> str:
        parts = ["cuda-graph" if self.graph else "eager"]
        parts += ["bf16"] * self.bf16 + ["channels-last"] * self.channels_last
        label = " ".join(parts)
        return f"{label} ({self.fallback})" if self.fallback else label

    def autocast(self, device: torch.device):
        """Mixed precision for forward and loss; caching off, as graph capture requires."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def choose_path(config: TrainConfig, device: torch.device) -> StepPath:
    """The step path for this config on this device; ConfigError when the config asks for the impossible."""
    cuda = device.type == "cuda"
    if config.step_mode == "cuda-graph" and not cuda:
        raise ConfigError({"step_mode": f"step_mode: cuda-graph needs a CUDA device, and this run trains on "
                                        f"{device}; choose --step-mode auto or eager"})
    graph = config.step_mode == "cuda-graph" or (config.step_mode == "auto" and cuda)
    # each model's entry says whether bf16 and channels_last pay off for it (the CNN's convolutions: yes; the
    # MLP is launch-bound either way; a model from a file takes neither unless --precision bf16 asks)
    model = MODELS.entry(config.model)
    bf16 = config.precision == "bf16" or (config.precision == "auto" and cuda and model.bf16)
    return StepPath(graph=graph, bf16=bf16, channels_last=cuda and model.channels_last)


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn a freshly built or restored optimizer into a fused, capturable one with a device lr.

    Idempotent. A checkpoint keeps the plain form (`plain_optimizer_state`), so it resumes
    on any device and path."""
    for group in optimizer.param_groups:
        lr = group["lr"]
        if not isinstance(lr, torch.Tensor):
            group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)
        group["fused"] = True
        group["foreach"] = None
        if "capturable" in group:
            group["capturable"] = True
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and (step.device != device or step.dtype != torch.float32):
            state["step"] = step.to(device=device, dtype=torch.float32)


def plain_optimizer_state(state: dict) -> dict:
    """A copy of `optimizer.state_dict()` as an eager optimizer saves it: float lr, not fused or capturable.

    The live state's tensors are shared, not copied; only the dicts that change are new."""
    groups = []
    for group in state["param_groups"]:
        group = dict(group)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
            group["fused"] = None
            if "capturable" in group:
                group["capturable"] = False
        groups.append(group)
    per_param = {key: {**values, "step": values["step"].detach().cpu()}
                 if isinstance(values.get("step"), torch.Tensor) else values
                 for key, values in state["state"].items()}
    return {"state": per_param, "param_groups": groups}


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # a device write: the captured step reads it there
        else:
            group["lr"] = lr


class CudaGraphStep:
    """`step` captured once for a full batch and replayed: call it with a batch, get (logits, loss).

    The returned tensors are the graph's own outputs, overwritten by the next replay."""

    def __init__(self, step: Step, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 example_inputs: torch.Tensor, example_targets: torch.Tensor):
        self.inputs = torch.zeros_like(example_inputs)
        self.targets = torch.zeros_like(example_targets)
        device = self.inputs.device
        kept = _Kept(model, optimizer, device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        try:
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    step(self.inputs, self.targets)
        finally:
            torch.cuda.current_stream(device).wait_stream(side)
            kept.put_back()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits, self.loss = step(self.inputs, self.targets)

    @property
    def batch_size(self) -> int:
        return len(self.targets)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if inputs is not self.inputs:
            self.inputs.copy_(inputs)
        if targets is not self.targets:
            self.targets.copy_(targets)
        self.graph.replay()
        return self.logits, self.loss


class _Kept:
    """The model's and optimizer's values before warm-up, to put back after it."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device):
        self.optimizer, self.device = optimizer, device
        self.tensors = [t for t in (*model.parameters(), *model.buffers())]
        self.values = [t.detach().clone() for t in self.tensors]
        self.state = {id(p): {k: v.clone() for k, v in s.items() if isinstance(v, torch.Tensor)}
                      for p, s in optimizer.state.items()}
        self.rng = torch.cuda.get_rng_state(device)

    @torch.no_grad()
    def put_back(self) -> None:
        for tensor, value in zip(self.tensors, self.values):
            tensor.copy_(value)
        for param, state in self.optimizer.state.items():
            before = self.state.get(id(param), {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    # state born in warm-up (a fresh optimizer's moments, step count, momentum) starts
                    # at zero, which is where Adam's and SGD's (dampening 0) first steps start from
                    value.copy_(before[key]) if key in before else value.zero_()
        torch.cuda.set_rng_state(self.rng, self.device)
