"""How counts and changes read for people, declared once for the engine's sentences, the CLI and the app."""

from __future__ import annotations

import sys

# irregular plurals; every other noun takes an s
_PLURALS = {"config": "configs", "process": "processes"}


def counted(n: int, noun: str) -> str:
    """"1 epoch", "2 epochs", "1,000 runs": a count and its noun, singular only for exactly one."""
    return f"{n:,} {noun if n == 1 else _PLURALS.get(noun, noun + 's')}"


ARROW = "\u2192"  # "lr 0.003 → 0.0015": what changed, from and to
ASCII_ARROW = "->"


def arrow() -> str:
    """ARROW, or ASCII_ARROW where stdout cannot encode it (a pipe in an ASCII locale). Inside the app
    Textual's print capture stands in for stdout and names no encoding: the app draws Unicode itself."""
    encoding = getattr(sys.stdout, "encoding", None)
    if not encoding:
        return ARROW
    try:
        ARROW.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_ARROW
    return ARROW
