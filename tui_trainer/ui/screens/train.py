"""Live training: charts, progress, controls and the per-epoch log."""

from __future__ import annotations

import os
import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Label, ProgressBar, RichLog, Static

from ...engine.commands import Command
from ...engine.events import RunState
from ...format import clock
from ...runs.queue import queued
from ...runs.store import StoreError
from ...runs.view import RunView
from ..markup import markup
from .stop import StopScreen
from ..widgets.charts import AccuracyChart, LossChart
from ..widgets.footer import KeyFooter
from ..widgets.gpu_line import GpuLine
from .help import HELP_IN_FOOTER
from .layers import LayersScreen
from .prompt import PromptScreen

# Below four cores torch's threads already take every core, and each wake-up of this process takes
# a slice of one from the training process: there text and bars redraw at most five times a second
# (an event still reaches the screen within the 250 ms budget), and each chart rebuilds at most
# every two seconds (a build costs 10-40 ms of CPU) instead of every second.
FEW_CORES = (os.cpu_count() or 1) < 4
REDRAW_SECONDS = 0.2 if FEW_CORES else 0.1  # text and bars: redrawn only when the run changed
CLOCK_SECONDS = 1.0  # the elapsed time moves even when no event arrives
CHART_SECONDS = 2.0 if FEW_CORES else 1.0
QUEUE_SECONDS = 2.0  # a queued run's place in the queue is read again this often


