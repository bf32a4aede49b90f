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


class LossChart(_RunChart):
    title = "Loss"

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        steps = downsample(history.step_losses, self._points_limit())
        if steps:
            plt.plot([x for x, _ in steps], [y for _, y in steps], label="train (per step)", marker="braille")
        if history.epochs:
            xs = [e.epoch for e in history.epochs]
            plt.plot(xs, [e.train_loss for e in history.epochs], label="train (epoch)", marker="braille")
            val = [(e.epoch, e.val_loss) for e in history.epochs if e.val_loss is not None]
            if val:
                plt.plot([x for x, _ in val], [y for _, y in val], label="validation", marker="braille")


class AccuracyChart(_RunChart):
    title = "Accuracy %"

    def draw(self, history: RunHistory) -> None:
        plt = self.plt
        if history.epochs:
            xs = [e.epoch for e in history.epochs]
            plt.plot(xs, [e.train_acc for e in history.epochs], label="train", marker="braille")
            val = [(e.epoch, e.val_acc) for e in history.epochs if e.val_acc is not None]
            if val:
                plt.plot([x for x, _ in val], [y for _, y in val], label="validation", marker="braille")
        elif history.progress:
            p = history.progress
            plt.plot([p.epoch - 1 + p.batch / p.batches], [p.acc], label="train (so far)", marker="braille")
