"""Packs against one process per run, side by side in one run (engine/pack.py, runs/queue.py).

    python bench/packs.py                 # the CPU figure; with a GPU, the GPU figures too
    python bench/packs.py --gpu-only --epochs 15

On any machine: an 8-run sweep of the bundled mini set (4 lrs x 2 seeds) through the product's own path,
`scratch-tui sweep run FILE`, once with `--pack 1` (today's queue: a process per run) and once with `--pack 8`
(one pack), each in a fresh run store; wall time from the command to its table. Target: packs in at most half.

With CUDA (in this process, the data loaded once, so the ratios are the step's):
- the curve: K MLP runs of full Fashion-MNIST as one pack, K = 1, 2, 4, 8, 16, 32, wall time against K;
- a 24-run scratch-mlp sweep (8 lrs x 3 seeds) as one pack against one run: target within 3x;
- an 8-run CNN sweep as one pack against one CNN run: target within 3x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import describe_machine  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from tui_trainer.engine import TrainConfig, TrainingRun  # noqa: E402
from tui_trainer.engine.events import EvaluationEnded  # noqa: E402
from tui_trainer.engine.pack import Pack, shared_data  # noqa: E402

MINI_SWEEP = """# 8 runs of the bundled mini set: 4 lrs x 2 seeds, 2 epochs of 2,048 images each
dataset = "fashion-mnist-mini"
max_train_samples = 2048
epochs = 2
device = "cpu"

[sweep]
name = "packs bench"
lr = [0.001, 0.002, 0.003, 0.006]
seed = [0, 1]
"""
LRS = [0.0005, 0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.01]


def cli_sweep_seconds(pack: int, folder: Path) -> float:
    """Wall time of `scratch-tui sweep run` of MINI_SWEEP with `--pack N`, in a fresh run store, to its table."""
    folder.mkdir(parents=True, exist_ok=True)
    sweep = folder / "mini-sweep.toml"
    sweep.write_text(MINI_SWEEP)
    runs_dir = folder / f"runs-pack-{pack}"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tui_trainer", "sweep", "run", str(sweep), "--pack", str(pack),
                           "--runs-dir", str(runs_dir)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "8/8" not in done.stdout.replace(" ", ""):
        raise RuntimeError(f"the sweep with --pack {pack} did not finish its 8 runs:\n{done.stdout}\n{done.stderr}")
    return seconds


def cpu_queue(rounds: int = 2) -> tuple[float, float]:
    """(one process per run, one pack): the best of `rounds`, alternating, in seconds."""
    alone, packed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for pack, into in ((1, alone), (8, packed)) if r % 2 == 0 else ((8, packed), (1, alone)):
                into.append(cli_sweep_seconds(pack, Path(tmp) / f"round-{r}"))
                print(f"  --pack {pack}: {into[-1]:.1f} s", flush=True)
    return min(alone), min(packed)


def pack_seconds(configs: list[TrainConfig]) -> tuple[float, list[float]]:
    """Wall time of `configs` trained as one pack (data loaded before the clock starts), and their test accuracies."""
    data = shared_data(configs)
    runs = [TrainingRun(c, data=d) for c, d in zip(configs, data)]
    started = time.perf_counter()
    pack = Pack(runs)
    accuracies = {}
    for run, event in pack.events():
        if isinstance(event, EvaluationEnded):
            accuracies[id(run)] = event.test_acc
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, [accuracies.get(id(r), float("nan")) for r in runs]


def alone_seconds(config: TrainConfig) -> float:
    data = shared_data([config])[0]
    started = time.perf_counter()
    for _ in TrainingRun(config, data=data).events():
        pass
    return time.perf_counter() - started


def gpu_figures(epochs: int, dataset: str = "fashion-mnist") -> list[tuple[str, str, str]]:
    rows = []
    base = TrainConfig(dataset=dataset, device="cuda", epochs=epochs, probe_every=0)
    one = alone_seconds(base)
    rows.append((f"one scratch-mlp run, {epochs} epochs of {dataset} (cuda graph)", f"{one:.1f} s", ""))
    for k in (1, 2, 4, 8, 16, 32):
        configs = [base.replace(seed=i % 3, lr=LRS[i % len(LRS)]) for i in range(k)]
        seconds, _ = pack_seconds(configs)
        rows.append((f"pack of K={k} scratch-mlp runs", f"{seconds:.1f} s", f"{seconds / one:.2f}x one run, "
                                                                              f"{seconds / k:.2f} s a run"))
    configs = [base.replace(seed=s, lr=lr) for lr in LRS for s in range(3)]
    seconds, acc = pack_seconds(configs)
    rows.append(("24-run scratch-mlp sweep (8 lrs x 3 seeds) as one pack", f"{seconds:.1f} s",
                 f"{seconds / one:.2f}x one run (target <= 3x); best test acc {max(acc):.2f}%"))
    cnn = base.replace(model="cnn")
    one_cnn = alone_seconds(cnn)
    seconds, _ = pack_seconds([cnn.replace(seed=s % 2, lr=lr) for s, lr in enumerate(LRS)])
    rows.append((f"8-run cnn sweep as one pack / one cnn run ({one_cnn:.1f} s)", f"{seconds:.1f} s",
                 f"{seconds / one_cnn:.2f}x one run (target <= 3x)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-only", action="store_true")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the GPU figures' runs")
    parser.add_argument("--dataset", default="fashion-mnist", help="the GPU figures' data")
    args = parser.parse_args()
    print(f"# python bench/packs.py, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    if not args.gpu_only:
        print(describe_machine(torch.device("cpu")))
        alone, packed = cpu_queue()
        print(f"  8-run mini sweep (scratch-tui sweep run), one pack / one process per run: {packed:.1f} s / "
              f"{alone:.1f} s = {packed / alone:.2f} (target <= 0.5)")
    if torch.cuda.is_available():
        print(describe_machine(torch.device("cuda")))
        for what, value, note in gpu_figures(args.epochs, args.dataset):
            print(f"  {what}: {value}   {note}", flush=True)
    else:
        print("no CUDA device here: the GPU figures (the K curve, 24 MLP runs and 8 CNN runs against one) are not "
              "measured")


if __name__ == "__main__":
    main()
