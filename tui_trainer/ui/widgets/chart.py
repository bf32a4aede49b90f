"""textual-plotext's widget, made to let go of the app when it leaves the screen."""

from __future__ import annotations

from textual_plotext import PlotextPlot


class Chart(PlotextPlot):
    """PlotextPlot subscribes to the app's theme signal on mount with a closure that holds the widget, and
    the signal keys its subscribers weakly by that same widget: the key could never die, so every chart
    ever shown stayed in memory with all it held (a training screen's charts held the run's whole view).
    bench/soak.py measured an app grow by 109 MB over 50 runs. Unsubscribed on unmount, they go."""

    def on_unmount(self) -> None:
        self.app.theme_changed_signal.unsubscribe(self)
