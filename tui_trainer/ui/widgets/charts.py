"""Live training charts drawn with textual-plotext."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ..history import RunHistory, downsample


class RunChart(PlotextPlot):
    title = ""
    y_label = ""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._data_key: object = None
        self._history: RunHistory | None = None
        self._rendered: tuple[object, RenderResult] | None = None
        self.builds = 0  # plot builds so far; the benchmark and the tests read it

    # without colour, a marker of its own tells each series apart (the legend shows it)
    NO_COLOR_MARKERS = {"validation": "x", "train (epoch)": "•"}

    def marker(self, label: str) -> str:
        return self.NO_COLOR_MARKERS.get(label, "braille") if self.app.no_color else "braille"

    def on_mount(self) -> None:
        self.plt.title(self.title)
        self.plt.xlabel("epoch")

    def _points_limit(self) -> int:
        # one point per column of plot area is all the eye (and the training process's CPU) can use
        return max(self.size.width - 12, 10)

    def data_key(self, history: RunHistory) -> object:
        """What this chart draws, in brief: the chart is rebuilt only when it changes."""
        raise NotImplementedError

    def is_stale(self, history: RunHistory) -> bool:
        return self.data_key(history) != self._data_key

    def show(self, history: RunHistory) -> bool:
        """Redraw from the history if this chart's data moved; returns whether it did."""
        self._history = history
        key = self.data_key(history)
        if key == self._data_key:
            return False
        self._data_key = key
        self.plt.clear_data()
        self.draw(history)
        self.refresh()
        return True

    def on_resize(self) -> None:
        if self._history is not None:  # as many points as the new width has columns
            self.show(self._history)

    def render(self) -> RenderResult:
        # a plotext build costs 10-40 ms: repaints caused by the rest of the screen reuse the last one
        key = (self._data_key, self.size, self.app.theme, self.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, super().render())
            self.builds += 1
        return self._rendered[1]

    def draw(self, history: RunHistory) -> None:
        raise NotImplementedError

    def _plot_epochs(self, history: RunHistory, train: str, val: str, train_label: str) -> None:
        """Per-epoch train and validation series; validation only where the run has a validation split."""
        epochs = history.epochs
        self.plt.plot([e.epoch for e in epochs], [getattr(e, train) for e in epochs], label=train_label,
                      marker=self.marker(train_label))
        points = [(e.epoch, getattr(e, val)) for e in epochs if getattr(e, val) is not None]
        if points:
            self.plt.plot([x for x, _ in points], [y for _, y in points], label="validation",
                          marker=self.marker("validation"))


class LossChart(RunChart):
    title = "Loss"

    def data_key(self, history: RunHistory) -> object:
        # values, not counts: a resumed run drops epochs and trains them again with new numbers
        last_step = history.step_losses[-1] if history.step_losses else None
        epochs = tuple((e.epoch, e.train_loss, e.val_loss) for e in history.epochs)
        return len(history.step_losses), last_step, epochs, self._points_limit()

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        steps = downsample(history.step_losses, self._points_limit())
        if steps:
            plt.plot([x for x, _ in steps], [y for _, y in steps], label="train (per step)", marker="braille")
        if history.epochs:
            self._plot_epochs(history, "train_loss", "val_loss", "train (epoch)")


class AccuracyChart(RunChart):
    title = "Accuracy %"

    def data_key(self, history: RunHistory) -> object:
        if history.epochs:  # once an epoch is in, the running accuracy is no longer drawn
            return tuple((e.epoch, e.train_acc, e.val_acc) for e in history.epochs)
        p = history.progress
        return 0, (p.epoch, p.batch) if p else None

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        if history.epochs:
            self._plot_epochs(history, "train_acc", "val_acc", "train")
        elif history.progress:
            p = history.progress
            plt.plot([p.epoch - 1 + p.batch / p.batches], [p.acc], label="train (so far)", marker="braille")