class TrainScreen(Screen):
    HELP_TITLE = "Training"
    # The footer fits 80 columns: short labels there, the full name (tooltip) in the palette and help;
    # the LR keys are on the status line instead.
    BINDINGS = [
        Binding("p,space", "toggle_pause", "Pause", tooltip="Pause/Resume"),
        Binding("s", "stop", "Stop"),
        Binding("right_square_bracket,plus", "scale_lr(2)", "LR ×2", show=False),
        Binding("left_square_bracket,minus", "scale_lr(0.5)", "LR ÷2", show=False),
        Binding("l", "type_lr", "Set LR"),
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("y", "log_scale", "Log y", show=False, tooltip="Loss scale: auto, log, linear"),
        Binding("e", "evaluation", "Eval", tooltip="Evaluation"),
        Binding("i", "layers", "Layers", tooltip="Layers: inside the network, one row per layer (the probe's)"),
        Binding("n", "new_run", "New", tooltip="New run"),
        HELP_IN_FOOTER,
    ]
    STEERING = ("toggle_pause", "stop", "scale_lr", "type_lr", "checkpoint")  # for a run a process trains

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A run that has ended (or waits in the queue) takes no commands: its footer offers none."""
        return self.run_view.is_active or action not in self.STEERING

    def __init__(self, run_view: RunView) -> None:
        super().__init__()
        self.run_view = run_view
        self._drawn_version = -1
        self._charted_at = 0.0
        self._redraw_timer: Timer | None = None
        self._redrawn_at = 0.0
        self._chart_timer: Timer | None = None
        self._texts: dict[str, object] = {}
        self._logged_lines = 0
        self._steerable = True  # as the footer was built: with the steering keys
        self._position: int | None = None  # a queued run's place in the queue, as the store said last
        self._position_at = 0.0
        self.gpu = GpuLine(id="gpu")  # shown only for a CUDA run whose card NVML reads

    def compose(self) -> ComposeResult:
        yield Static("Preparing data and model…", id="run-title")
        with Horizontal(id="charts"):
            yield LossChart(id="loss-chart")
            yield AccuracyChart(id="acc-chart")
        with Grid(id="progress"):
            yield Label("Epoch", id="epoch-label")
            yield ProgressBar(id="epoch-bar", show_eta=False)
            yield Label("Overall", id="overall-label")
            yield ProgressBar(id="overall-bar", show_eta=False)
        yield Static("", id="stats")
        yield self.gpu
        yield Static("", id="status")
        yield RichLog(id="log", max_lines=500, wrap=True)  # a failure's message is long: it must show whole
        yield KeyFooter(eager=True)

    def on_mount(self) -> None:
        # Draw when the run changes, not on a fast timer: every wake-up of this process
        # interrupts one of the training process's threads on a small machine.
        self.run_view.on_change = self._view_changed
        self.set_interval(CLOCK_SECONDS, self._tick_clock)
        # after the first refresh: a screen switched in while another is switching out has no widgets yet
        self.call_after_refresh(self.redraw)

    def on_unmount(self) -> None:
        if self.run_view.on_change == self._view_changed:
            self.run_view.on_change = None

    def on_screen_resume(self) -> None:
        self.gpu.resume()
        self.call_after_refresh(self.redraw)

    def on_screen_suspend(self) -> None:
        self.gpu.pause()  # no readings for a screen out of sight

    def _view_changed(self) -> None:
        # At most one redraw per REDRAW_SECONDS, and at once when the last was longer ago: an event
        # after a quiet spell shows now, and a burst of events (a replayed log) draws once.
        if self._redraw_timer is not None:
            return
        wait = self._redrawn_at + REDRAW_SECONDS - time.monotonic()
        if wait <= 0:
            self._scheduled_redraw()
        else:
            self._redraw_timer = self.set_timer(wait, self._scheduled_redraw)

    def _scheduled_redraw(self) -> None:
        self._redraw_timer = None
        self._redrawn_at = time.monotonic()
        self.redraw()

    def _charts_due(self) -> None:
        self._chart_timer = None
        self.redraw()

    def _shown(self) -> bool:
        """On screen, or under a modal. Not while the app closes (an event still queued finds no widgets), nor once
        switched out: a screen the next run's replaces is taken down while a redraw asked for as it came back on top
        (popping the screens above it) is still due, and then finds no widgets."""
        return self.app.is_running and self.is_attached and self.is_current

    def _tick_clock(self) -> None:
        if not self._shown():
            return
        if self.run_view.state == RunState.QUEUED and time.monotonic() - self._position_at >= QUEUE_SECONDS:
            self._draw_status()  # runs ahead of it start or leave the queue: its place moves without an event
        # a redraw for an event moved the clock already: a frame of its own would cost a paint for nothing
        if self.run_view.is_active and time.monotonic() - self._redrawn_at >= CLOCK_SECONDS:
            self._draw_stats()

    # -- drawing -----------------------------------------------------------
    def redraw(self) -> None:
        if not self._shown():
            return
        h = self.run_view
        if h.version != self._drawn_version:
            self._drawn_version = h.version
            if h.is_active != self._steerable:
                self._steerable = h.is_active
                self.refresh_bindings()
            self._draw_title()
            self._draw_progress()
            self._draw_stats()
            self._draw_status()
            self._draw_log()
        charts = (self.query_one(LossChart), self.query_one(AccuracyChart))
        wait = self._charted_at + CHART_SECONDS - time.monotonic()
        if wait <= 0 or not h.is_active:
            # each chart compares its own data and rebuilds only if it moved (a list: both must be asked)
            if any([chart.show(h) for chart in charts]):
                self._charted_at = time.monotonic()
        elif self._chart_timer is None and any(chart.is_stale(h) for chart in charts):
            # no event may come for a while (a paused run): the charts still catch up
            self._chart_timer = self.set_timer(wait, self._charts_due)

    def _draw_title(self) -> None:
        handle = self.app.handle
        # run id and who started it first: the one thing to know when coming back over a new SSH session
        where = "" if handle is None else f"run {handle.run_id} · {'started here' if handle.started_here else 'attached'}"
        s = self.run_view.started
        self.gpu.follow(s.device if s and self.run_view.is_active else None)  # an ended run's card is not its own
        if not s:
            self._put("#run-title", "[b]$where[/b]", where=where)
            return
        # the device before the model and the data: at 80 columns the line's end is cut, and where a run trains
        # is what a person checks first
        self._put("#run-title", "[b]$where[/b] · $device · $model $rest", where=where, device=s.where(),
                  model=s.config.model, rest=f"on {s.dataset_title} · {s.parameters:,} params · "
                                             f"{s.train_size:,}/{s.val_size:,}/{s.test_size:,}")

    def _draw_progress(self) -> None:
        h = self.run_view
        if not h.started:
            return
        batches, epochs = h.steps_per_epoch, h.total_epochs
        epoch_fraction, _ = h.fraction_done()
        done = h.epochs_done
        self._put("#epoch-label", f"Epoch {h.current_epoch}/{epochs}")
        self.query_one("#epoch-bar", ProgressBar).update(total=batches, progress=round(epoch_fraction * batches))
        step = h.progress.step if h.progress else 0
        step = max(step, done * batches)
        if h.state == RunState.FINISHED:
            step = epochs * batches
        self.query_one("#overall-bar", ProgressBar).update(total=epochs * batches, progress=step)

    def _draw_stats(self) -> None:
        h = self.run_view
        parts = [f"elapsed {clock(h.elapsed)}"]
        if (eta := h.eta) is not None:
            parts.append(f"ETA {clock(eta)}")
        if h.samples_per_s:
            parts.append(f"{h.samples_per_s:,.0f} samples/s")
        if h.progress and h.is_active:
            parts.append(f"loss {h.progress.loss:.4f}")
        if h.lr is not None:
            parts.append(f"lr {h.lr:.3g}")
        self.gpu.set_peak(h.progress.peak_memory_mib if h.progress else None)
        # while it trains (an ended run holds no memory), and only where the GPU line does not say it already
        if h.progress and h.is_active and h.progress.memory_mib is not None and self.gpu.stats is None:
            parts.append(f"GPU mem {h.progress.memory_mib:,.0f} MiB (peak {h.progress.peak_memory_mib:,.0f})")
        self._put("#stats", "$stats", stats=" · ".join(parts))

    def _draw_status(self) -> None:
        h = self.run_view
        status = self.query_one("#status", Static)
        status.set_classes(f"state-{h.state}")
        message = ""
        if h.is_active and h.pending == "stop":
            text = "[b]Stopping…[/b]"  # received by the run, which stops at its next batch
        elif h.state == RunState.RUNNING and h.pending == "pause":
            text = "[b]Pausing…[/b]"
        elif h.state == RunState.PAUSED and h.pending == "resume":
            text = "[b]Resuming…[/b]"
        elif h.state == RunState.RUNNING:
            text = "[b]Training[/b] — space pauses · s stops · \\[ ] halve/double the LR"
        elif h.state == RunState.PAUSED:
            text = "[b]Paused[/b] — space resumes, s stops"
        elif h.state == RunState.FINISHED:
            acc = f" · test accuracy {h.evaluation.test_acc:.2f}%" if h.evaluation else ""
            text, message = f"[b]$message[/b]{acc} — e: evaluation · n: new run", h.message
        elif h.state in (RunState.STOPPED, RunState.FAILED, RunState.INTERRUPTED):
            text, message = "[b]$message[/b] — n: new run", h.message
        elif h.state == RunState.QUEUED:
            position = self.queue_position()
            text = ("[b]Queued[/b]" + (f" (position {position})" if position else "") +
                    " — it goes live here when the queue's runner starts it · n: new run")
        else:
            text = "Starting the training process: loading data and building the model…"
        # a finished or failed run's line may wrap (a failure's message is long): only then re-layout
        self._put("#status", text, layout=not h.is_active, message=message)

    def queue_position(self) -> int | None:
        """The run's place among the waiting runs now (the store's), else where it was queued."""
        self._position_at = time.monotonic()
        handle, store = self.app.handle, getattr(self.app, "store", None)
        if handle is not None and store is not None:
            try:
                self._position = next((q.position for q in queued(store) if q.id == handle.run_id), None)
                return self._position
            except StoreError:
                return self._position  # busy: the place it had a moment ago
        return self.run_view.queued.position if self.run_view.queued else None

    def _put(self, selector: str, template: str, layout: bool = False, **text: str) -> None:
        """Show markup, with user text in its `$name` slots, in a line; repaint only when it changed.

        The lines have fixed sizes, so a repaint is enough: a layout pass of the whole
        screen costs CPU that the training process, on a small machine, would use."""
        key = (template, sorted(text.items()))
        if self._texts.get(selector) != key:
            self._texts[selector] = key
            self.query_one(selector, Static).update(markup(template, **text), layout=layout)

    def _draw_log(self) -> None:
        log, lines = self.query_one(RichLog), self.run_view.log
        for line in lines[self._logged_lines:]:
            log.write(line)
        self._logged_lines = len(lines)

    # -- controls: each a Command for the run's own process ----------------------
    def action_toggle_pause(self) -> None:
        paused = self.run_view.state == RunState.PAUSED
        if self.app.send(Command("resume" if paused else "pause")):
            self._put("#status", "[b]Resuming…[/b]" if paused else "[b]Pausing…[/b]")

    def action_stop(self) -> None:
        handle = self.app.handle
        if handle is None or not self.run_view.is_active:
            self.app.send(Command("stop"))  # says why nothing can be stopped
            return

        def chosen(stop: bool | None) -> None:
            if stop and self.app.send(Command("stop")):
                self._put("#status", "[b]Stopping…[/b]")

        self.app.push_screen(StopScreen(handle.run_id), chosen)

    def action_scale_lr(self, factor: float) -> None:
        if self.run_view.lr and self.run_view.is_active:
            new = min(self.run_view.lr * factor, 10.0)
            if self.app.send(Command("set_lr", new)):
                self.notify(f"Learning rate → {new:.3g}")

    def action_type_lr(self) -> None:
        if not self.run_view.is_active:
            self.notify("No run is in progress.", severity="warning")
            return

        def check(text: str) -> str | None:
            try:
                command = Command("set_lr", float(text))
            except ValueError as exc:
                return str(exc) if "lr:" in str(exc) else f"lr: got {text!r}; must be a number (e.g. 0.001)"
            self.app.send(command)
            return None

        current = f"{self.run_view.lr:.3g}" if self.run_view.lr else ""
        self.app.push_screen(PromptScreen("New learning rate:", current, check))

    def action_checkpoint(self) -> None:
        if self.app.request_checkpoint():
            self.notify("Checkpoint requested: it is written at the next progress report.")

    def action_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.toggle_log_scale()
        self.notify(f"Loss scale: {chart.scale_name}")

    def action_evaluation(self) -> None:
        h, handle = self.run_view, self.app.handle
        if h.evaluation:
            self.app.show_evaluation(h.evaluation)
        elif h.is_active or handle is None:
            self.notify("The evaluation appears when the run finishes.", severity="warning")
        elif h.state == RunState.QUEUED:
            self.notify("The run is queued: it has trained nothing yet to evaluate.", severity="warning")
        elif h.state == RunState.FAILED and not h.epochs:
            self.notify("This run has no checkpoint to evaluate.", severity="warning")
        else:  # stopped or interrupted: its best checkpoint stands in for the final weights
            self.app.evaluate_checkpoint(handle.run_id, "best")

    def action_layers(self) -> None:
        self.app.push_screen(LayersScreen(self.run_view))

    def action_new_run(self) -> None:
        if self.run_view.is_active and self.app.handle is not None:
            self.notify(f"Run {self.app.handle.run_id} goes on in the background; F2 lists it.", markup=False)
        self.app.show_setup()
