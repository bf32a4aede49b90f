"""Quitting while the run on screen is still going: leave it running (the default), stop it, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from ...engine.events import RunState


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("l", "choose('leave')", "Leave running"),
        Binding("s", "choose('stop')", "Stop it"),
        Binding("escape,c", "choose(None)", "Cancel"),
    ]

    def __init__(self, run_id: str, state: RunState) -> None:
        super().__init__()
        self.run_id, self.state = run_id, state

    def compose(self) -> ComposeResult:
        with Vertical(id="quit"):
            yield Label(f"Run {self.run_id} is {self.state}. It keeps training after you quit; "
                        f"`scratch-tui attach {self.run_id}` brings it back.", markup=False)
            with Horizontal(id="quit-buttons"):
                yield Button("Leave it running (l)", id="leave", variant="primary")
                yield Button("Stop it (s)", id="stop", variant="error")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
