"""Regenerate screenshots/*.svg from the real app and a real short run on the bundled data.

    python scripts/make_screenshots.py [--size 100x32]

The README's set is 100x32, in screenshots/; any other size goes to screenshots/COLSxROWS/
(80x24 and 120x40 are kept there, the sizes the app is checked at).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from textual.widgets import Input

from tui_trainer.engine.config import TrainConfig
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.widgets.charts import RunChart

OUT = Path(__file__).resolve().parents[1] / "screenshots"


async def wait_for(pilot, predicate, timeout: float = 300.0, step: float = 0.1) -> None:
    waited = 0.0
    while not predicate():
        await pilot.pause(step)
        waited += step
        if waited > timeout:
            raise TimeoutError("the run did not finish in time")


README_SIZE = (100, 32)


async def capture(size: tuple[int, int]) -> None:
    out = OUT if size == README_SIZE else OUT / f"{size[0]}x{size[1]}"
    out.mkdir(parents=True, exist_ok=True)
    # a store of its own, so the screenshot run never lands among the user's runs
    os.environ["SCRATCH_TUI_HOME"] = tempfile.mkdtemp(prefix="scratch-tui-shots-")
    app = TrainerApp(config=TrainConfig(epochs=8, batch_size=32, lr=0.001, name="screenshot run"))

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"scratch-tui: {name}"))
        print(f"wrote {path}")

    async with app.run_test(size=size) as pilot:
        for widget in app.query(Input):
            widget.cursor_blink = False
        await pilot.pause()
        save("setup")
        await pilot.press("f5")
        charts = list(app.screen.query(RunChart))

        def caught_up() -> bool:  # the charts redraw once a second: a moment they show everything the log does
            return len(app.run_view.epochs) >= 4 and not any(c.is_stale(app.run_view) for c in charts)

        await wait_for(pilot, caught_up, step=0.02)
        save("training-live")
        await wait_for(pilot, lambda: app.run_view.state == "finished")
        await pilot.pause(0.3)
        save("training-finished")
        await pilot.press("i")  # the Layers view, then the first layer's histograms
        await pilot.pause(0.8)
        save("layers")
        await pilot.press("enter")
        await pilot.pause(0.8)
        save("layer-histograms")
        await pilot.press("escape", "escape")
        for key, name in (("1", "evaluation-per-class"), ("2", "evaluation-confusion"), ("3", "evaluation-samples")):
            await pilot.press("e" if key == "1" else key)
            if key == "1":
                await pilot.press("1")
            await pilot.pause(0.3)
            save(name)
        await pilot.press("f1")
        await pilot.pause(0.2)
        save("help")
        await pilot.press("escape", "escape", "f2", "space")
        await pilot.pause(0.3)
        save("runs")

    # the experiment screens: an LR range test, then a small sweep through the real queue
    tiny = TrainConfig(epochs=2, max_train_samples=1024, device="cpu", name="sweep shot")
    app = TrainerApp(config=tiny)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("f8")
        await wait_for(pilot, lambda: getattr(app.screen, "result", None) is not None, step=0.1)
        await pilot.pause(0.5)
        save("lr-finder")
        await pilot.press("escape")
        for field, axis in (("lr", "log 1e-3 1e-2 3"), ("seed", "0,1")):
            app.screen.query_one(f"#field-{field}").focus()
            await pilot.pause()
            await pilot.press("f4")
            await pilot.pause()
            app.screen.query_one("#prompt-input", Input).value = axis
            await pilot.press("enter")
            await pilot.pause()
        await pilot.press("f7")
        await pilot.pause()
        await pilot.press("enter")  # the sweep's suggested name
        await pilot.pause(0.5)
        save("setup-sweep")
        await pilot.press("f3")
        await pilot.pause(1.5)
        save("queue")
        store = app.run_store()
        await wait_for(pilot, lambda: all(r.status == "finished" for r in store.list_runs()), step=0.5)
        await pilot.press("escape", "f2")
        await pilot.pause(0.5)
        await pilot.press("enter")  # the sweep's header row is the first
        await pilot.pause(2.5)
        save("sweep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100x32", help="terminal columns x rows")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    asyncio.run(capture((width, height)))


if __name__ == "__main__":
    main()
