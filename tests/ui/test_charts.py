"""The live charts as a person reads them: legend off the data, round ticks, a log axis when the loss needs one."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from tui_trainer.engine.config import TrainConfig, preset
from tui_trainer.engine.events import BatchProgress, EpochEnded
from tui_trainer.runs.view import RunView
from tui_trainer.ui.widgets.charts import AccuracyChart, LossChart, epoch_ticks, linear_ticks, log_ticks

from .fakes import epoch_events, started

# The tutorial preset's first epochs as a run on the bundled data reported them: (epoch, batch, running
# loss) every 25 batches of 169, then the epoch's train and validation loss. The first step is 354.
TUTORIAL_STEPS = [(1, 25, 354.3), (1, 50, 195.7), (1, 75, 137.3), (1, 100, 106.3), (1, 150, 74.2),
                  (2, 31, 5.64), (2, 56, 4.93), (2, 81, 4.76), (2, 131, 4.72),
                  (3, 37, 3.19), (3, 62, 2.91), (3, 87, 2.98), (3, 112, 2.92), (3, 162, 2.82)]
TUTORIAL_EPOCHS = [(1, 66.8, 7.05), (2, 4.52, 4.31), (3, 2.82, 3.75)]


def tutorial_history(epochs: int = 3) -> RunView:
    config = preset("tutorial")
    history = RunView()
    history.apply(started(config, steps=169))
    for epoch in range(1, epochs + 1):
        for e, batch, loss in TUTORIAL_STEPS:
            if e == epoch:
                history.apply(BatchProgress(step=(e - 1) * 169 + batch, epoch=e, epochs=config.epochs, batch=batch,
                                            batches=169, loss=loss, acc=50.0, lr=0.01, samples_per_s=1000.0))
        e, train, val = TUTORIAL_EPOCHS[epoch - 1]
        history.apply(EpochEnded(epoch=e, epochs=config.epochs, train_loss=train, train_acc=60.0, val_loss=val,
                                 val_acc=58.0, lr=0.01, seconds=2.0, samples_per_s=1000.0, step=e * 169))
    return history


def plausible_history(epochs: int = 3) -> RunView:
    """The recommended preset's kind of curve: 1.9 down to 0.55, well within one decade."""
    config = TrainConfig()
    history = RunView()
    history.apply(started(config))
    for event in epoch_events(config, epochs):
        history.apply(event)
    return history


class ChartApp(App):
    def __init__(self, chart, run_view: RunView) -> None:
        super().__init__()
        self.chart, self.run_view = chart, run_view

    def compose(self) -> ComposeResult:
        yield self.chart

    def on_mount(self) -> None:
        self.call_after_refresh(self.chart.show, self.run_view)


def lines(chart) -> list[str]:
    return chart.render().plain.split("\n")


def y_labels(chart) -> list[str]:
    """The y tick labels, top to bottom, as drawn left of the axis."""
    return [line.split("┤")[0].strip() for line in lines(chart) if "┤" in line]


def x_labels(chart) -> list[str]:
    rows = lines(chart)
    bottom = next(i for i, line in enumerate(rows) if "└" in line)
    return rows[bottom + 1].split()


async def shown(pilot, chart) -> None:
    for _ in range(20):
        await pilot.pause()
        if chart._data_key is not None:
            return
    raise AssertionError("the chart never drew")


def canvas_rows(chart) -> list[str]:
    """What is drawn inside the frame, tick labels and axis lines left out."""
    rows = lines(chart)
    top = next(i for i, line in enumerate(rows) if "┌" in line)
    bottom = next(i for i, line in enumerate(rows) if "└" in line)
    inside = [line.split("┤" if "┤" in line else "│", 1)[1] for line in rows[top + 1:bottom]]
    return [row.rstrip().removesuffix("│") for row in inside]


def is_braille_or_blank(text: str) -> bool:
    return all(ch == " " or 0x2800 <= ord(ch) <= 0x28FF for ch in text)


