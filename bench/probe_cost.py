"""The probe's cost at its default cadence, two ways, side by side in one process (issue 20: at most 3%).

    python bench/probe_cost.py [--device cpu|cuda] [--epochs N] [--rounds R]

1. Whole runs with the probe at its default cadence and with `--probe-every 0`, interleaved round by round so
   that a change in the machine's load falls on both; the least time of each is compared.
2. The time spent inside the probe itself (each `Probe.measure`, with the device synchronised around it) over
   the probed runs' time: steadier than (1) on a shared machine, where two whole runs differ by more than the
   probe costs.
On full Fashion-MNIST when it is on disk, else the bundled mini set; the default MLP recipe on the chosen path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import describe_machine  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun  # noqa: E402
from tui_trainer.engine import probe as probe_module  # noqa: E402
from tui_trainer.engine.data import dataset_status, load_raw, prepare  # noqa: E402
from tui_trainer.engine.events import LayerStats, RunStarted  # noqa: E402


class ProbeClock:
    """Wraps Probe.measure to add up the seconds spent in it."""

    def __init__(self, device: torch.device):
        self.seconds, self.calls, self._sync = 0.0, 0, device.type == "cuda"
        self._measure = probe_module.Probe.measure

    def __enter__(self) -> "ProbeClock":
        clock, measure = self, self._measure

        def timed(probe, step, epoch):
            if clock._sync:
                torch.cuda.synchronize()
            started = time.perf_counter()
            stats = measure(probe, step, epoch)  # it reads its numbers to the host, so it ends synchronised
            clock.seconds += time.perf_counter() - started
            clock.calls += 1
            return stats

        probe_module.Probe.measure = timed
        return self

    def __exit__(self, *exc) -> None:
        probe_module.Probe.measure = self._measure


def run_seconds(config: TrainConfig, data) -> tuple[float, str, int]:
    started, path, probes = time.perf_counter(), "", 0
    for event in TrainingRun(config, data=data, evaluate_at_end=False).events():
        if isinstance(event, RunStarted):
            path = event.step_path
        probes += isinstance(event, LayerStats)
    if data.train_x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, path, probes


def probe_cost(config: TrainConfig, data, rounds: int) -> dict:
    """Whole runs of `config` probed at its cadence and not, interleaved; the time inside the probe."""
    plain_cfg = config.replace(probe_every=0)
    run_seconds(plain_cfg.replace(epochs=1), data)  # warm-up: allocator, graph capture, first-call costs
    probed, plain = [], []
    with ProbeClock(data.train_x.device) as clock:
        for _ in range(rounds):
            seconds, path, probes = run_seconds(config, data)
            probed.append(seconds)
            plain.append(run_seconds(plain_cfg, data)[0])
    return {"probed": min(probed), "plain": min(plain), "ratio": min(probed) / min(plain), "path": path,
            "probes": probes, "inside": clock.seconds, "share": clock.seconds / sum(probed),
            "probe_ms": clock.seconds / max(clock.calls, 1) * 1000, "total": sum(probed)}


def measure(device: torch.device, epochs: int, rounds: int, dataset: str = "") -> list[str]:
    dataset = dataset or ("fashion-mnist" if dataset_status("fashion-mnist") == "on disk" else "fashion-mnist-mini")
    data = prepare(load_raw(dataset), device, val_split=0.1, seed=0)
    config = TrainConfig(device=device.type, dataset=dataset, epochs=epochs)
    cost = probe_cost(config, data, rounds)
    return [
        f"# {describe_machine(device)}",
        f"# {dataset}, scratch-mlp defaults, {epochs} epochs, {cost['path']}, threads {torch.get_num_threads()}, "
        f"probe every {config.probe_every} steps ({cost['probes']} probes a run), {rounds} interleaved rounds",
        f"whole run, probed / none (least of {rounds} each): {cost['probed']:.3f} s / {cost['plain']:.3f} s = "
        f"{cost['ratio']:.3f}",
        f"time inside the probe / probed run time: {cost['inside']:.3f} s / {cost['total']:.3f} s = "
        f"{cost['share']:.2%} ({cost['probe_ms']:.2f} ms a probe)",
        "target: at most 3% (issue 20)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", default="", help="default: fashion-mnist when on disk, else the mini set")
    args = parser.parse_args()
    print("\n".join(measure(torch.device(args.device), args.epochs, args.rounds, args.dataset)))


if __name__ == "__main__":
    main()
