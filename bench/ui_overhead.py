"""What does watching a run in the app cost its training, and how quickly do commands and events travel?

    python bench/ui_overhead.py [--dataset fashion-mnist-mini] [--epochs 20] [--rounds 5] [--pauses 15] [--device cpu]

Every run is a process of its own, recorded in the run store as one event log; the app only
views it (its log replayed, then tailed) and steers it (commands queued in the store).

1. Overhead: the same config (scratch-mlp) trained headless (`scratch-tui train`) and launched
   from the app (app.start_training, as F5 does; headless Textual, charts drawing live), round
   after round so that a noisy machine's slow spells fall on both. Compares the engine's own
   median epoch seconds. Target: ratio <= 1.05.
2. Latency, for a launched view (the app started the run) and an attached view (a second app
   attached to a run started by `scratch-tui train --detach`), pausing with the space key:
   - command: key press -> CommandReceived in the log (the training process took it), and
     key press -> RunPaused in the log (the loop obeyed). Target: median <= 50 ms.
   - event: an event's `at` in the log -> the frame the app painted with it: RunPaused -> status
     line "Paused", BatchProgress and EpochEnded -> overall progress bar at its step. Target:
     median <= 250 ms.
   Both sides use time.time() on this one machine. The app is instrumented in this process
   only: TrainScreen.redraw notes what it put on the status line and the progress bar, and
   App._display notes the next frame the compositor rendered after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from textual import events  # noqa: E402
from textual.widgets import ProgressBar, Static  # noqa: E402

from tui_trainer.engine import TrainConfig  # noqa: E402
from tui_trainer.engine.commands import Command  # noqa: E402
from tui_trainer.engine.events import (BatchProgress, CommandReceived, EpochEnded, RunFinished, RunPaused,  # noqa: E402
                                       RunState, event_from_dict)
from tui_trainer.runs.store import RunStore  # noqa: E402
from tui_trainer.ui.app import TrainerApp  # noqa: E402
from tui_trainer.runs.view import RunView  # noqa: E402
from tui_trainer.ui.screens.train import TrainScreen  # noqa: E402

SIZE = (120, 40)


def epoch_seconds(events) -> list[float]:
    """Each epoch's training seconds, as the engine measured them."""
    return [e.seconds for e in events if isinstance(e, EpochEnded)]


def write_config(config: TrainConfig) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(config.to_toml())
    return fh.name


def train_cli(config: TrainConfig, *flags: str) -> list[str]:
    """`scratch-tui train --jsonl --config ... FLAGS` in a process of its own; its stdout lines."""
    path = write_config(config)
    try:
        result = subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--jsonl", "--config", path, *flags],
                                capture_output=True, text=True)
    finally:
        os.unlink(path)
    if result.returncode != 0:  # e.g. full Fashion-MNIST is not on this machine: the CLI's one line says so
        raise SystemExit((result.stderr.strip().splitlines() or ["scratch-tui train failed"])[-1])
    return result.stdout.splitlines()


def timed_log(store: RunStore, run_id: str) -> list[tuple[float, object]]:
    """(at, event) of the run's whole log: `at` is the time.time() of each append."""
    with sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT at, data FROM run_events WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    return [(at, event_from_dict(json.loads(zlib.decompress(data)))) for at, data in rows]


# -- 1. overhead on training speed --------------------------------------------------------
def headless_seconds(config: TrainConfig) -> list[float]:
    """`scratch-tui train --config ...` in a fresh process: recorded, checkpointed and all."""
    return epoch_seconds(event_from_dict(json.loads(line)) for line in train_cli(config))


