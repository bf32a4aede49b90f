"""How many threads a training process computes with on the CPU.

torch starts one per core. On a machine where other work already keeps the cores busy, those
threads spin-wait for each other at every operation: measured on a 2-core machine with two
other processes busy, a 784-128-64-10 MLP trained at 3,400 samples/s with 2 threads and at
41,000 with 1. So a training process takes the cores that are free, and never fewer than one.
"""

from __future__ import annotations

import os

import torch


def free_cores(cores: int, load: float) -> int:
    """Cores left over by `load` (the 1-minute load average), at least 1."""
    return max(1, min(cores, round(cores - load)))


def fit_cpu_threads() -> int:
    """Set torch's thread count to the free cores, unless the user chose one (OMP_NUM_THREADS); returns it."""
    if "OMP_NUM_THREADS" not in os.environ:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this platform: keep torch's choice
            return torch.get_num_threads()
        torch.set_num_threads(free_cores(torch.get_num_threads(), load))
    return torch.get_num_threads()
