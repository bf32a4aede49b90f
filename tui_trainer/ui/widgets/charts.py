"""Live training charts drawn with textual-plotext."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..history import RunHistory, downsample


class _RunChart(PlotextPlot):
    title = ""
    y_label = ""

    def on_mount(self) -> None:
        self.plt.title(self.title)
        self.plt.xlabel("epoch")

    def _points_limit(self) -> int:
        # one point per column of plot area is all the eye (and the GIL) can use
        return max(self.size.width - 12, 10)

    def show(self, history: RunHistory) -> None:
        self.plt.clear_data()
        self.draw(history)
        self.refresh()

    def draw(self, history: RunHistory) -> None:
        raise NotImplementedError

    def _plot_epochs(self, history: RunHistory, train: str, val: str, train_label: str) -> None:
        """Per-epoch train and validation series; validation only where the run has a validation split."""
        epochs = history.epochs
        self.plt.plot([e.epoch for e in epochs], [getattr(e, train) for e in epochs], label=train_label,
                      marker="braille")
        points = [(e.epoch, getattr(e, val)) for e in epochs if getattr(e, val) is not None]
        if points:
            self.plt.plot([x for x, _ in points], [y for _, y in points], label="validation", marker="braille")


class LossChart(_RunChart):
    title = "Loss"

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        steps = downsample(history.step_losses, self._points_limit())
        if steps:
            plt.plot([x for x, _ in steps], [y for _, y in steps], label="train (per step)", marker="braille")
        if history.epochs:
            self._plot_epochs(history, "train_loss", "val_loss", "train (epoch)")


class AccuracyChart(_RunChart):
    title = "Accuracy %"

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        if history.epochs:
            self._plot_epochs(history, "train_acc", "val_acc", "train")
        elif history.progress:
            p = history.progress
            plt.plot([p.epoch - 1 + p.batch / p.batches], [p.acc], label="train (so far)", marker="braille")
