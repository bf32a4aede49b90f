"""Training inside the app costs how much more than headless? And how fast does a key take effect?

    python bench/ui_overhead.py [--epochs 20] [--device cpu]

Trains the same config (scratch-mlp on the bundled data) headless and inside the
app (headless Textual, charts redrawing live, training in its child process),
compares the engine's own training seconds, and times pause key presses.
Targets: ratio <= 1.05; a key shows its effect within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun  # noqa: E402
from tui_trainer.engine.events import EpochEnded, RunFinished  # noqa: E402
from tui_trainer.engine.recording import recorded  # noqa: E402
from tui_trainer.engine.store import RunStore  # noqa: E402
from tui_trainer.ui.app import TrainerApp  # noqa: E402
from textual import events  # noqa: E402
from textual.widgets import Static  # noqa: E402


def epoch_seconds(events) -> float:
    """The median epoch's training seconds: steady state, not start-up."""
    return statistics.median(e.seconds for e in events if isinstance(e, EpochEnded))


def headless_seconds(config: TrainConfig) -> float:
    """Recorded, checkpointed and all, as `scratch-tui train` runs it."""
    return epoch_seconds(recorded(TrainingRun(config), RunStore()))


async def app_seconds(config: TrainConfig) -> float:
    """The engine's own run time, measured the same way as headless, with the app drawing live."""
    app = TrainerApp(config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        while app.history.ended is None:
            await pilot.pause(0.05)
    assert isinstance(app.history.ended, RunFinished), app.history.message
    return epoch_seconds(app.history.epochs)


async def key_latency(config: TrainConfig, presses: int) -> tuple[list[float], list[float]]:
    app = TrainerApp(config=config)
    shown, applied = [], []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        while not app.history.epochs:
            await pilot.pause(0.05)
        for _ in range(presses):
            for want in ("paused", "running"):
                status = app.screen.query_one("#status", Static)
                before = str(status.render())
                started = time.perf_counter()
                # The key as the terminal driver delivers it; pilot.press would also wait for the app to idle.
                app.post_message(events.Key("space", " "))
                while str(status.render()) == before:
                    await asyncio.sleep(0.001)
                shown.append(time.perf_counter() - started)
                while app.history.state != want:
                    if not app.history.is_active:
                        raise RuntimeError("the run ended before the key presses: use more --epochs")
                    await asyncio.sleep(0.001)
                applied.append(time.perf_counter() - started)
                await pilot.pause(0.2)
        app.control.stop()
    return shown, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presses", type=int, default=5)
    parser.add_argument("--dataset", default="fashion-mnist-mini",
                        help="fashion-mnist gives second-long epochs, a steadier comparison")
    args = parser.parse_args()
    # the app records its runs: keep the benchmark's out of the user's store
    os.environ["SCRATCH_TUI_HOME"] = tempfile.mkdtemp(prefix="scratch-tui-bench-")
    config = TrainConfig(epochs=args.epochs, device=args.device, dataset=args.dataset)
    print(f"machine: {describe_machine(torch.device(args.device))}")
    print(f"config: scratch-mlp on {args.dataset}, {args.epochs} epochs, batch {config.batch_size}")
    headless = headless_seconds(config)
    in_app = asyncio.run(app_seconds(config))
    shown, applied = asyncio.run(key_latency(config.replace(epochs=1000), args.presses))
    print(f"median epoch: headless {headless:.3f} s   in the app {in_app:.3f} s   ratio {in_app / headless:.3f} "
          "(target <= 1.05)")
    print(f"pause/resume key -> status line updated: median {1000 * statistics.median(shown):.0f} ms, "
          f"max {1000 * max(shown):.0f} ms (target <= 100 ms)")
    print(f"pause/resume key -> the training process confirmed: median {1000 * statistics.median(applied):.0f} ms, "
          f"max {1000 * max(applied):.0f} ms")


if __name__ == "__main__":
    main()
