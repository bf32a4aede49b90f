"""What every command shares: one-line errors, exit codes, plain tables."""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Sequence

EXIT_FAILED = 1


EXIT_USAGE = 2


EXIT_INTERRUPTED = 130  # 128 + SIGINT; a SIGTERM or SIGHUP stop exits 128 + its number


RUNS_DIR_HELP = "where runs are recorded (default: $SCRATCH_TUI_HOME or the user data dir)"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming it (and where to look), never a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def table(rows: list[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def usage_error(message: str, command: str = "train") -> int:
    return error(message, command, EXIT_USAGE)


def error(message: str, command: str = "train", code: int = EXIT_FAILED) -> int:
    print(f"scratch-tui {command}: error: {message}", file=sys.stderr)
    return code
