"""Samples/s of the recommended MLP's training step with OpenMP's threads spinning, sleeping, or spinning briefly
(what tui_trainer sets) while they wait, on an idle machine and beside processes that keep every core busy.

    python bench/threads_load.py [--rounds 3] [--steps 300]

Each measurement is its own process (OpenMP reads OMP_WAIT_POLICY once, at start), with the thread count
pinned (all the cores this process may use, as a run's `threads` 0 pins it), so only the wait policy and
the load differ. Side by side in one run: GOMP_SPINCOUNT=3000 (what tui_trainer sets), OpenMP's default,
PASSIVE (sleep at once), ACTIVE (spin), and one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STEP = """
import os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                        torch.nn.Linear(64, 10))
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
for _ in range(30): step()
t = time.perf_counter()
for _ in range(int(sys.argv[2])): step()
print(int(sys.argv[2]) * 128 / (time.perf_counter() - t))
"""


POLICIES = {"spin 3000": {"GOMP_SPINCOUNT": "3000"}, "default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"}}


def samples_per_s(policy: str, threads: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), str(steps)], env=env, capture_output=True,
                         text=True, check=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    import torch

    from machine import describe_machine

    cores = len(os.sched_getaffinity(0))
    print(f"machine: {describe_machine(torch.device('cpu'))}; {cores} cores; medians of {args.rounds} rounds")
    cases = [(policy, cores) for policy in POLICIES] + [("spin 3000", 1)]
    for load in ("idle", "busy"):
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores if load == "busy"
                                                                                          else 0)]
        try:
            got = {case: statistics.median(samples_per_s(*case, args.steps) for _ in range(args.rounds))
                   for case in cases}
        finally:
            for process in busy:
                process.kill()
                process.wait()
        ours = got[("spin 3000", cores)]
        print(f"{load} ({len(busy)} busy processes), {cores} threads: " + " · ".join(
            f"{policy} {got[(policy, cores)]:,.0f}/s ({got[(policy, cores)] / ours:.2f})" for policy in POLICIES)
            + f" · 1 thread {got[('spin 3000', 1)]:,.0f}/s ({got[('spin 3000', 1)] / ours:.2f})")


if __name__ == "__main__":
    main()
