"""Evaluation: test loss and accuracy, per-class accuracy, confusion matrix, sample predictions."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Static

from ...engine.events import EvaluationEnded
from ..markup import markup
from ..widgets.confusion import ConfusionTable
from ..widgets.footer import KeyFooter
from ..widgets.gallery import SampleGallery
from .help import HELP_IN_FOOTER

BAR_WIDTH = 30
# id -> label and what takes the focus there; the key is the tab's place (1, 2, 3)
TABS = {"per-class": ("Per class", "#per-class-table"), "confusion": ("Confusion", "#confusion-table"),
        "samples": ("Samples", "#gallery-scroll")}


def tab_bar(active: str):
    """The tabs as one line of text, the active one lit; a click on one opens it. (Textual's tabbed
    widget took a fifth of the time this screen took to show, and a frame more to place its
    underline.)"""
    return markup("  ".join(f"[@click=screen.tab('{tab}')]" + (f"[reverse b] {key} {label} [/]" if tab == active
                                                                else f" {key} {label} ") + "[/]"
                            for key, (tab, (label, _)) in enumerate(TABS.items(), 1)))


class EvaluationScreen(Screen):
    HELP_TITLE = "Evaluation"
    BINDINGS = [
        *(Binding(str(key), f"tab('{tab}')", label) for key, (tab, (label, _)) in enumerate(TABS.items(), 1)),
        Binding("m", "toggle_mistakes", "Mistakes"),
        Binding("a", "all_samples", "All"),
        Binding("escape,b", "back", "Back"),
        HELP_IN_FOOTER,
    ]

    def __init__(self, evaluation: EvaluationEnded, title: str = "") -> None:
        super().__init__()
        self.evaluation = evaluation
        self.title_text = title

    def compose(self) -> ComposeResult:
        e = self.evaluation
        yield Static(markup(f"[b]Test accuracy {e.test_acc:.2f}%[/b] · test loss {e.test_loss:.4f} · "
                            f"{sum(map(sum, e.confusion)):,} test images$title", title=self.title_text),
                     id="eval-summary")
        yield Static(tab_bar("per-class"), id="eval-tab-bar")
        with ContentSwitcher(initial="per-class", id="eval-tabs"):
            with Vertical(id="per-class"):
                yield DataTable(id="per-class-table", cursor_type="row")
            with Vertical(id="confusion"):
                yield ConfusionTable(id="confusion-table")
                yield Static("Rows: true label · columns: predicted · Enter on a cell shows its samples",
                             classes="hint")
            with Vertical(id="samples"):
                yield Static("", id="gallery-heading")
                with VerticalScroll(id="gallery-scroll"):
                    yield SampleGallery(id="gallery")
        yield KeyFooter(eager=True)

    def on_mount(self) -> None:
        e = self.evaluation
        table = self.query_one("#per-class-table", DataTable)
        table.add_columns("class", "accuracy", "")
        totals = [sum(row) for row in e.confusion]
        for i, (name, acc) in enumerate(zip(e.classes, e.per_class_acc)):
            bar = "█" * round(acc / 100 * BAR_WIDTH)
            style = "green" if acc >= e.test_acc else "yellow" if acc >= e.test_acc - 15 else "red"
            table.add_row(f"{name} ({totals[i]})", Text(f"{acc:6.2f}%", justify="right"), Text(bar, style=style))
        self.query_one(ConfusionTable).show(e.confusion, e.classes)
        self.query_one(SampleGallery).set_samples(e.samples, e.classes, e.confusion)
        self._update_heading()

    def _update_heading(self) -> None:
        gallery = self.query_one(SampleGallery)
        line = self.query_one("#gallery-heading", Static)
        heading = gallery.heading()
        hint = "m: mistakes only · a: all" if gallery.cell is None else "a: all samples"
        # a cell's heading is long: its hint only where it fits (the footer says "a All" too)
        if gallery.cell is None or len(heading) + len(hint) + 3 <= (line.size.width or self.app.size.width):
            heading = f"{heading} · {hint}"
        line.update(heading)
        self.query_one("#gallery-scroll").scroll_home(animate=False)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id != "confusion-table" or event.coordinate.column == 0:
            return
        gallery = self.query_one(SampleGallery)
        gallery.cell = (event.coordinate.row, event.coordinate.column - 1)
        self._update_heading()
        self.action_tab("samples")

    @property
    def tab(self) -> str:
        """The tab shown: a key of TABS."""
        return self.query_one(ContentSwitcher).current

    def action_tab(self, tab: str) -> None:
        self.query_one(ContentSwitcher).current = tab
        self.query_one("#eval-tab-bar", Static).update(tab_bar(tab))
        self.query_one(TABS[tab][1]).focus()

    def action_toggle_mistakes(self) -> None:
        gallery = self.query_one(SampleGallery)
        gallery.cell = None
        gallery.mistakes_only = not gallery.mistakes_only
        self._update_heading()
        self.action_tab("samples")

    def action_all_samples(self) -> None:
        gallery = self.query_one(SampleGallery)
        gallery.cell = None
        gallery.mistakes_only = False
        self._update_heading()

    def action_back(self) -> None:
        self.app.pop_screen()
