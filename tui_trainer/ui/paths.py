"""Paths typed into the app: a file it writes stays inside the folder chosen for it.

Under `scratch-tui serve` the person typing a path may be remote, so setup's save and the runs screen's
export never write outside the working directory (or, for an export, the runs dir):

    path = inside(Path.cwd(), typed, "config path")   # ValueError: one line, nothing written
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def inside(folders: Path | Sequence[Path], typed: str, what: str = "path") -> Path:
    """The typed path, resolved (`~` expanded, relative to the first folder, symbolic links followed), if it
    lies inside one of `folders`; else ValueError with a one-line message naming it and the folder(s)."""
    roots = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
    roots = [root.expanduser().resolve() for root in roots]
    text = typed.strip()
    if not text:
        raise ValueError(f"{what}: give a file name")
    try:
        path = (roots[0] / Path(text).expanduser()).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symbolic link loop, a NUL in the name
        raise ValueError(f"{what}: cannot read {text!r} as a path ({exc})") from None
    if any(path != root and path.is_relative_to(root) for root in roots):
        return path
    where = " or ".join(str(root) for root in roots)
    raise ValueError(f"{what}: {path} is outside {where}; save inside {'it' if len(roots) == 1 else 'one of them'}")
