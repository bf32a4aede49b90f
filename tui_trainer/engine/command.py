"""The `scratch-tui train ...` command line that reproduces a config."""

from __future__ import annotations

import shlex

from .config import SETTINGS, TrainConfig, applies, to_text


def command_line(config: TrainConfig) -> str:
    """Only the settings that differ from the defaults and matter for this model and optimizer,
    so the line stays short and readable."""
    parts = ["scratch-tui", "train"]
    for s in SETTINGS.values():
        value = getattr(config, s.name)
        if value == s.default or not applies(s.name, config):
            continue
        if isinstance(value, bool):
            parts.append(s.flag if value else "--no-" + s.flag[2:])
        else:
            parts += [s.flag, shlex.quote(to_text(value))]
    return " ".join(parts)
