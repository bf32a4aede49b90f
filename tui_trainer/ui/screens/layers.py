"""Looking inside the network: the Layers view of a run (live), a layer's histograms, two runs compared.

The numbers are the probe's (engine/probe.py), folded by the run's view into `layer_stats` and `diagnoses`;
the widgets that draw them are in widgets/layers.py."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...runs.store import RunNotFound, StoreError
from ...runs.view import RunView
from ..widgets.footer import KeyFooter
from ..widgets.layers import LayerTable, histogram_lines, layer_lines, number, probe_line, verdict
from .help import HELP_IN_FOOTER

FOLLOW_SECONDS = 0.5  # a live run's new probe shows within this
ONLY = ("layer_stats", "diagnosis", "run_started")  # what the comparison reads of a run's log


def verdict_text(diagnoses: list) -> Text:
    text = Text()
    for i, (line, healthy) in enumerate(verdict(diagnoses)):
        text.append(("\n" if i else "") + line, style="green" if healthy else "bold red")
    return text


class Following(Screen):
    """A screen of one run's view, redrawn when the view moved (checked every FOLLOW_SECONDS)."""

    def __init__(self, run_view: RunView) -> None:
        super().__init__()
        self.run_view = run_view
        self._drawn: object = None

    def on_mount(self) -> None:
        self.set_interval(FOLLOW_SECONDS, self._follow)
        self.call_after_refresh(self._follow)

    def _follow(self) -> None:
        if (key := self.drawn_from()) != self._drawn and self.is_attached:
            self._drawn = key
            self.draw()

    def drawn_from(self) -> object:
        """What the screen shows of the view: it redraws when this moved (not on every progress report)."""
        h = self.run_view
        return h.segments, len(h.layer_stats), len(h.diagnoses)

    def draw(self) -> None:
        raise NotImplementedError

    def action_back(self) -> None:
        self.app.pop_screen()


class LayersScreen(Following):
    """One row per layer at the last probe, the verdict above it; Enter: the layer's histograms."""

    HELP_TITLE = "Layers"
    DEFAULT_CSS = """
    LayersScreen #layers-title { height: 1; padding: 0 1; background: $boost; }
    LayersScreen #layers-verdict { height: auto; max-height: 5; padding: 0 1; }
    LayersScreen #layers-table { height: 1fr; width: 100%; }
    LayersScreen #layers-note { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("enter", "histograms", "Histograms", tooltip="The layer's activation, weight and gradient histograms"),
        Binding("escape,i", "back", "Back"),
        HELP_IN_FOOTER,
    ]

    def compose(self) -> ComposeResult:
        yield Static("Layers", id="layers-title")
        yield Static("", id="layers-verdict")
        yield LayerTable(id="layers-table")
        yield Static("red with !: out of its healthy range · sparklines: the whole run", id="layers-note")
        yield KeyFooter(eager=True)

    def draw(self) -> None:
        h = self.run_view
        title = f"Layers at {probe_line(h.layer_stats[-1])}" if h.layer_stats else "Layers"
        self.query_one("#layers-title", Static).update(Text(title))
        off = h.started is not None and not h.layer_stats and not getattr(h.started.config, "probe_every", 1)
        self.query_one("#layers-verdict", Static).update(
            Text("This run measures no layers: its Probe every (--probe-every) is 0.") if off
            else verdict_text(h.diagnoses))
        self.query_one(LayerTable).show(h)

    @on(DataTable.RowSelected, "#layers-table")
    def _selected(self) -> None:
        self.action_histograms()

    def action_histograms(self) -> None:
        if (layer := self.query_one(LayerTable).selected_layer) is not None:
            self.app.push_screen(HistogramScreen(self.run_view, layer))


class HistogramScreen(Following):
    """A layer's activation, weight and gradient histograms at the last probe."""

    HELP_TITLE = "Histograms"
    DEFAULT_CSS = """
    HistogramScreen #hist-title { height: 1; padding: 0 1; background: $boost; }
    HistogramScreen #hist-body { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,enter", "back", "Back"), HELP_IN_FOOTER]
    HEIGHT = 4  # rows of bars per histogram: three fit 24 lines with their titles and ranges

    def __init__(self, run_view: RunView, layer: str) -> None:
        super().__init__(run_view)
        self.layer_name = layer

    def compose(self) -> ComposeResult:
        yield Static(self.layer_name, id="hist-title")
        yield VerticalScroll(Static("", id="hist-body"))
        yield KeyFooter(eager=True)

    def draw(self) -> None:
        found = [(s, x) for s in self.run_view.layer_stats for x in s.layers if x.name == self.layer_name]
        if not found:
            return
        stats, layer = found[-1]
        self.query_one("#hist-title", Static).update(
            Text(f"{self.layer_name} ({layer.kind}) at step {stats.step:,} (epoch {stats.epoch})"))
        width = max(24, self.size.width - 4)
        body = Text()
        for title, hist in (("activations", layer.act_hist), ("weights", layer.weight_hist),
                            ("gradients", layer.grad_hist)):
            if not hist:
                body.append(f"{title}: none (the layer has no weights)\n", style="dim")
                continue
            body.append(title + "\n", style="bold")
            rows = histogram_lines(hist, width, self.HEIGHT)
            body.append("\n".join(rows[:-1]) + "\n", style="cyan")
            body.append(rows[-1] + "\n", style="dim")
        body.rstrip()
        self.query_one("#hist-body", Static).update(body)


class LayersCompareScreen(Screen):
    """Two runs' layer tables side by side, at their first probe (step 0: the init) and their latest."""

    HELP_TITLE = "Layers compared"
    DEFAULT_CSS = """
    LayersCompareScreen #compare-title { height: 1; padding: 0 1; background: $boost; }
    LayersCompareScreen .compare-run { width: 1fr; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,l", "back", "Back"), HELP_IN_FOOTER]

    def __init__(self, store, run_ids: list[str]) -> None:
        super().__init__()
        self.store, self.run_ids = store, run_ids[:2]

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Layers of runs {' and '.join(self.run_ids)}: at init (step 0) and now"),
                     id="compare-title")
        with Horizontal():
            for run_id in self.run_ids:
                with VerticalScroll(classes="compare-run"):
                    yield Static(self.run_text(run_id), id=f"compare-{run_id}")
        yield KeyFooter(eager=True)

    def run_text(self, run_id: str) -> Text:
        try:
            view = self.store.view(run_id, only=ONLY)
            record = self.store.get_run(run_id)
        except (RunNotFound, StoreError) as exc:
            return Text(f"{run_id}: {exc}", style="red")
        text = Text(f"{run_id} {record.name or ''}".rstrip(), style="bold")
        if view.started:
            c = view.started.config
            text.append(f"\n{c.model} · init {c.init}\n{c.optimizer} · lr {c.lr:g} · batch {c.batch_size}", style="dim")
        if not view.layer_stats:
            text.append("\nNo probe in its log (trained without --probe-every, or before the probe existed).")
            return text
        width = max(30, (self.size.width or 80) // 2 - 3)
        first, last = view.layer_stats[0], view.layer_stats[-1]
        for stats in [first] if last is first else [first, last]:
            text.append(f"\n\nstep {stats.step:,} · loss {number(stats.loss, '.4g')}",
                        style="bold")
            for line in layer_lines(stats, width):
                text.append("\n")
                text.append_text(line)
        for line, healthy in verdict(view.diagnoses):
            text.append("\n" + line, style="green" if healthy else "red")
        return text

    def action_back(self) -> None:
        self.app.pop_screen()
