"""`s` on a run in training asks first: one stray key must not end hours of training."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class StopScreen(ModalScreen[bool]):
    """True to stop the run; `s` again (or Enter on the focused button) confirms, anything else keeps it."""

    BINDINGS = [
        Binding("s,y", "choose(True)", "Stop it"),
        Binding("escape,n,c", "choose(False)", "Keep training"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="stop-run"):
            yield Label(f"Stop run {self.run_id}? It ends at the next batch and keeps its checkpoints; "
                        "u on the runs screen (F2) resumes it later.", markup=False)
            with Horizontal(id="stop-buttons"):
                yield Button("Keep training (esc)", id="keep", variant="primary")
                yield Button("Stop it (s)", id="stop", variant="error")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()  # Enter, the key most often pressed by mistake, keeps it

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id == "stop")

    def action_choose(self, stop: bool) -> None:
        self.dismiss(stop)
