"""Text a user gave (a name, a run id, a path, a typed value) as a message or a printed line may show it.

A message quotes what was typed so the user sees what was refused, but a 100,000-character name must not
become a 100,000-character line, and a name holding terminal escape sequences must not clear the screen or
write the clipboard of whoever lists the runs.
"""

from __future__ import annotations

import math
import re
from typing import Any

SHOWN = 80  # characters of a value a message quotes
PATH_SHOWN = 240  # of a path: most real ones whole, with room for the rest of the line

# C0 and C1 controls and DEL: ESC starts a terminal sequence, CR and BS overwrite what was printed
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    r"""`text` with every control character written as its escape (`\x1b`, `\n`): safe to print to a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def shortened(text: str, limit: int = SHOWN) -> str:
    """`text` cut to at most `limit` characters in its middle, marked with an ellipsis: both ends stay, so a
    long path keeps its file name and a quoted value its closing quote."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def shown(value: Any, limit: int = SHOWN) -> str:
    """A value as a message quotes it: its repr, printable and at most `limit` characters."""
    if isinstance(value, int) and value.bit_length() > 4 * limit:  # repr refuses one of over 4,300 digits
        return f"a whole number of about {int(value.bit_length() * math.log10(2)):,} digits"
    return shortened(printable(repr(value)), limit)


def shown_text(text: str, limit: int = SHOWN) -> str:
    """User text (a name, an id, a path) inside a message, unquoted: printable and at most `limit` characters."""
    return shortened(printable(str(text)), limit)


def shown_path(path: Any) -> str:
    """A file's path inside a message: printable, whole unless absurdly long (then its file name stays)."""
    return shown_text(str(path), PATH_SHOWN)
