"""Every key binding of the app and of the screen underneath, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..markup import escape


# Each main screen shows this last in its footer, where 80 columns still reach it; the app's own
# help binding stays out of the footers. (`?` would be typed into a text field.)
HELP_IN_FOOTER = Binding("f1", "app.help", "Help")


def key_display(app, key: str) -> str:
    """A binding's keys as the footer shows them: "], +" rather than "right_square_bracket,plus"."""
    return ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in key.split(","))


def binding_lines(app, screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    sections = []
    for title, bindings in ((screen.HELP_TITLE if hasattr(screen, "HELP_TITLE") else "This screen", screen.BINDINGS),
                            ("Everywhere", app.BINDINGS)):
        rows = []
        for b in bindings:
            b = b if isinstance(b, Binding) else Binding(*b)
            if b is HELP_IN_FOOTER:
                continue  # listed once, under Everywhere
            rows.append((key_display(app, b.key), b.tooltip or b.description or b.action))
        sections.append((title, rows))
    sections[-1][1].append(("ctrl+p", "Command palette: every action by name"))
    return sections


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,f1,q", "close", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        lines = ["[b]scratch-tui keys[/b]", ""]
        for title, rows in binding_lines(self.app, self.under):
            lines.append(f"[b]{title}[/b]")
            lines += [f"  {escape(f'{key:<16}')} {escape(what)}" for key, what in rows]  # pad, then escape
            lines.append("")
            if notes := getattr(self.under, "HELP_NOTES", "") if title != "Everywhere" else "":
                lines += [escape(notes), ""]  # what the screen's keys take, said once (a sweep's values)
        lines.append("Escape or ? closes this help.")
        with VerticalScroll(id="help"):
            yield Static("\n".join(lines), markup=True)

    def action_close(self) -> None:
        self.dismiss(None)


class TooSmallScreen(ModalScreen[None]):
    """Shown instead of a broken layout while the terminal is below the minimum size."""

    def __init__(self, min_width: int, min_height: int) -> None:
        super().__init__()
        self.min_width, self.min_height = min_width, min_height

    def compose(self) -> ComposeResult:
        yield Static(f"Terminal too small: scratch-tui needs at least {self.min_width}x{self.min_height}. "
                     "Enlarge the window (ctrl+q quits).", id="too-small")
