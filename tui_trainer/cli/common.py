"""What every command shares: one-line errors, exit codes, plain tables."""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Sequence

from ..engine.user_text import printable, shortened
from ..format import fit_columns

EXIT_FAILED = 1


EXIT_USAGE = 2


EXIT_INTERRUPTED = 130  # 128 + SIGINT; a SIGTERM or SIGHUP stop exits 128 + its number


RUNS_DIR_HELP = "where runs are recorded (default: $SCRATCH_TUI_HOME or the user data dir)"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming it (and where to look), never a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes what was typed whole: a 5,000-digit --epochs is cut as any value in a message is
        message = " ".join(shortened(word) for word in message.split(" "))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def table(rows: list[Sequence[str]], width: int | None = None, *, squeeze: Sequence[int] = (),
          drop: Sequence[int] = ()) -> list[str]:
    """Left-aligned columns two spaces apart; the first row is the header.

    With a `width` (a terminal's) that the table overflows, the columns in `squeeze` are cut with an
    ellipsis, the widest first and never below their header (or 8 characters), and while that is not
    enough the columns in `drop` are left out, in that order. The other columns are always shown whole.
    Control characters in a cell (a run named with terminal escapes) are printed as their escapes.
    """
    rows = [[printable(cell) for cell in row] for row in rows]  # a name's escape sequences shown, not obeyed
    natural = {i: max(len(r[i]) for r in rows) for i in range(len(rows[0]))}
    minimum = {i: min(n, max(len(rows[0][i]), 8)) for i, n in natural.items()}
    widths = fit_columns(natural, minimum, width, 2, squeeze, drop)
    mark = _ellipsis()
    return ["  ".join(_cut(row[i], w, mark).ljust(w) for i, w in widths.items()).rstrip() for row in rows]


def _cut(cell: str, width: int, mark: str) -> str:
    return cell if len(cell) <= width else cell[:max(width - len(mark), 0)] + mark


def unicode_out() -> bool:
    """Whether standard output takes ± and …: a pipe or terminal in ASCII gets +- and ~ instead."""
    try:
        "±\u2026".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _ellipsis() -> str:
    return "\u2026" if unicode_out() else "~"


def terminal_width() -> int | None:
    """How wide the terminal stdout writes to is; None when stdout is a file or a pipe (no limit)."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed
        return None
    return shutil.get_terminal_size().columns


def reader_gone() -> int:
    """The reader of stdout went away (`| head`): end quietly, with the exit code of a SIGPIPE (141).

    What is left of stdout goes to /dev/null, so Python's flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return 128 + signal.SIGPIPE


def package_version() -> str:
    """This package's version: from its installed metadata, or else from the pyproject.toml beside it."""
    from importlib import metadata

    try:
        return metadata.version("scratch-tui")
    except metadata.PackageNotFoundError:
        import tomllib

        try:
            with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
                return tomllib.load(f)["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def no_store(runs_dir: str | None) -> Path | None:
    """The runs folder when it holds no run store (a reader has nothing to read, and must not create one); None
    when it does."""
    from ..runs.store import store_paths

    root, db_path = store_paths(runs_dir)
    return None if db_path.exists() else root


def when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def usage_error(message: str, command: str = "train") -> int:
    return error(message, command, EXIT_USAGE)


def error(message: str, command: str = "train", code: int = EXIT_FAILED) -> int:
    print(f"scratch-tui {command}: error: {one_line(message)}", file=sys.stderr)
    return code


MESSAGE_LIMIT = 1000  # characters of one error line; the values in it are cut first, this is the backstop


def one_line(message: str) -> str:
    """An error message as printed: one line (control characters escaped, user text or not) of bounded length."""
    return shortened(printable(message), MESSAGE_LIMIT)
