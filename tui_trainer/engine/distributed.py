"""Several processes, one run: DistributedDataParallel under torchrun, on NCCL (GPUs) or gloo (CPU).

    torchrun --nproc-per-node 2 -m tui_trainer train ...                 (by hand, or `train --gpus 2`)
    torchrun --nproc-per-node 2 -m tui_trainer.runs.worker RUN_ID ...    (runs/spawn.py, in the background)

Every rank prepares the same data and shuffles it with the same seeded generator, so all
ranks agree on each global batch; each rank trains on its share of it (the config's batch
size is the global batch) and DDP averages the gradients. With equal shares that is the
gradient of the whole batch: two processes follow one process's run within float noise.

Ranks must meet in every collective in the same order, or one waits for ever. So steering
happens only at agreed steps: every PROGRESS_EVERY_STEPS steps rank 0 broadcasts what its
controls hold (stop, pause, a new lr) and whether to report progress, and every rank acts on
it at that same step. Only rank 0 prints, records the run and writes checkpoints.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist

from .control import TrainingControl
from .wording import counted


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def ranks_command(gpus: int, module: str, args: list[str]) -> list[str]:
    """`python -m module args` as `gpus` processes on this machine, one per rank, started by torch.distributed.run."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
            "-m", module, *args]


def exit_rank(code: int) -> NoReturn:
    """Leave at once, output flushed: tearing down gloo's threads in the interpreter's shutdown can abort one rank
    ("terminate called without an active exception") after the run has ended well on every rank. The caller has
    closed its run store."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def gpus_missing(gpus: int, found: int | None = None) -> str | None:
    """Why a machine with `found` CUDA GPUs (this one's by default) cannot give a run `gpus` of them, said as
    the gpus setting's error; None when it can."""
    found = torch.cuda.device_count() if found is None else found
    if gpus == 1 or gpus <= found:
        return None
    where = f"this machine has {counted(found, 'CUDA GPU')}" if found else "torch sees no CUDA GPU here"
    return f"gpus: got {gpus}; {where}, so choose 1 to {max(found, 1)}"


@dataclass(frozen=True)
class Agreed:
    stop: bool = False
    paused: bool = False
    lr: float | None = None
    report: bool = False


@dataclass
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_kind: str) -> "Distributed":
        """Join the process group torchrun described in the environment (RANK, WORLD_SIZE, MASTER_ADDR...)."""
        backend = "nccl" if device_kind == "cuda" else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            # a rank left alone in a collective (its peer died) gives up after this, instead of the default 30 min
            dist.init_process_group(backend, timeout=timedelta(minutes=5))
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, backend)

    def device(self, device: torch.device) -> torch.device:
        """Each rank's own GPU; on the CPU every rank shares it."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def share(self, start: int, end: int) -> tuple[int, int]:
        """This rank's slice of the global batch [start, end): equal shares, the first ranks one more."""
        size = end - start
        return start + size * self.rank // self.world_size, start + size * (self.rank + 1) // self.world_size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks, in a new tensor."""
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def agree(self, control: TrainingControl, report: bool, device: torch.device) -> "Agreed":
        """What every rank does at this step: rank 0's controls and its `report`, broadcast.

        Rank 0 takes its lr request here; the other ranks' own controls are never read."""
        state = torch.zeros(4, dtype=torch.float64, device=device)
        if self.main:
            lr = control.take_lr()
            state.copy_(torch.tensor([control.stop_requested, control.paused, lr or 0.0, report], dtype=torch.float64))
        dist.broadcast(state, 0)
        stop, paused, lr, report = state.tolist()
        return Agreed(stop=bool(stop), paused=bool(paused), lr=lr or None, report=bool(report))

    def close(self, together: bool = True) -> None:
        """Leave the group; `together` waits for every rank first (rank 0 may still be writing its checkpoint):
        a peer that is gone before the other tears down can abort it."""
        if not dist.is_initialized():
            return
        try:
            if together:
                dist.barrier()
        finally:
            dist.destroy_process_group()
