"""Live training charts drawn with textual-plotext."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from plotext._utility import colorize
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult

from ...runs.view import ChangeMark, RunView
from .chart import Chart

# The loss goes on a log axis by itself once its largest plotted value is this many times its smallest:
# then a linear axis leaves every halving of the loss after the first spike less than one row of dots
# (the tutorial preset starts near 350 and is below 15 within its first epoch).
LOG_RATIO = 20.0
EPS = 1e-9


# The changes to a run's course, drawn as vertical lines at their step: (plotext colour, legend names, longest
# first). Pauses and resumes share one: a pause and its resume are at the same step.
MARK_STYLES = {
    "lr": ("magenta", ("lr changes", "lr", "lr")),
    "pause": ("gray", ("pauses", "pause", "⏸")),
    "checkpoint": ("cyan", ("checkpoints", "ckpt", "ckpt")),
    "early_stop": ("red", ("early stop", "stop", "stop")),
    "best": ("green", ("best weights", "best", "best")),
}
MARK_KIND = {"resume": "pause"}
MARK_SWATCH = "│"


def chart_marks(marks: Sequence[ChangeMark]) -> list[tuple[float, str]]:
    """(x, kind) of each line to draw, kinds as MARK_STYLES names them, one per place and kind, in order."""
    seen: set[tuple[float, str]] = set()
    out = []
    for m in marks:
        kind = MARK_KIND.get(m.what, m.what)
        if (round(m.x, 6), kind) not in seen:
            seen.add((round(m.x, 6), kind))
            out.append((m.x, kind))
    return out


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of `step` exactly (0.25 -> 2, 0.5 -> 1, 5 -> 0)."""
    for d in range(8):
        if abs(round(step, d) - step) < step * 1e-6:
            return d
    return 8


def _multiples(lo: float, hi: float, step: float) -> list[float]:
    """The multiples of `step` from lo to hi, both included."""
    first, last = math.ceil(lo / step - EPS), math.floor(hi / step + EPS)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _steps(span: float, mantissas: Sequence[float]) -> list[float]:
    """Round steps, smallest first, from about a thousandth of `span` up to well past it."""
    top = math.floor(math.log10(span)) if span > 0 else 0
    return [m * 10.0 ** k for k in range(top - 3, top + 3) for m in mantissas]


def epoch_ticks(lo: float, hi: float, most: int) -> tuple[float, float, list[float], list[str]]:
    """X axis limits and ticks for epochs lo..hi: at most `most` ticks on round values, whole epochs
    once the run spans two of them, else at most one decimal. The axis starts on a tick at or before lo."""
    if hi - lo < EPS:  # one point: its epoch (or the epochs either side of a whole one)
        lo, hi = (max(lo - 1, 0.0), lo + 1) if abs(lo - round(lo)) < EPS else (math.floor(lo), math.floor(lo) + 1.0)
    smallest = 1 if hi - lo >= 2 else 0.1
    top = max(math.floor(math.log10(hi - lo)), 0)
    for step in [m * 10.0 ** k for k in range(-1, top + 3) for m in (1, 2, 5) if m * 10.0 ** k >= smallest - EPS]:
        start = math.floor(lo / step + EPS) * step
        ticks = _multiples(start, hi, step)
        if len(ticks) <= max(most, 2):
            break
    labels = [f"{t:.{0 if step >= 1 else 1}f}" for t in ticks]
    return start, hi, ticks, labels


def linear_ticks(lo: float, hi: float, most: int) -> tuple[list[float], list[str]]:
    """At most `most` ticks on round values (1, 2, 2.5 or 5 times a power of ten) within lo..hi."""
    if hi - lo < EPS * max(abs(hi), 1):
        return [lo], [f"{lo:.4g}"]
    for step in _steps(hi - lo, (1, 2, 2.5, 5)):
        ticks = _multiples(lo, hi, step)
        if len(ticks) <= max(most, 2):
            break
    d = _decimals(step)
    return ticks, [f"{t:.{d}f}" for t in ticks]


def _log_label(v: float) -> str:
    return f"{v:g}" if 1e-4 <= v < 1e5 else f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")


