"""Every speed figure, side by side in one run: one table per device present.

    python bench/run_all.py [--devices cpu,cuda] [--skip ui,compile,ddp]

On full Fashion-MNIST when it is on disk (Debian's dataset-fashion-mnist), else the bundled
mini set. Each row is measured in this run, on this machine, so every ratio compares like
with like. Rows:
- the tutorial's loop (torchvision dataset + DataLoader, batch 64, SGD) against the engine and
  a bare loop over preloaded tensors on the same recipe;
- the engine's `scratch-mlp` defaults and the `cnn`, each on the eager path and the chosen one;
- time to 89% test accuracy with `scratch-mlp`, with the defaults and with a short recipe (test
  accuracy read at each epoch's end, training seconds summed, evaluation left out);
- the app's overhead (bench/ui_overhead.py, fewer rounds);
- 2 gloo processes against 1 (bench/ddp_scaling.py) on the CPU;
- torch.compile of the model inside an eager step, on CUDA, to show whether it pays here;
- the probe's cost (a run's wall time with the default --probe-every against none), and a user's model file
  that defines the scratch MLP (examples/custom_linear_mlp.py) against the built-in, each on the chosen path.
Targets (issue 9): H100 `scratch-mlp` epoch <= 80 ms, `cnn` epoch <= 300 ms, >= 30x the tutorial
loop, 89% in <= 1.5 s, app overhead <= 5%; 2-core CPU >= 5x the tutorial loop, 89% in <= 5 s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from engine_speed import bare_epochs, torchvision_root, tutorial_epochs  # noqa: E402
from machine import describe_machine  # noqa: E402
from probe_cost import probe_cost  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun, preset  # noqa: E402
from tui_trainer.engine.data import dataset_status, load_raw, prepare  # noqa: E402
from tui_trainer.engine.evaluate import loss_and_accuracy  # noqa: E402
from tui_trainer.engine.events import EpochEnded, RunStarted  # noqa: E402
from tui_trainer.engine.models import build_model  # noqa: E402


# Fewer, larger steps: on two CPU cores a step's fixed cost dominates, and this reaches 89% by epoch 9
# (bench/sweeps/fast-mlp.toml found no recipe of 6 epochs or fewer that does).
SHORT_RECIPE = {"epochs": 10, "batch_size": 512, "lr": 0.01}
SHORT_LABEL = "10 epochs, batch 512, lr 0.01"


def engine_run(config: TrainConfig, data, epochs: int) -> tuple[float, str]:
    """Best epoch seconds (least disturbed by the rest of the machine) and the step path used."""
    path, seconds = "", []
    for event in TrainingRun(config.replace(epochs=epochs), data=data, evaluate_at_end=False).events():
        if isinstance(event, RunStarted):
            path = event.step_path
        elif isinstance(event, EpochEnded):
            seconds.append(event.seconds)
    return min(seconds), path


def wall_seconds(config: TrainConfig, data, rounds: int = 3) -> float:
    """The least wall time of a whole run's events (probes and epoch ends included, evaluation left out)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in TrainingRun(config, data=data, evaluate_at_end=False).events():
            pass
        if data.train_x.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def time_to(target: float, config: TrainConfig, data) -> tuple[float | None, int | None, float]:
    """Training seconds until test accuracy first reaches `target`, that epoch, and the final accuracy."""
    run = TrainingRun(config, data=data, evaluate_at_end=False)
    trained, reached, acc = 0.0, None, 0.0
    for event in run.events():
        if isinstance(event, EpochEnded):
            trained += event.seconds
            _, acc = loss_and_accuracy(run.model, data.test_x, data.test_y)  # the loop waits at the yield
            if reached is None and acc >= target:
                reached = (trained, event.epoch)
    return (*(reached or (None, None)), acc)


