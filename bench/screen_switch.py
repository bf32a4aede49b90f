"""How long does a screen or tab switch take in the app, as a person presses the keys?

    python bench/screen_switch.py [--size 120x40] [--rounds 5] [--epochs 2] [--profile KEY] [--gc-freeze]

A real evaluation first: scratch-mlp trained on the bundled fashion-mnist-mini for a couple of
epochs on the CPU (the engine's own TrainingRun, so the evaluation keeps as many sample images
as a real one: up to 4 per diagonal cell and 3 per mistake cell, about 150). Its events are then
played into the app (headless Textual, Pilot, the way tests/ui drives it) and the app is walked
through its screens: setup -> F5 -> training -> e (evaluation) -> 1/2/3 tabs -> Esc -> F2 runs, F3 queue...

Each switch is timed from the key press to the last frame the app painted for it: wall
milliseconds, and the app process's CPU milliseconds in the same span. Frames are noted where the
app hands each compositor update to its driver (App._display, headless or not); the switch is
pressed and waited for with Pilot (press, then pause: the app idle again, which Pilot finds by
polling in 20 ms steps, so that wait is not counted), and the last frame must show the new screen
or tab. Animations are switched off (animation_level "none"): they come after the content is
shown, not before, and their frames would hide the switch's own.
Python's full (generation 2) garbage collections are timed too (gc.callbacks): a switch that one
falls in waits for it, and the table says how many did (the app defers them to quiet moments:
ui/collector.py). `--gc-freeze` calls gc.freeze() once the evaluation is open, as the app does
after start-up (run_app).
Target: every switch <= 100 ms at 120x40. `--profile KEY` prints cProfile's top functions for
the switches that key makes (e.g. --profile 1) instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from machine import describe_machine  # noqa: E402

import torch  # noqa: E402

from tui_trainer.engine import TrainConfig, TrainingRun  # noqa: E402
from tui_trainer.engine.events import EvaluationEnded, RunFailed, RunFinished  # noqa: E402
from tui_trainer.runs.store import RunStore  # noqa: E402
from tui_trainer.ui.app import TrainerApp  # noqa: E402
from tui_trainer.ui.screens.evaluate import EvaluationScreen  # noqa: E402

from tests.ui.fakes import DEVICES, KEEP_TRAINING, ScriptedLauncher, dataset_status  # noqa: E402

TARGET_MS = 100

# (label, key, a new evaluation first?): each step is pressed and timed; the walk ends where it
# began (the evaluation, on its first tab). The app keeps the last evaluation's screen, so `e` comes
# back to it as it was left; the last step hands the app a new evaluation, which `e` builds anew.
WALK = [
    ("eval: per class -> samples", "3", False),
    ("eval: samples -> per class", "1", False),
    ("eval: per class -> confusion", "2", False),
    ("eval: confusion -> samples", "3", False),
    ("eval: samples -> confusion", "2", False),
    ("eval: confusion -> per class", "1", False),
    ("eval: per class -> samples (m)", "m", False),
    ("eval: samples -> training (esc)", "escape", False),
    ("training -> evaluation, kept (e)", "e", False),
    ("eval: samples -> help (?)", "question_mark", False),
    ("help -> eval (esc)", "escape", False),
    ("eval -> runs (f2)", "f2", False),
    ("runs -> eval (esc)", "escape", False),
    ("eval -> queue (f3)", "f3", False),
    ("queue -> eval (esc)", "escape", False),
    ("eval -> training (esc)", "escape", False),
    ("training -> a new evaluation, built (e)", "e", True),
]
# then, after the rounds of WALK: a new run, round after round; its run has just started (one event so far)
NEW_RUN = [
    ("training -> setup (n)", "n", False),
    ("setup -> training, a run just started (f5)", "f5", False),
]


def showing(app) -> tuple[str, str | None]:
    """What a frame shows: the screen, and the evaluation's tab."""
    screen = app.screen
    if isinstance(screen, EvaluationScreen):
        return type(screen).__name__, screen.tab
    return type(screen).__name__, None


class Frames:
    """Every frame the app paints: when, the process's CPU clock then, and what it showed."""

    def __init__(self, app) -> None:
        self.seen: list[tuple[float, float, tuple]] = []
        display = app._display

        def noted(screen, renderable):
            display(screen, renderable)
            if renderable is not None:
                self.seen.append((time.perf_counter(), time.process_time(), showing(app)))

        app._display = noted

    def last(self, since: float) -> tuple[float, float, tuple] | None:
        return next((frame for frame in reversed(self.seen) if frame[0] >= since), None)


