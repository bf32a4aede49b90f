"""The footer every screen shows: Textual's, made cheaper to build."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


def shown_keys(screen: Screen) -> tuple:
    return tuple((binding.key, binding.action, binding.description, enabled, tooltip)
                 for _, binding, enabled, tooltip in screen.active_bindings.values() if binding.show)


class KeyFooter(Footer):
    """Textual's footer, compact, rebuilt only when the keys it shows change.

    Textual's footer rebuilds all its keys whenever the focus moves, and each key then restyles
    itself once more as it learns it is compact: together most of a screen or tab switch's time
    (bench/screen_switch.py). Here a rebuild for the same keys is skipped, and each key is made
    compact before it is mounted, so it is styled once.
    (Built with its screen instead of a frame later, it was slower: the focus then settles and
    changes the keys.)"""

    _shown: tuple | None = None

    def __init__(self) -> None:
        super().__init__(compact=True)

    def bindings_changed(self, screen: Screen) -> None:
        shown = shown_keys(screen)
        if shown == self._shown and self._bindings_ready and screen is self.screen:
            return
        self._shown = shown
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                widget.set_class(True, "-compact", update=False)
            yield widget
