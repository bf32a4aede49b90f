"""A table of runs, one per row, for the runs and queue screens."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable


class RunTable(DataTable):
    """Home and End go to the first and last run; the table never scrolls sideways: its screen fits
    the columns to its width, again on each `Resized`."""

    BINDINGS = [
        Binding("home", "scroll_top", "First run", show=False),
        Binding("end", "scroll_bottom", "Last run", show=False),
    ]

    class Resized(Message):
        pass

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())