class Collections:
    """Full garbage collections: (start, end) on the perf_counter clock."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.spans.append((self._started, time.perf_counter()))

    def within(self, start: float, end: float) -> float:
        return sum(b - a for a, b in self.spans if a >= start and b <= end)


def real_events(epochs: int) -> list:
    """A short real run's events, the evaluation included."""
    config = TrainConfig(model="scratch-mlp", dataset="fashion-mnist-mini", epochs=epochs, device="cpu", seed=0)
    events = []
    for event in TrainingRun(config).events():
        if isinstance(event, RunFailed):
            raise SystemExit(f"the bench run failed: {event.message}")
        events.append(event)
    return events


async def walk(events: list, size: tuple[int, int], rounds: int, profile: str | None,
               store_dir: str, freeze: bool = False) -> dict[str, list[tuple[float, float, float]]]:
    just_started = False

    def script(config):
        if just_started:
            yield events[0]  # RunStarted, and nothing more until it is stopped
            yield KEEP_TRAINING
            return
        yield from events

    app = TrainerApp(launcher=ScriptedLauncher(script), devices=DEVICES, dataset_status=dataset_status,
                     store=RunStore(Path(store_dir)))
    times: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in WALK + NEW_RUN}
    collections = Collections()
    app.animation_level = "none"
    frames = Frames(app)
    profiler = cProfile.Profile() if profile else None
    async with app.run_test(size=size) as pilot:
        await pilot.press("f5")
        deadline = time.monotonic() + 60
        while app.run_view.state not in ("finished", "failed"):
            assert time.monotonic() < deadline, "the scripted run never finished"
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        await pilot.press("e")
        await pilot.pause(0.3)
        if freeze:
            gc.collect()
            gc.freeze()
        walk = [*(step for _ in range(rounds) for step in WALK), None,
                *(step for _ in range(rounds) for step in NEW_RUN)]
        for step in walk:
            if step is None:  # from the evaluation to its training screen, untimed; new runs from here on
                await pilot.press("escape")
                just_started = True
                continue
            label, key, new = step
            if new:  # an equal evaluation, but not the one whose screen the app keeps
                app.run_view.evaluation = dataclasses.replace(app.run_view.evaluation)
            await pilot.pause(0.1)  # settle: timers, the footer, the last repaint
            on = profiler is not None and key == profile
            start, cpu = time.perf_counter(), time.process_time()
            if on:
                profiler.enable()
            await pilot.press(key)
            await pilot.pause()  # the repaint the switch asked for
            if on:
                profiler.disable()
            painted = frames.last(start)
            assert painted is not None and painted[2] == showing(app), f"{key!r}: no frame painted shows it"
            times[label].append((1000 * (painted[0] - start), 1000 * (painted[1] - cpu),
                                 1000 * collections.within(start, painted[0])))
        await pilot.press("s", "s")  # stop the last new run (and confirm), so that the app can leave
        await pilot.pause(0.2)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--profile", default=None, metavar="KEY")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the evaluation is open")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"machine: {describe_machine(torch.device('cpu'))}")
    events = real_events(args.epochs)
    evaluation = next(e for e in events if isinstance(e, EvaluationEnded))
    assert any(isinstance(e, RunFinished) for e in events)
    print(f"evaluation: scratch-mlp, {args.epochs} epochs on fashion-mnist-mini, test accuracy "
          f"{evaluation.test_acc:.2f}%, {len(evaluation.samples)} kept sample images")
    print(f"terminal {width}x{height}, {args.rounds} rounds; each switch: key press -> its last frame painted")
    with tempfile.TemporaryDirectory() as store_dir:
        times = asyncio.run(walk(events, (width, height), args.rounds, args.profile, store_dir, args.gc_freeze))
    if args.profile:
        return
    print(f"\n{'switch':<42} {'wall ms median/max':>19} {'app CPU ms median':>18} {'full GCs (ms)':>14}")
    worst = 0.0
    for label, samples in times.items():
        wall = [w for w, _, _ in samples]
        worst = max(worst, max(wall))
        collected = [g for _, _, g in samples if g]
        gcs = f"{len(collected)} ({', '.join(f'{g:.0f}' for g in collected)})" if collected else "0"
        print(f"{label:<42} {statistics.median(wall):>11.0f}/{max(wall):>7.0f} "
              f"{statistics.median(c for _, c, _ in samples):>18.0f}   {gcs}")
    verdict = "met" if worst <= TARGET_MS else "NOT met"
    print(f"\nslowest switch {worst:.0f} ms; target every switch <= {TARGET_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