async def app_seconds(config: TrainConfig, store: RunStore) -> tuple[list[float], float, str]:
    """The engine's own epoch time of a run the app launched and draws live; the share of one core
    the app's own process used from the first epoch on; its stats line."""
    from tui_trainer.runs.handle import RunLauncher

    app = TrainerApp(launcher=RunLauncher(store), store=store, config=config)
    async with app.run_test(size=SIZE):
        app.start_training(config)  # what F5 on the setup screen does with this config
        while not app.run_view.epochs and app.run_view.ended is None:
            await asyncio.sleep(0.05)
        cpu, wall = time.process_time(), time.perf_counter()
        # poll as seldom as a user watching would: the benchmark's own wake-ups count against the app
        stats = ""
        while app.run_view.ended is None:
            await asyncio.sleep(0.25)
            if app.run_view.is_active and isinstance(app.screen, TrainScreen):
                stats = str(app.screen.query_one("#stats", Static).render())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert isinstance(app.run_view.ended, RunFinished), app.run_view.message
    return epoch_seconds(app.run_view.epochs), cpu / wall, stats


# -- 2. command and event latency ------------------------------------------------------------
@dataclass
class Frame:
    drawn: float  # time.time() when TrainScreen.redraw put this on its widgets
    status: str
    step: float  # the overall progress bar
    painted: float | None = None  # the first frame the compositor rendered after that


@dataclass
class Probe:
    """What the app in this process drew and painted, and when its run view took which event."""

    frames: list[Frame] = field(default_factory=list)
    unpainted: list[Frame] = field(default_factory=list)
    applied: list[tuple[float, object]] = field(default_factory=list)  # (time, RunPaused or BatchProgress)

    def install(self, app: TrainerApp) -> None:
        display = app._display

        def timed_display(screen, renderable):
            if renderable is not None and self.unpainted:
                now = time.time()
                for frame in self.unpainted:
                    frame.painted = now
                self.unpainted.clear()
            return display(screen, renderable)

        app._display = timed_display  # the app's own: every frame goes through it, headless or not
        app.bench_probe = self

    def drew(self, screen: TrainScreen) -> None:
        status = str(screen.query_one("#status", Static).render())
        step = screen.query_one("#overall-bar", ProgressBar).progress
        last = self.frames[-1] if self.frames else None
        if last is None or (last.status, last.step) != (status, step):
            frame = Frame(time.time(), status, step)
            self.frames.append(frame)
            self.unpainted.append(frame)

    def paused_frames(self) -> list[Frame]:
        """Frames where the status line turned to Paused."""
        return [f for before, f in zip([None, *self.frames], self.frames)
                if f.status.startswith("Paused") and not (before and before.status.startswith("Paused"))]


PROBE: Probe | None = None
_redraw, _apply = TrainScreen.redraw, RunView.apply


def _timed_redraw(self: TrainScreen) -> None:
    _redraw(self)
    probe = getattr(self.app, "bench_probe", None)
    if probe is not None:
        probe.drew(self)


def _timed_apply(self: RunView, event, at=None) -> None:
    _apply(self, event, at)
    if PROBE is not None and isinstance(event, (RunPaused, BatchProgress)):
        PROBE.applied.append((time.time(), event))


TrainScreen.redraw, RunView.apply = _timed_redraw, _timed_apply


@dataclass
class Latency:
    view: str
    to_received: list[float]  # key -> CommandReceived(pause) appended
    to_paused: list[float]  # key -> RunPaused appended
    paused_shown: list[float]  # RunPaused appended -> status line "Paused" painted
    progress_shown: list[float]  # BatchProgress or EpochEnded appended -> progress bar at its step painted
    paused_applied: list[float]  # RunPaused appended -> in the app's history (before the redraw tick)


