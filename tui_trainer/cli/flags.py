"""The train flags and the TrainConfig they build, all read from the config's SETTINGS."""

from __future__ import annotations

import argparse
from typing import Any

from ..engine.config import SETTINGS, ConfigError, Setting, TrainConfig, from_text, parse_model_arg, preset, to_text


def _help(s: Setting) -> str:
    # written out rather than argparse's %(default)s: the parser's default stays None, so that a flag left out
    # does not override --config or --preset
    if s.shown_default:
        default = s.shown_default
    elif isinstance(s.default, bool):
        default = "on" if s.default else "off"
    else:
        default = to_text(s.default)
    only = f"only with --{s.only_when[0]} {' or '.join(s.only_when[1])}; " if s.only_when else ""
    # a setting taking more than its listed choices (a model from a file) lists them here, not as argparse's
    choices = f": {', '.join(s.choices)}, or {s.also()}" if s.also() else ""
    return f"{s.help}{choices} ({only}default: {default})".replace("%", "%%")


def _flag_kwargs(s: Setting) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dest": s.name, "help": _help(s)}
    if s.type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif s.type == dict[str, Any]:
        kwargs["action"] = "append"  # one KEY=VALUE each
    elif s.choices and not s.also():
        kwargs["choices"] = tuple(s.choices)
    elif s.type in (int, float):
        kwargs["type"] = s.type  # argparse's own "invalid int value" names the flag
    if s.metavar:
        kwargs["metavar"] = s.metavar
    return kwargs


# flag -> argparse kwargs (their `dest` is the TrainConfig field); a setting nobody types has none
TRAIN_FLAGS: dict[str, dict[str, Any]] = {s.flag: _flag_kwargs(s) for s in SETTINGS.values() if s.typed}


def config_from_args(args: argparse.Namespace, *, check_model: bool = True) -> TrainConfig:
    """The config of --config, --preset and the flags. A model from a file has its source read and kept in the
    config, and (unless `check_model` is false) is built and run once on a batch of 2: a ConfigError naming the
    file, its line and what to fix, before anything is recorded."""
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.preset:
        config = preset(args.preset, config)
    overrides: dict[str, Any] = {}
    for name, s in SETTINGS.items():
        value = getattr(args, name, None) if s.typed else None
        if value is None:
            continue
        if s.type == dict[str, Any]:  # --model-arg KEY=VALUE, repeated: over the config's own
            overrides[name] = {**config.model_args, **dict(parse_model_arg(item) for item in value)}
        else:
            overrides[name] = from_text(name, value) if isinstance(value, str) else value
    if "model" in overrides:  # the model named here is read from its file now, never a config's kept source
        overrides["model_source"] = ""
    config = config.replace(**overrides) if overrides else config
    from ..engine.model_file import ready
    from ..engine.user_data import checked_data

    config = ready(config, check=check_model)
    return checked_data(config) if check_model else config


def name_flags(exc: ConfigError) -> str:
    """Config messages name fields; on the command line, name the flag the user typed."""
    return "; ".join(
        msg.replace(f"{name}:", f"{SETTINGS[name].flag}:", 1) if name in SETTINGS else msg
        for name, msg in exc.errors.items()
    )


def given_train_flags(args: argparse.Namespace) -> list[str]:
    """Settings flags typed on the command line (those a resumed run cannot take)."""
    given = [flag for flag in ("--preset", "--config", "--save-config") if getattr(args, flag[2:].replace("-", "_"))]
    given += [s.flag for s in SETTINGS.values() if s.typed and getattr(args, s.name) is not None]
    return given + (["--no-record"] if args.no_record else [])
