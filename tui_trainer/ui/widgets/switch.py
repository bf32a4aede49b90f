"""A switch that says "on" or "off" where colour cannot: Textual's draws its state in colour alone."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widgets import Switch


class WordedSwitch(Switch):
    """Under NO_COLOR, the slider (a coloured bar) reads the same on and off: the words stand in for it."""

    def render(self) -> RenderResult:
        if self.app.no_color:
            return Text("on" if self.value else "off", style="bold" if self.value else "")
        return super().render()