async def _wait(condition, what: str, app: TrainerApp, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if app.run_view.ended is not None:
            raise RuntimeError(f"the run ended while waiting for {what}: {app.run_view.message}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)  # the timestamps come from the hooks: this poll only decides when to go on


async def pause_cycles(app: TrainerApp, probe: Probe, pauses: int) -> tuple[list[float], float]:
    """Wait for training, then pause and resume with the space key `pauses` times; the key times."""
    global PROBE
    PROBE = probe
    probe.install(app)
    await _wait(lambda: app.run_view.state == RunState.RUNNING and (app.run_view.progress or app.run_view.epochs)
                and isinstance(app.screen, TrainScreen), "the run to train", app, timeout=120)
    await asyncio.sleep(1.0)
    begun = time.time()
    presses = []
    for _ in range(pauses):
        # a random phase, so that the keys fall anywhere in the 20 ms and 50 ms poll cycles
        await asyncio.sleep(random.uniform(0.5, 1.0))
        n = len(probe.paused_frames())
        presses.append(time.time())
        app.post_message(events.Key("space", " "))  # as the terminal driver delivers it
        await _wait(lambda: len(probe.paused_frames()) > n and probe.paused_frames()[-1].painted is not None,
                    "the status line to say Paused", app)
        await asyncio.sleep(random.uniform(0.2, 0.4))
        app.post_message(events.Key("space", " "))
        await _wait(lambda: app.run_view.state == RunState.RUNNING and probe.frames[-1].status.startswith("Training"),
                    "the run to resume", app)
    app.send(Command("stop"))
    deadline = time.monotonic() + 60
    while app.run_view.ended is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return presses, begun


def latencies(view: str, store: RunStore, run_id: str, probe: Probe, presses: list[float],
              begun: float) -> Latency:
    log = [(at, e) for at, e in timed_log(store, run_id) if at >= begun]
    received = [at for at, e in log if isinstance(e, CommandReceived) and e.command == "pause"]
    paused = [at for at, e in log if isinstance(e, RunPaused)]
    # each logged pause pairs with the first Paused frame painted after it (a redraw for another
    # event may paint Paused again: that one is not the pause showing)
    frames = [f for f in probe.paused_frames() if f.drawn >= begun and f.painted is not None]
    shown = [next((f.painted for f in frames if f.drawn >= at), None) for at in paused]
    shown = [t for t in shown if t is not None]
    applied = [t for t, e in probe.applied if isinstance(e, RunPaused) and t >= begun]
    if not len(presses) == len(received) == len(paused) == len(shown) == len(applied):
        raise RuntimeError(f"{view}: {len(presses)} presses, {len(received)} commands received, {len(paused)} "
                           f"pauses logged, {len(shown)} shown, {len(applied)} applied: cannot pair them")
    painted = [f for f in probe.frames if f.painted is not None]
    progress = []
    for at, e in log:
        if isinstance(e, (BatchProgress, EpochEnded)):
            first = next((f for f in painted if f.step >= e.step and f.drawn >= at), None)
            if first is not None:
                progress.append(first.painted - at)
    return Latency(view, [r - p for r, p in zip(received, presses)], [a - p for a, p in zip(paused, presses)],
                   [s - a for s, a in zip(shown, paused)], progress, [s - a for s, a in zip(applied, paused)])


async def launched_view(config: TrainConfig, store: RunStore, pauses: int) -> Latency:
    from tui_trainer.runs.handle import RunLauncher

    app, probe = TrainerApp(launcher=RunLauncher(store), store=store, config=config), Probe()
    async with app.run_test(size=SIZE):
        app.start_training(config)
        presses, begun = await pause_cycles(app, probe, pauses)
        run_id = app.handle.run_id
    return latencies("launched (app started it)", store, run_id, probe, presses, begun)


async def attached_view(config: TrainConfig, store: RunStore, pauses: int) -> Latency:
    lines = train_cli(config, "--detach", "--runs-dir", str(store.root))
    run_id = next(json.loads(line)["run_id"] for line in lines if '"run_detached"' in line)
    app, probe = TrainerApp(store=store, attach=run_id), Probe()
    async with app.run_test(size=SIZE):
        presses, begun = await pause_cycles(app, probe, pauses)
    return latencies("attached (train --detach)", store, run_id, probe, presses, begun)


def ms(values: list[float]) -> str:
    if not values:
        return "        -"
    return f"{1000 * statistics.median(values):4.0f}/{1000 * max(values):4.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist-mini",
                        help="fashion-mnist-mini is bundled; fashion-mnist (second-long epochs) compares more steadily")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each overhead run")
    parser.add_argument("--rounds", type=int, default=5, help="headless/app pairs for the overhead ratio")
    parser.add_argument("--pauses", type=int, default=15, help="pause/resume key presses per view")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    # the app records its runs: keep the benchmark's out of the user's store
    home = tempfile.mkdtemp(prefix="scratch-tui-bench-")
    os.environ["SCRATCH_TUI_HOME"] = home
    store = RunStore(home)
    config = TrainConfig(epochs=args.epochs, device=args.device, dataset=args.dataset)
    print(f"machine: {describe_machine(torch.device(args.device))}, {os.cpu_count()} cores")
    print(f"config: scratch-mlp on {args.dataset}, batch {config.batch_size}; overhead: {args.epochs} epochs, "
          f"{args.rounds} rounds; latency: {args.pauses} pauses per view", flush=True)
    # a shared 2-core machine: whatever else runs shows up in both readings, so say how busy it was
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)

    # Two readings of each run: its median epoch, and its fastest, which a shared machine's slow
    # spells (other tenants, not the app) cannot reach.
    ratios, best_ratios, shares, stats = [], [], [], ""
    for n in range(1, args.rounds + 1):
        # ABBA: which goes first alternates, so a machine slowing down or speeding up favours neither
        if n % 2:
            headless = headless_seconds(config)
        in_app, share, stats = asyncio.run(app_seconds(config, store))
        if not n % 2:
            headless = headless_seconds(config)
        ratios.append(statistics.median(in_app) / statistics.median(headless))
        best_ratios.append(min(in_app) / min(headless))
        shares.append(share)
        print(f"round {n}: epoch headless median {statistics.median(headless):.3f} s, best {min(headless):.3f} s   "
              f"app-launched median {statistics.median(in_app):.3f} s, best {min(in_app):.3f} s   "
              f"ratio {ratios[-1]:.3f} (best {best_ratios[-1]:.3f})   app process {100 * share:.0f}% of a core",
              flush=True)
    print(f"the app's stats line while training: {stats}")

    long_run = config.replace(epochs=1000)  # stopped once the pauses are done
    views = [asyncio.run(launched_view(long_run, store, args.pauses)),
             asyncio.run(attached_view(long_run, store, args.pauses))]

    print()
    print(f"overhead: epoch time with the app viewing / headless, over {args.rounds} rounds: median of medians "
          f"{statistics.median(ratios):.3f}, median of bests {statistics.median(best_ratios):.3f} (target <= 1.05); "
          f"app process median {100 * statistics.median(shares):.0f}% of a core")
    print()
    print("latency, ms as median/max        command (target median <= 50)   event (target median <= 250)")
    print("view                        n   key->received  key->RunPaused   RunPaused->shown  progress->shown  (n)")
    for v in views:
        print(f"{v.view:<26} {len(v.to_paused):2d}      {ms(v.to_received)}      {ms(v.to_paused)}"
              f"        {ms(v.paused_shown)}        {ms(v.progress_shown)}  ({len(v.progress_shown)})")
    print()
    print("key->received: space pressed -> CommandReceived appended by the training process; key->RunPaused: -> the "
          "loop's RunPaused appended.\nRunPaused->shown: its `at` -> the frame painted with the status line at "
          "Paused; progress->shown: a BatchProgress's or EpochEnded's `at` -> the frame with the progress bar at "
          "its step.")
    for v in views:
        obey = [p - r for p, r in zip(v.to_paused, v.to_received)]
        print(f"{v.view}: CommandReceived -> RunPaused (the loop reaching its next batch): median "
              f"{1000 * statistics.median(obey):.0f} ms, max {1000 * max(obey):.0f} ms")
    for v in views:
        print(f"{v.view}: RunPaused `at` -> applied to the app's history (follow poll): median "
              f"{1000 * statistics.median(v.paused_applied):.0f} ms, max {1000 * max(v.paused_applied):.0f} ms; "
              f"the rest is the redraw tick (REDRAW_SECONDS) and the paint")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min; this benchmark alone keeps it near 2)")


if __name__ == "__main__":
    main()