async def test_the_legend_is_in_the_title_line_and_leaves_the_data_uncovered():
    chart = LossChart()
    async with ChartApp(chart, plausible_history()).run_test(size=(40, 13)) as pilot:  # its size at 80x24
        await shown(pilot, chart)
        title = lines(chart)[0]
        assert title.strip() == "Loss  ━ step  ━ epoch  ━ validation"
        # nothing but the series inside the frame: before, plotext wrote the legend over the first points
        assert all(is_braille_or_blank(row) for row in canvas_rows(chart))
        # each swatch wears its series' colour, the three of them different, none the title's own
        text, console = chart.render(), pilot.app.console
        start = text.plain.index(chart.legend)
        swatches = [start + i for i, ch in enumerate(chart.legend) if ch == "━"]
        colours = [text.get_style_at_offset(console, i).color for i in swatches]
        title_colour = text.get_style_at_offset(console, start).color
        assert len(set(colours)) == 3 and title_colour not in colours
        drawn = {text.get_style_at_offset(console, i).color
                 for i, ch in enumerate(text.plain) if 0x2800 < ord(ch) <= 0x28FF}
        assert set(colours) <= drawn


async def test_the_legend_uses_the_longest_names_that_fit():
    chart = LossChart()
    async with ChartApp(chart, plausible_history()).run_test(size=(60, 29)) as pilot:  # its size at 120x40
        await shown(pilot, chart)
        assert lines(chart)[0].strip() == "Loss  ━ train (per step)  ━ train (epoch)  ━ validation"
        await pilot.resize_terminal(30, 13)
        await pilot.pause()
        title = lines(chart)[0]
        assert "Loss" in title and "val" in title and len(title.rstrip()) <= 30


async def test_without_colour_the_legend_shows_each_series_marker(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    chart = LossChart()
    async with ChartApp(chart, plausible_history()).run_test(size=(50, 19)) as pilot:  # its size at 100x30
        await shown(pilot, chart)
        assert lines(chart)[0].strip() == "Loss ⢕ train (step) • train (epoch) x validation"


def test_epoch_ticks_are_whole_epochs_once_the_run_spans_two():
    assert epoch_ticks(0.235, 3.0, 5) == (0, 3.0, [0, 1, 2, 3], ["0", "1", "2", "3"])
    assert epoch_ticks(0.235, 3.0, 12)[3] == ["0", "1", "2", "3"]  # room for halves, but whole epochs read better
    assert epoch_ticks(1, 15, 4)[2:] == ([0, 5, 10, 15], ["0", "5", "10", "15"])
    assert epoch_ticks(0.235, 0.94, 5)[3] == ["0.2", "0.4", "0.6", "0.8"]
    assert epoch_ticks(0.235, 0.235, 5)[:2] == (0, 1)  # one point within epoch 1: the axis is epoch 1
    assert epoch_ticks(1.0, 1.0, 5)[:2] == (0, 2)  # one whole epoch: the epochs either side


async def test_early_x_ticks_have_at_most_one_decimal_and_fit_the_width():
    history = RunView()
    config = TrainConfig()
    history.apply(started(config))
    for batch in (20, 40, 60):  # two thirds of the first epoch: the steps are at 0.235, 0.47 and 0.706
        history.apply(BatchProgress(step=batch, epoch=1, epochs=config.epochs, batch=batch, batches=85,
                                    loss=2 - batch / 85, acc=40.0, lr=0.003, samples_per_s=1000.0))
    for chart, size in [(LossChart(), (40, 13)), (AccuracyChart(), (40, 13)), (LossChart(), (60, 29))]:
        async with ChartApp(chart, history).run_test(size=size) as pilot:
            await shown(pilot, chart)
            labels = x_labels(chart)
            assert 2 <= len(labels) <= size[0] // 6
            assert all(len(label.partition(".")[2]) <= 1 for label in labels)
            values = [float(label) for label in labels]
            assert values == sorted(values) and len({round(b - a, 6) for a, b in zip(values, values[1:])}) <= 1


async def test_finished_epochs_get_whole_epoch_ticks():
    for chart in (LossChart(), AccuracyChart()):
        async with ChartApp(chart, plausible_history(3)).run_test(size=(40, 13)) as pilot:
            await shown(pilot, chart)
            assert x_labels(chart)[-3:] == ["1", "2", "3"]


def is_round(label: str) -> bool:
    mantissa = float(label) / 10 ** math.floor(math.log10(float(label)))
    return any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 3, 5))


async def test_the_tutorial_loss_goes_on_a_log_axis_by_itself():
    history = tutorial_history(1)
    losses = [y for _, y in history.step_losses[:4]]
    assert losses[0] > 350 and 13 < losses[-1] < 14  # 354 -> 13.5 within the first epoch, as the issue saw it
    chart = LossChart()
    async with ChartApp(chart, history).run_test(size=(40, 13)) as pilot:
        await shown(pilot, chart)
        assert chart.log_scale is None and chart.log_axis and chart.scale_name == "auto (log)"
        assert lines(chart)[0].strip().startswith("Loss (log)")
        labels = y_labels(chart)
        assert len(labels) >= 3 and all(is_round(label) for label in labels)
        assert [float(label) for label in labels] == sorted((float(label) for label in labels), reverse=True)
        # plotted as log10: the values after the spike take most of the height instead of its bottom row
        plotted = chart.plt._active.monitor.y[0]
        assert math.isclose(plotted[0], math.log10(history.step_losses[0][1]))


