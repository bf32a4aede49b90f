"""The LR finder: setup's config in a short range test (engine/lr_find.py), its loss against the lr, one key to
take the suggestion.

The test runs in a thread worker, never on the UI's thread; Escape cancels it between two steps. It records
no run: a throwaway copy of the model trains, and nothing is written.
"""

from __future__ import annotations

import math
import threading

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ProgressBar, Static

from ...engine.config import ConfigError, TrainConfig
from ...engine.lr_find import END_LR, START_LR, STEPS, LrFindProgress, LrFindResult, find_lr
from ..markup import markup, plain
from ..widgets.chart import Chart
from ..widgets.footer import KeyFooter
from .help import HELP_IN_FOOTER

SUGGESTION_COLOUR = "red"


def two_figures(lr: float) -> float:
    """The suggestion as it is applied: two significant figures (the test is not more precise than that)."""
    return float(f"{lr:.2g}")


def lr_text(lr: float) -> str:
    return f"{two_figures(lr):g}"


def plotted_curve(result: LrFindResult) -> tuple[list[float], list[float], float]:
    """(lrs, losses, top) as the chart draws them: a diverged tail is cut a little above the starting loss, so
    the valley is not squashed into a line (as `scratch-tui lr-find` does)."""
    losses = result.losses
    top = max(losses[0], min(losses)) * 1.25
    return list(result.lrs), [min(loss, top) for loss in losses], top


class FinderProgress(Message):
    def __init__(self, item: LrFindProgress) -> None:
        super().__init__()
        self.item = item


class FinderDownload(Message):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class FinderDone(Message):
    def __init__(self, result: LrFindResult | None, error: str = "") -> None:
        super().__init__()
        self.result, self.error = result, error


class LrFindScreen(Screen[float | None]):
    """Runs the range test on `config`; dismisses with the suggestion (two figures) on `a`, None on Escape."""

    HELP_TITLE = "LR finder"
    BINDINGS = [
        Binding("a", "apply", "Apply", tooltip="Apply the suggested lr to the form"),
        Binding("escape", "cancel", "Cancel", tooltip="Cancel (stops a running test) and go back to setup"),
        HELP_IN_FOOTER,
    ]

    def __init__(self, config: TrainConfig, start_lr: float = START_LR, end_lr: float = END_LR,
                 steps: int = STEPS) -> None:
        super().__init__()
        self.config, self.start_lr, self.end_lr, self.steps = config, start_lr, end_lr, steps
        self.result: LrFindResult | None = None
        self.curve: tuple[list[float], list[float]] = ([], [])  # (lrs, losses) as plotted
        self.error = ""
        self._cancel = threading.Event()  # the worker looks at it between steps

    def compose(self) -> ComposeResult:
        yield Static(markup("[b]LR finder[/b] · $what", what=f"{self.config.model} · lr {self.start_lr:g} → "
                                                          f"{self.end_lr:g}, {self.steps} steps · records no run"),
                     id="lr-find-title")
        yield ProgressBar(id="lr-find-bar", total=self.steps, show_eta=True)
        yield Static("Preparing the data and the model…", id="lr-find-status")
        yield Chart(id="lr-find-chart")
        yield Static("", id="lr-find-result")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#lr-find-chart").display = False
        self._run(self._cancel)

    def on_unmount(self) -> None:
        self._cancel.set()  # gone by any way: the test stops at its next step

    # -- the test, off the UI's thread -----------------------------------------
    @work(thread=True, exit_on_error=False, group="lr-find")
    def _run(self, cancel: threading.Event) -> None:
        def download(done: int, total: int | None, label: str) -> None:
            self.post_message(FinderDownload(label))

        result: LrFindResult | None = None
        items = find_lr(self.config, self.start_lr, self.end_lr, self.steps, download_progress=download)
        try:
            for item in items:
                if cancel.is_set():
                    return  # cancelled: nothing to show
                if isinstance(item, LrFindProgress):
                    self.post_message(FinderProgress(item))
                else:
                    result = item
        except ConfigError as exc:
            self.post_message(FinderDone(None, "; ".join(exc.errors.values())))
            return
        except Exception as exc:  # a missing dataset, a device that is gone: one line, never a traceback
            self.post_message(FinderDone(None, str(exc) or type(exc).__name__))
            return
        finally:
            items.close()
        self.post_message(FinderDone(result))

    def on_finder_download(self, message: FinderDownload) -> None:
        self.query_one("#lr-find-status", Static).update(plain(message.label))

    def on_finder_progress(self, message: FinderProgress) -> None:
        item = message.item
        self.query_one("#lr-find-bar", ProgressBar).update(total=item.steps, progress=item.step)
        self.query_one("#lr-find-status", Static).update(
            f"step {item.step}/{item.steps} · lr {item.lr:.3g} · loss {item.loss:.4f} · Esc cancels")

    def on_finder_done(self, message: FinderDone) -> None:
        self.query_one("#lr-find-bar").display = False
        status = self.query_one("#lr-find-status", Static)
        if message.result is None:
            self.error = message.error
            status.set_class(True, "error")
            status.update(plain(f"The LR finder could not run: {message.error}"))
            return
        self.result = result = message.result
        status.display = False
        self._draw(result)
        lines = ["[b]suggested lr: $lr[/b] (a tenth of $at, the lowest loss's lr) · a applies it"]
        if result.stopped_early:
            lines.append(f"stopped early: the loss diverged at lr {result.lrs[-1]:.3g}, step {len(result.lrs)}")
        else:
            lines.append(f"reached lr {result.lrs[-1]:.3g} after {len(result.lrs)} steps without the loss diverging")
        self.query_one("#lr-find-result", Static).update(
            markup("\n".join(lines), lr=lr_text(result.suggestion), at=f"{result.min_loss_lr:.3g}"))
        self.refresh_bindings()

    def _draw(self, result: LrFindResult) -> None:
        chart = self.query_one("#lr-find-chart", Chart)
        chart.display = True
        plt = chart.plt
        plt.clear_figure()
        lrs, losses, _ = plotted_curve(result)
        self.curve = (lrs, losses)
        # a log x axis drawn by hand: log10 of each lr on a linear axis, decades as ticks (plotext's own
        # xscale("log") takes the log of its data in place at each build, and a Textual widget builds again
        # at every repaint)
        plt.plot([math.log10(lr) for lr in lrs], losses, marker="braille")
        plt.vline(math.log10(result.suggestion), SUGGESTION_COLOUR)
        decades = range(math.floor(math.log10(lrs[0])), math.ceil(math.log10(lrs[-1])) + 1)
        plt.xticks(list(decades), [f"{10.0 ** d:g}" for d in decades])
        plt.title(f"smoothed loss · │ suggestion {lr_text(result.suggestion)}")
        plt.xlabel("learning rate (log)")
        chart.refresh()

    # -- keys --------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return True if self.result is not None else None  # shown, greyed out until there is a suggestion
        return True

    def action_apply(self) -> None:
        if self.result is None:
            self.notify("The LR finder has no suggestion yet.", severity="warning")
            return
        self.dismiss(two_figures(self.result.suggestion))

    def action_cancel(self) -> None:
        self._cancel.set()
        self.dismiss(None)
