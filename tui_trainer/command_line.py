"""The `scratch-tui train ...` command line that reproduces a config."""

from __future__ import annotations

import shlex

from .engine.config import SETTINGS, TrainConfig, applies, model_arg_text, to_text


def command_line(config: TrainConfig, *, base: TrainConfig | None = None, fork: str = "", replay: str = "") -> str:
    """Only the settings that differ from `base` (the defaults; a fork's parent config) and matter for this
    model and optimizer, so the line stays short and readable. `fork` ("RUN_ID@EPOCH") starts from that
    checkpoint; `replay` (a run id) repeats that run's mid-run lr changes at the same steps."""
    base = base or TrainConfig()
    parts = ["scratch-tui", "train"]
    if fork:
        parts += ["--fork", shlex.quote(fork)]
    for s in SETTINGS.values():
        value = getattr(config, s.name)
        if not s.typed or value == getattr(base, s.name) or not applies(s.name, config):
            continue  # a model's kept source is the run's; its line names the file
        if isinstance(value, dict):  # --model-arg KEY=VALUE, one a key
            parts += [part for key, item in value.items() for part in (s.flag, shlex.quote(model_arg_text(key, item)))]
        elif isinstance(value, bool):
            parts.append(s.flag if value else "--no-" + s.flag[2:])
        else:
            parts += [s.flag, shlex.quote(to_text(value))]
    if replay:
        parts += ["--replay", shlex.quote(replay)]
    return " ".join(parts)