async def test_a_loss_within_a_decade_stays_linear_with_round_ticks():
    chart = LossChart()
    async with ChartApp(chart, plausible_history()).run_test(size=(40, 13)) as pilot:
        await shown(pilot, chart)
        assert not chart.log_axis and chart.scale_name == "auto (linear)"
        labels = y_labels(chart)
        steps = {round(float(a) - float(b), 6) for a, b in zip(labels, labels[1:])}
        assert len(labels) >= 3 and len(steps) == 1 and is_round(str(steps.pop()))  # 0.75, 1.00, 1.25...
        assert all(len(label.partition(".")[2]) <= 2 for label in labels)


async def test_toggling_cycles_auto_log_linear_and_rebuilds_once_each_time():
    chart = LossChart()
    async with ChartApp(chart, tutorial_history(3)).run_test(size=(40, 13)) as pilot:
        await shown(pilot, chart)
        await pilot.pause()
        seen = []
        for _ in range(3):
            builds = chart.builds
            setting = chart.toggle_log_scale()
            await pilot.pause()
            assert chart.builds == builds + 1
            seen.append((setting, chart.log_axis, chart.scale_name, lines(chart)[0].strip().startswith("Loss (log)")))
        assert seen == [(True, True, "log", True), (False, False, "linear", False), (None, True, "auto (log)", True)]
        builds = chart.builds
        chart.refresh()  # a repaint with nothing new reuses the last build
        await pilot.pause()
        assert chart.builds == builds


async def test_a_forced_log_axis_on_a_narrow_range_still_has_readable_ticks():
    chart = LossChart()
    chart.log_scale = True
    async with ChartApp(chart, plausible_history()).run_test(size=(40, 13)) as pilot:
        await shown(pilot, chart)
        assert chart.log_axis
        labels = y_labels(chart)
        assert len(labels) >= 2 and all(len(label) <= 4 for label in labels)


def test_tick_helpers():
    assert linear_ticks(0.58, 1.87, 5) == ([0.75, 1.0, 1.25, 1.5, 1.75], ["0.75", "1.00", "1.25", "1.50", "1.75"])
    assert linear_ticks(67.0, 90.0, 5)[1] == ["70", "75", "80", "85", "90"]
    assert log_ticks(1.29, 354.0, 5)[1] == ["3", "10", "30", "100", "300"]
    assert log_ticks(13.3, 354.0, 5)[1] == ["20", "50", "100", "200"]
    assert log_ticks(0.001, 1e6, 5)[1] == ["0.01", "1", "100", "10000", "1e6"]  # every other decade


async def test_a_run_just_started_says_it_waits_and_builds_no_chart_until_its_first_point():
    history = RunView()
    history.apply(started(TrainConfig(), steps=169))
    chart = LossChart()
    app = ChartApp(chart, history)
    async with app.run_test(size=(60, 16)) as pilot:
        await shown(pilot, chart)
        assert lines(chart)[:3] == ["Loss", "", "waiting for the first steps"] and chart.builds == 0
        history.apply(BatchProgress(step=25, epoch=1, epochs=15, batch=25, batches=169, loss=1.9, acc=40.0, lr=0.01,
                                    samples_per_s=1000.0))
        chart.show(history)
        await pilot.pause()
        assert chart.builds == 1 and any("┤" in line for line in lines(chart))  # the chart, with its axis


async def test_a_chart_taken_off_the_screen_is_let_go():
    """textual-plotext subscribed each chart to the app's theme signal for good (a closure holding the widget,
    keyed weakly by the widget): every training screen's charts, and its run's whole view, stayed in memory
    (bench/soak.py: an app grew 109 MB over 50 runs)."""
    class OneChart(App):
        def compose(self) -> ComposeResult:
            yield LossChart()

    app = OneChart()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(LossChart)
        subscribers = app.theme_changed_signal._subscriptions  # the signal's own record: no public way to ask
        assert chart in subscribers
        await chart.remove()
        await pilot.pause()
        assert chart not in subscribers
