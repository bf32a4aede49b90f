"""A one-line question in a modal: a file path, a learning rate, a yes to confirm."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..markup import plain


class PromptScreen(ModalScreen[str | None]):
    """Asks for one value; `check` returns an error message to keep the prompt open, or None to accept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", check: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.question, self.value, self.check = question, value, check

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(self.value, id="prompt-input")
            yield Static("", id="prompt-error")
            yield Static("Enter to accept, Escape to cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        error = self.check(event.value) if self.check else None
        if error:
            self.query_one("#prompt-error", Static).update(plain(error))
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def confirm(app, question: str, doing: str, then: Callable[[], None]) -> None:
    """Ask `question` (ending "Type yes:"); `then` runs only on yes. Anything but yes, no or nothing is
    refused, saying "type yes to `doing`, or no"."""

    def check(answer: str) -> str | None:
        return None if answer.strip().lower() in ("yes", "no", "") else f"type yes to {doing}, or no"

    def done(answer: str | None) -> None:
        if answer and answer.strip().lower() == "yes":
            then()

    app.push_screen(PromptScreen(question, "", check), done)
