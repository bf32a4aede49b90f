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
    compact before it is mounted, so it is styled once. Built with its screen (`eager`), its keys are
    in the screen's first frame instead of two frames later; only where the focus does not change
    them, or they are built twice."""

    _shown: tuple | None = None

    def __init__(self, eager: bool = False) -> None:
        super().__init__(compact=True)
        if eager:  # for a screen whose keys do not hang on the focus: the keys come in its first frame
            self.set_reactive(Footer._bindings_ready, True)

    def bindings_changed(self, screen: Screen) -> None:
        shown = shown_keys(screen)
        if shown == self._shown and self._bindings_ready and screen is self.screen:
            return
        self._shown = shown
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        if self._bindings_ready and self._shown is None:
            self._shown = shown_keys(self.screen)
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                widget.set_class(True, "-compact", update=False)
            yield widget