def log_ticks(lo: float, hi: float, most: int) -> tuple[list[float], list[str]]:
    """Ticks for positive values lo..hi on a log axis: 1-2-5, 1-3, then decades (every one, second, ...)
    of them, the densest set with at most `most`; a narrow range gets round linear values instead."""
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    for mantissas, every in [((1, 2, 5), 1), ((1, 3), 1), ((1,), 1), ((1,), 2), ((1,), 3), ((1,), 5), ((1,), 10)]:
        ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) if k % every == 0 for m in mantissas]
        ticks = [t for t in ticks if lo * (1 - EPS) <= t <= hi * (1 + EPS)]
        if len(ticks) <= max(most, 2):
            break
    if len(ticks) < 2:
        return linear_ticks(lo, hi, most)
    return ticks, [_log_label(t) for t in ticks]


class RunChart(Chart):
    title = ""
    # what a run's chart says before its first point: drawn as text, as a plotext build of an empty chart
    # took most of the time F5 took to show the training screen; None draws the empty chart with plotext
    waiting: str | None = None

    # The legend is in the title line, where no data is ever drawn: a swatch in the series' colour
    # before each name. Names come in forms from longest to shortest; the longest that fits is shown.
    LEGEND_SWATCH = "━"
    # without colour, a marker of its own tells each series apart (the legend shows it)
    NO_COLOR_MARKERS = {"validation": "x", "train (epoch)": "•"}
    NO_COLOR_SWATCH = {"braille": "⢕"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._data_key: object = None
        self._view: RunView | None = None
        self._rendered: tuple[object, RenderResult] | None = None
        self.builds = 0  # plot builds so far; the benchmark and the tests read it
        self._series: list[tuple[tuple[str, ...], str]] = []  # (names, longest first; marker), as plotted
        self._xs: list[float] = []
        self._ys: list[float] = []  # as plotted: log10 of the values on a log axis
        self.log_axis = False  # whether the y axis is logarithmic in the current drawing
        self.legend = ""  # the title line as last built, legend included
        self._swatches: list[int] = []  # where in it each series' swatch is
        self.marks_drawn: list[tuple[float, str]] = []  # (x, kind) of each change's line, as last drawn

    def marker(self, label: str) -> str:
        return self.NO_COLOR_MARKERS.get(label, "braille") if self.app.no_color else "braille"

    def on_mount(self) -> None:
        self.plt.title(self.title)
        self.plt.xlabel("epoch")

    def _points_limit(self) -> int:
        # one point per column of plot area is all the eye (and the training process's CPU) can use
        return max(self.size.width - 12, 10)

    def data_key(self, view: RunView) -> object:
        """What this chart draws, in brief: the chart is rebuilt only when it changes."""
        raise NotImplementedError

    def is_stale(self, view: RunView) -> bool:
        return self.data_key(view) != self._data_key

    def show(self, view: RunView) -> bool:
        """Redraw from the run view if this chart's data moved; returns whether it did."""
        self._view = view
        key = self.data_key(view)
        if key == self._data_key:
            return False
        self._data_key = key
        self.plt.clear_data()
        self._series, self._xs, self._ys, self.marks_drawn = [], [], [], []
        self.draw(view)
        self.refresh()
        return True

    def on_resize(self) -> None:
        if self._view is not None:  # as many points as the new width has columns
            self.show(self._view)

    def render(self) -> RenderResult:
        if self.waiting is not None and not self._xs:
            # the theme a build sets: the series plotted next take their colours from it
            self.plt.theme(self._get_plotext_theme_name(self.app.theme))
            return Text.assemble((self._title(), "bold"), "\n\n", (self.waiting, "dim"), justify="center")
        # a plotext build costs 10-40 ms: repaints caused by the rest of the screen reuse the last one
        key = (self._data_key, self.size, self.app.theme, self.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._lay_out()
            text = super().render()
            self._colour_legend(text)
            self._rendered = (key, text)
            self.builds += 1
        return self._rendered[1]

    def draw(self, view: RunView) -> None:
        raise NotImplementedError

    def plot(self, xs: Sequence[float], ys: Sequence[float], names: tuple[str, ...], marker: str) -> None:
        """One series; its y values as plotted (already log10 on a log axis)."""
        self.plt.plot(list(xs), list(ys), marker=marker)
        self._series.append((names, marker))
        self._xs.extend(xs)
        self._ys.extend(y for y in ys if math.isfinite(y))

    def draw_marks(self, view: RunView) -> None:
        """A vertical line at each change (an lr set or cut, a pause, a checkpoint, an early stop, restored best
        weights), in its kind's colour, with a legend entry per kind; the axis reaches each of them."""
        if not self._xs:
            return  # nothing plotted yet: no axis to put them on
        for x, kind in chart_marks(view.marks):
            self.plt.vline(x, MARK_STYLES[kind][0])
            self.marks_drawn.append((x, kind))
            self._xs.append(x)
        for kind in dict.fromkeys(kind for _, kind in self.marks_drawn):
            self._series.append((MARK_STYLES[kind][1], "mark:" + kind))

    def _plot_epochs(self, view: RunView, train: str, val: str, train_names: tuple[str, ...],
                     val_names: tuple[str, ...], y=lambda v: v) -> None:
        """Per-epoch train and validation series; validation only where the run has a validation split."""
        epochs = view.epochs
        self.plot([e.epoch for e in epochs], [y(getattr(e, train)) for e in epochs], train_names,
                  self.marker(train_names[0]))
        points = [(e.epoch, getattr(e, val)) for e in epochs if getattr(e, val) is not None]
        if points:
            self.plot([x for x, _ in points], [y(v) for _, v in points], val_names, self.marker("validation"))

    # Axes and legend: laid out for the widget's size just before a build, so only when one happens.

    def _title(self) -> str:
        return self.title

    def _lay_out(self) -> None:
        width, height = self.size
        plt = self.plt
        ylabels: list[str] = []
        if self._ys:
            lo, hi = min(self._ys), max(self._ys)
            # a label on every other row of the canvas (the height less title, borders, ticks, label), 8 at most
            most = min(max(2, (height - 5) // 2 + 1), 8)
            if self.log_axis:
                ticks, ylabels = log_ticks(10 ** lo, 10 ** hi, most)
                plt.yticks([math.log10(t) for t in ticks], ylabels)
            else:
                ticks, ylabels = linear_ticks(lo, hi, most)
                plt.yticks(ticks, ylabels)
        label_width = max((len(s) for s in ylabels), default=0)
        if self._xs:
            start, end, ticks, labels = self._x_axis(min(self._xs), max(self._xs), width - 2 - label_width)
            plt.xlim(start, end)
            plt.xticks(ticks, labels)
        self.legend, self._swatches = self._legend_line(width, label_width)
        plt.title(self.legend)

    def _x_axis(self, lo: float, hi: float, canvas: int) -> tuple[float, float, list[float], list[str]]:
        """X limits, ticks and their labels for values lo..hi on a canvas this many columns wide: epochs."""
        return epoch_ticks(lo, hi, max(2, canvas // (len(f"{hi:.1f}") + 3)))

    def _swatch(self, marker: str) -> str:
        if marker.startswith("mark:"):
            return MARK_SWATCH
        return self.NO_COLOR_SWATCH.get(marker, marker) if self.app.no_color else self.LEGEND_SWATCH

    def _legend_line(self, width: int, labels: int) -> tuple[str, list[int]]:
        """The title and the legend, as long as fits; where each swatch is in it."""
        title = self._title()
        # everything, in shorter and shorter forms; then the changes as one entry; then the series alone (the
        # lines stay, unnamed); then the title alone
        series = [(i, entry) for i, entry in enumerate(self._series) if not entry[1].startswith("mark:")]
        marks = len(series) < len(self._series)
        changes = [(len(self._series), (("changes",) * 4 + ("chg",), "mark:"))] if marks else []
        for entries in (list(enumerate(self._series)), series + changes, series):
            forms = max((len(names) for _, (names, _) in entries), default=0)
            for form in range(forms):
                for gap in ("  ", " "):
                    line, swatches = title, [-1] * (len(self._series) + 1)
                    for i, (names, marker) in entries:
                        line += gap
                        swatches[i] = len(line)
                        line += f"{self._swatch(marker)} {names[min(form, len(names) - 1)]}"
                    if self._fits(line, width, labels):
                        return line, swatches
        return (title if self._fits(title, width, labels) else ""), []

    @staticmethod
    def _fits(line: str, width: int, labels: int) -> bool:
        """Whether plotext draws the line: it centres a title on the canvas (right of the y labels), and
        leaves out one that does not fit whole."""
        start = labels + 1 + (width - 2 - labels) // 2 - len(line) // 2
        return start >= 0 and start + len(line) <= width

    def _colour_legend(self, text: Text) -> None:
        """Paint each swatch of the title line in its series' colour, as plotext drew the series."""
        first_line = text.plain.split("\n", 1)[0]
        start = first_line.find(self.legend) if self.legend else -1
        if start < 0:
            return
        colours = self.plt._active.monitor.color
        for s, (_, marker) in enumerate(self._series):
            if s >= len(self._swatches) or self._swatches[s] < 0:
                continue  # not in the legend as it fits
            if marker.startswith("mark:"):
                colour = MARK_STYLES[marker[len("mark:"):]][0]  # the changes as one entry stay uncoloured
            elif s < len(colours) and colours[s]:
                colour = colours[s][0]
            else:
                continue
            painted = Text.from_ansi(colorize(self._swatch(marker), colour))
            if painted.spans and isinstance(painted.spans[0].style, Style):
                at = start + self._swatches[s]
                text.stylize(painted.spans[0].style, at, at + 1)


class LossChart(RunChart):
    title = "Loss"
    waiting = "waiting for the first steps"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # None: a log y axis when the loss spans more than LOG_RATIO, else linear; True/False: log/linear
        self.log_scale: bool | None = None

    @property
    def scale_name(self) -> str:
        """The y scale in words, as a notification says it after a toggle."""
        if self.log_scale is None:
            return f"auto ({'log' if self.log_axis else 'linear'})"
        return "log" if self.log_scale else "linear"

    def toggle_log_scale(self) -> bool | None:
        """Auto, then log, then linear, then auto again; redraws at once. Returns the new setting."""
        self.log_scale = {None: True, True: False, False: None}[self.log_scale]
        if self._view is not None:
            self.show(self._view)
        return self.log_scale

    def data_key(self, view: RunView) -> object:
        # values, not counts: a resumed run drops epochs and trains them again with new numbers
        last_step = view.step_losses[-1] if view.step_losses else None
        epochs = tuple((e.epoch, e.train_loss, e.val_loss) for e in view.epochs)
        return len(view.step_losses), last_step, epochs, self._points_limit(), self.log_scale, tuple(view.marks)

    def _title(self) -> str:
        return f"{self.title} (log)" if self.log_axis else self.title

    def draw(self, view: RunView) -> None:
        steps = downsample(view.step_losses, self._points_limit())
        values = [y for _, y in steps] + [v for e in view.epochs for v in (e.train_loss, e.val_loss)
                                          if v is not None]
        values = [v for v in values if math.isfinite(v)]
        positive = bool(values) and min(values) > 0
        if self.log_scale is None:
            self.log_axis = positive and max(values) / min(values) > LOG_RATIO
        else:
            self.log_axis = self.log_scale and positive

        def y(v: float) -> float:
            return (math.log10(v) if v > 0 else math.nan) if self.log_axis else v

        if steps:
            self.plot([x for x, _ in steps], [y(v) for _, v in steps],
                      ("train (per step)", "train (step)", "step", "step"), "braille")
        if view.epochs:
            self._plot_epochs(view, "train_loss", "val_loss", ("train (epoch)", "train (epoch)", "epoch", "epoch"),
                              ("validation", "validation", "validation", "val"), y)
        self.draw_marks(view)


class AccuracyChart(RunChart):
    title = "Accuracy %"
    waiting = "waiting for the first steps"

    def data_key(self, view: RunView) -> object:
        marks = tuple(view.marks)
        if view.epochs:  # once an epoch is in, the running accuracy is no longer drawn
            return tuple((e.epoch, e.train_acc, e.val_acc) for e in view.epochs), marks
        p = view.progress
        return 0, (p.epoch, p.batch) if p else None, marks

    def draw(self, view: RunView) -> None:
        if view.epochs:
            self._plot_epochs(view, "train_acc", "val_acc", ("train",), ("validation", "val"))
        elif view.progress:
            p = view.progress
            self.plot([p.epoch - 1 + p.batch / p.batches], [p.acc], ("train (so far)", "so far"), "braille")
        self.draw_marks(view)


# -- charts of several runs (the sweep view) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a chart of several runs: its names (longest first, for the legend) and its points."""

    names: tuple[str, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]


class SeriesChart(RunChart):
    """A chart drawn from a tuple of Series instead of a run's view; an empty one says how it fills.

    `show(series)` redraws only when the series changed, as the live charts do."""

    # without colour, each series gets a marker of its own, in order
    NO_COLOR_SERIES = ("braille", "x", "•", "+", "o", "*")
    empty_lines = ("No data yet", "")
    xlabel = ""

    def on_mount(self) -> None:
        self.plt.title(self.title)
        self.plt.xlabel(self.xlabel)

    def data_key(self, series) -> object:
        return tuple(series), self.title, self.empty_lines, self.xlabel

    def series_marker(self, i: int) -> str:
        return self.NO_COLOR_SERIES[i % len(self.NO_COLOR_SERIES)] if self.app.no_color else "braille"

    def draw(self, series) -> None:
        plt = self.plt
        plt.clear_figure()  # limits and ticks of an empty drawing must not stay for the next one
        if not series:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
            for y, line in zip((0.6, 0.4), self.empty_lines):
                if line:
                    plt.text(line, 0.5, y, alignment="center")
            return
        plt.xlabel(self.xlabel)
        for i, s in enumerate(series):
            self.plot(s.xs, s.ys, s.names, self.series_marker(i))


class CurvesChart(SeriesChart):
    """Validation accuracy per epoch of several runs, overlaid (the sweep view's top configs)."""

    title = "Val acc %"
    xlabel = "epoch"
    empty_lines = ("No validation accuracy", "in these runs yet")


class FieldChart(SeriesChart):
    """A metric against the values of one swept field. The values are categories, evenly spaced in their
    order (a log range of lr reads as a log axis), labelled as the sweep table writes them."""

    empty_lines = ("No finished config", "to chart yet")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._labels: tuple[str, ...] = ()

    def show_values(self, title: str, labels: Sequence[str], ys: Sequence[float], name: str) -> bool:
        """Plot ys against the values named by labels (in order); returns whether it redrew."""
        self.title, self._labels = title, tuple(labels)
        series = (Series((name,), tuple(float(i) for i in range(len(ys))), tuple(ys)),) if ys else ()
        return self.show(series)

    def data_key(self, series) -> object:
        return super().data_key(series), self._labels

    def draw(self, series) -> None:
        super().draw(series)
        if series:  # the points themselves, on the line (no legend entry: it comes after the line's)
            s = series[0]
            self.plt.scatter(list(s.xs), list(s.ys), marker="●" if not self.app.no_color else "o")

    def _x_axis(self, lo: float, hi: float, canvas: int) -> tuple[float, float, list[float], list[str]]:
        n = len(self._labels)
        widest = max((len(label) for label in self._labels), default=1)
        every = max(1, math.ceil(n / max(1, canvas // (widest + 2))))
        ticks = [float(i) for i in range(0, n, every)]
        pad = 0.3 if n > 1 else 1.0
        return -pad, n - 1 + pad, ticks, [self._labels[int(t)] for t in ticks]


def downsample(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most `limit` points, averaging neighbours: a plot cannot show more than its width in columns."""
    if len(points) <= limit or limit <= 0:
        return list(points)
    size = len(points) / limit
    out = []
    for i in range(limit):
        chunk = points[int(i * size):max(int((i + 1) * size), int(i * size) + 1)]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out
