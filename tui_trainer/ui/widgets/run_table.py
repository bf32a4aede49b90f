"""A table of runs, one per row, for the runs and queue screens."""

from __future__ import annotations

from collections.abc import Sequence

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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fitted: dict[str, int] = {}  # the columns shown now, with their widths

    def refit(self, columns: Sequence[tuple[str, str]], fitted: dict[str, int]) -> None:
        """Clear the rows; the columns too, laid out anew as `fitted` says, only when their fit changed."""
        if fitted == self.fitted:
            self.clear()
            return
        self.clear(columns=True)
        for key, header in columns:
            if key in fitted:
                self.add_column(header, width=fitted[key], key=key)
        self.fitted = fitted

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())
