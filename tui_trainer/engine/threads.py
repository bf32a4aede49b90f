"""How many threads a training process computes with on the CPU: a setting, never the machine's load.

The thread count changes the order of float sums in the matrix products, so it is part of what makes
a run repeat bit for bit: `threads` 0 (auto) is pinned to a number when the run starts, recorded in its
config and kept by its resumes, forks and repeats.

Threads that spin-wait on cores another process keeps busy slow a step down (bench/threads_load.py). The
cure is not fewer threads but threads that stop spinning soon: tui_trainer/__init__.py bounds OpenMP's
spinning (GOMP_SPINCOUNT) before torch loads its OpenMP runtime.
"""

from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), shared among the ranks started on this machine;
    OMP_NUM_THREADS where the user set it."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def pin_cpu_threads(threads: int) -> int:
    """Compute with `threads` threads (0: `usable_cores()`); returns the number now in force."""
    torch.set_num_threads(threads or usable_cores())
    return torch.get_num_threads()