def compiled_epoch(config: TrainConfig, data) -> tuple[float, float]:
    """torch.compile(model) in an eager step with a fused AdamW: compile seconds and best epoch seconds."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.image_shape, len(data.classes), config.hidden, config.init)
    model = torch.compile(model.to(data.train_x.device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, fused=True)
    x, y, n, bs = data.train_x, data.train_y, len(data.train_y) // config.batch_size * config.batch_size, \
        config.batch_size
    started = time.perf_counter()
    loss = F.cross_entropy(model(x[:bs]), y[:bs])
    loss.backward()
    torch.cuda.synchronize()
    compile_s, times = time.perf_counter() - started, []
    for _ in range(2):
        started = time.perf_counter()
        order = torch.randperm(len(y), device=x.device)
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=config.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return compile_s, min(times)


def ui_overhead(device: str, dataset: str) -> str:
    command = [sys.executable, str(HERE / "ui_overhead.py"), "--device", device, "--dataset", dataset,
               "--rounds", "2", "--epochs", "12" if device == "cuda" else "4", "--pauses", "3"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=240).stdout
    except subprocess.TimeoutExpired:
        return "timed out"
    found = re.search(r"median of medians ([0-9.]+), median of bests ([0-9.]+)", out)
    return f"{found[1]} (best epochs {found[2]})" if found else "not measured: " + (out.strip().splitlines() or
                                                                                   ["no output"])[-1]


def ddp_scaling() -> str:
    script = HERE / "ddp_scaling.py"
    if not script.exists():
        return "not measured: no distributed engine yet"
    try:
        out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True,
                             timeout=240).stdout
    except subprocess.TimeoutExpired:
        return "timed out"
    found = re.search(r"^ratio: (.*)$", out, re.M)
    return found[1] if found else "not measured: " + (out.strip().splitlines() or ["no output"])[-1]


class Table:
    def __init__(self, title: str):
        self.title, self.rows = title, []

    def add(self, what: str, value: str, note: str = "") -> None:
        self.rows.append((what, value, note))
        print(f"  {what}: {value}{'   ' + note if note else ''}", flush=True)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| what | measured | ratio / note |", "|---|---:|---|"]
        lines += [f"| {w} | {v} | {n} |" for w, v, n in self.rows]
        return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def bench_device(name: str, skip: set[str], full: bool) -> Table:
    device = torch.device(name)
    cuda = device.type == "cuda"
    dataset = "fashion-mnist" if full else "fashion-mnist-mini"
    raw = load_raw(dataset)
    table = Table(f"{describe_machine(device)}; {'full Fashion-MNIST' if full else 'bundled mini set'}; "
                  f"{time.strftime('%Y-%m-%d')}")
    print(table.title, flush=True)

    tutorial = preset("tutorial").replace(device=name, val_split=0.0, dataset=dataset)
    data = prepare(raw, device, val_split=0.0, seed=0)
    tmp = Path(tempfile.mkdtemp())
    try:
        loop_s = min(tutorial_epochs(tutorial, torchvision_root(raw, tmp), 1, device))
    finally:
        shutil.rmtree(tmp)
    engine_s, path = engine_run(tutorial, data, 3)
    bare_s = min(bare_epochs(tutorial, data, 2))
    table.add("tutorial loop epoch (DataLoader, batch 64, SGD)", ms(loop_s))
    table.add(f"engine epoch, same recipe ({path})", ms(engine_s), f"{loop_s / engine_s:.1f}x the tutorial loop")
    table.add("bare loop epoch, same recipe (eager, preloaded)", ms(bare_s), f"engine / bare {engine_s / bare_s:.2f}")

    split = prepare(raw, device, val_split=0.1, seed=0)
    mlp = TrainConfig(device=name, dataset=dataset)
    eager_s, _ = engine_run(mlp.replace(step_mode="eager"), split, 2)
    table.add("scratch-mlp defaults epoch, eager (batch 128, adamw)", ms(eager_s))
    if cuda:
        fast_s, path = engine_run(mlp, split, 3)
        table.add(f"scratch-mlp defaults epoch, {path}", ms(fast_s), f"{eager_s / fast_s:.1f}x eager")

    cnn = TrainConfig(model="cnn", device=name, dataset=dataset)
    cnn_data = split if cuda else prepare(raw, device, val_split=0.1, seed=0, max_train_samples=6000)
    cnn_note = "" if cuda else f"on {len(cnn_data.train_y):,} images"
    cnn_eager, _ = engine_run(cnn.replace(step_mode="eager", precision="fp32"), cnn_data, 2 if cuda else 1)
    table.add("cnn epoch, eager fp32", ms(cnn_eager), cnn_note)
    if cuda:
        graph_fp32, path32 = engine_run(cnn.replace(precision="fp32"), cnn_data, 3)
        table.add(f"cnn epoch, {path32}", ms(graph_fp32), f"{cnn_eager / graph_fp32:.1f}x eager")
        cnn_s, path = engine_run(cnn, cnn_data, 3)
        table.add(f"cnn epoch, {path}", ms(cnn_s), f"{cnn_eager / cnn_s:.1f}x eager")

    # the probe at its default cadence against none, over a default run (its early probes fall in the first epoch)
    cost = probe_cost(mlp, split, rounds=3)
    unprobed = cost["plain"]
    table.add(f"scratch-mlp default run ({mlp.epochs} epochs), probe every {mlp.probe_every} steps / none",
              ms(cost["probed"]), f"{cost['ratio']:.3f}; {cost['share']:.1%} of the run inside the probe "
              "(target <= 3%, bench/probe_cost.py)")
    from tui_trainer.engine.model_file import ready

    mine = ready(mlp.replace(model=str(HERE.parent / "examples" / "custom_linear_mlp.py") + ":custom_mlp",
                             probe_every=0))
    mine_s = wall_seconds(mine, split)
    table.add(f"the same MLP from a user's file (examples/custom_linear_mlp.py), {mlp.epochs} epochs / built-in",
              ms(mine_s), f"{mine_s / unprobed:.3f} (target <= 1.05)")

    for label, recipe in (("defaults, 15 epochs", mlp), (SHORT_LABEL, mlp.replace(**SHORT_RECIPE))):
        seconds, epoch, final = time_to(89.0, recipe, split)
        table.add(f"scratch-mlp to 89% test accuracy ({label})",
                  f"{seconds:.2f} s" if seconds is not None else "not reached",
                  f"epoch {epoch}; {final:.2f}% after {recipe.epochs}" if epoch else
                  f"{final:.2f}% after {recipe.epochs}")

    if "ui" not in skip:
        table.add("app overhead (epoch time viewed / headless)", ui_overhead(name, dataset), "target <= 1.05")
    if cuda and "compile" not in skip:
        try:
            compile_s, compiled = compiled_epoch(mlp, split)
            table.add("scratch-mlp epoch, torch.compile(model) + fused AdamW, eager step", ms(compiled),
                      f"compile {compile_s:.0f} s; the graph path is {compiled / fast_s:.1f}x faster")
        except Exception as exc:  # a missing compiler toolchain is a finding, not a crash
            table.add("torch.compile", "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
    if not cuda and "ddp" not in skip:
        table.add("2 gloo processes / 1 process, samples/s", ddp_scaling())
    if "packs" not in skip:  # bench/packs.py: the queue's packs against a process per run
        from packs import cpu_queue, gpu_figures

        if cuda:
            for what, value, note in gpu_figures(15 if full else 2, dataset):
                table.add(what, value, note)
        else:
            alone, packed = cpu_queue(rounds=1)
            table.add("8-run mini sweep (scratch-tui sweep run), one pack / a process per run", f"{packed:.1f} s",
                      f"{packed / alone:.2f} of {alone:.1f} s (target <= 0.5)")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip", default="", help="comma-separated: ui, compile, ddp, packs")
    args = parser.parse_args()
    full = dataset_status("fashion-mnist") == "on disk"
    skip = set(filter(None, args.skip.split(",")))
    tables = [bench_device(name, skip, full) for name in args.devices.split(",")]
    print()
    for table in tables:
        print(table.markdown(), end="\n\n")


if __name__ == "__main__":
    main()
