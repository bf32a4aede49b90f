"""How counts and changes read: one function for a count, one arrow, for the engine, the CLI and the app."""

from __future__ import annotations

import io

from tui_trainer.engine.events import RunFinished, RunStopped
from tui_trainer.engine.wording import ARROW, ASCII_ARROW, arrow, counted


def test_a_count_is_singular_only_for_exactly_one():
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert counted(1, "thread") == "1 thread" and counted(1_000, "run") == "1,000 runs"
    assert counted(2, "config") == "2 configs" and counted(2, "process") == "2 processes"
    # the sentences the app's log, `attach` and `train` print
    assert RunFinished(epochs_done=1, seconds=0.5).describe() == "Finished 1 epoch in 0.5s"
    assert RunStopped(epochs_done=2, seconds=0.5).describe() == "Stopped after 2 epochs"


def test_the_arrow_is_one_symbol_wherever_it_can_be_drawn(monkeypatch):
    class Captured:  # Textual's print capture inside the app: no encoding, and the app draws Unicode itself
        def write(self, text):
            return len(text)

    monkeypatch.setattr("sys.stdout", Captured())
    assert arrow() == ARROW == "\u2192"
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert arrow() == ARROW
    # a pipe in an ASCII locale cannot encode it: the one fallback
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert arrow() == ASCII_ARROW
