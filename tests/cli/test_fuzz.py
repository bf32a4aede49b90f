"""Property-based: random command lines and random TOML get the project's own one-line errors, never a traceback,
and a refusal writes nothing.

Everything runs in-process and nothing trains: the parsers, the config, sweep and model-argument readers, and the
commands that stop before training (`train --save-config`, `queue add --no-start`, `sweep --detach` on a paused
queue). A few dozen examples each by default, so the suite stays quick; thousands with

    SCRATCH_TUI_FUZZ=1 pytest -m fuzz tests/cli/test_fuzz.py
"""

import argparse
import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui_trainer import cli
from tui_trainer.cli.flags import config_from_args
from tui_trainer.engine.config import (SETTINGS, ConfigError, TrainConfig, from_text, parse_model_arg,
                                       parse_model_args)
from tui_trainer.engine.fits import check_fits
from tui_trainer.runs.queue import pause_queue
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.sweep import SWEEP_KEYS, SWEEPABLE, SweepError, SweepSpec, parse_axis

FUZZ = bool(os.environ.get("SCRATCH_TUI_FUZZ"))
# derandomized in the suite: the same examples every run, so a failure there is never a fluke of one run
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("fuzz" if FUZZ else "ci")

pytestmark = pytest.mark.fuzz

MESSAGE_LIMIT = 1100  # cli/common.py's one_line cuts at 1,000, plus the "scratch-tui COMMAND: error: " before it
PROJECT_ERRORS = (ConfigError, SweepError)


# -- what random input is made of ---------------------------------------------------------------------------------
def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Every command path (("train",), ("runs", "show"), ...) with the option strings its parser takes."""
    found = {path: [o for o in parser._option_string_actions if o.startswith("--")]}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(cli.build_parser())
ALL_FLAGS = sorted({flag for flags in COMMANDS.values() for flag in flags} - {"--help", "--version"})
# values a person might type by mistake, or on purpose
TRICKY = ["", "-1", "0", "1", "2", "nan", "inf", "-inf", "1e999", "9" * 5000, "128,,64", ",", "1,28,28", "cuda:7",
          "x" * 3000, "\x1b[2J", "a=1", "=", "width=32", "cpu", "auto", "scratch-mlp", "cnn", "ab@3", "zzzz@step-x",
          "/dev/null", "model.py:Net", "0.1,0.2", "é", "\udcff"[:0] + "\u202e", "--", "-"]
VALUE = st.one_of(st.sampled_from(TRICKY), st.text(max_size=30), st.integers().map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))


@st.composite
def command_lines(draw, commands=tuple(COMMANDS)):
    path = draw(st.sampled_from(commands))
    flags = COMMANDS[path] or ALL_FLAGS
    words = draw(st.lists(st.one_of(st.sampled_from(flags), st.sampled_from(ALL_FLAGS), VALUE), max_size=8))
    return [*path, *words]


# TOML a person could write: the settings' own keys and the sweep's, random values of every TOML type
KEYS = st.one_of(st.sampled_from([*SETTINGS, *SWEEP_KEYS, "sweep", "log", "lin", "count", "model_args.width"]),
                 st.text(max_size=12))
SCALARS = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.sampled_from([0, 1, 2, 10**18, 2**63, -1]),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=20),
                    st.sampled_from(["scratch-mlp", "cnn", "sgd", "plateau", "cuda-graph", "random", "grid"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(data: dict) -> str:
    return "".join(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(value)}\n" for key, value in data.items())


TOML = st.one_of(st.dictionaries(KEYS, VALUES, max_size=6).map(toml_text), st.text(max_size=200))
# a sweep table mostly as the reader expects one (settings swept by lists and ranges), so that random values
# reach the axes, the grid's size and the runs' configs, not only the first check
AXES = st.one_of(st.lists(SCALARS, max_size=6),
                 st.builds(lambda scale, ends, count: {scale: ends, **({"count": count} if count is not None else {})},
                           st.sampled_from(["log", "lin"]), st.lists(SCALARS, min_size=2, max_size=2),
                           st.none() | SCALARS | st.integers(min_value=1, max_value=10**20)),
                 VALUES)
SWEEP_TABLE = st.dictionaries(st.sampled_from([*SWEEPABLE, *SWEEP_KEYS, "model_args"]) | KEYS, AXES, max_size=4)
SWEEP_TOML = st.builds(lambda base, table: toml_text({**base, "sweep": table}),
                       st.dictionaries(KEYS, VALUES, max_size=3), SWEEP_TABLE)


# -- the properties -----------------------------------------------------------------------------------------------
def one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and len(message) <= MESSAGE_LIMIT, message[:300]
    assert "Traceback" not in message


def parsed(argv: list[str]) -> argparse.Namespace | None:
    """The namespace, or None after argparse's own exit: 0 for --help, else 2 with one line."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return cli.parse(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2), exc.code
        if exc.code == 2:
            one_line(err.getvalue())
            assert err.getvalue().startswith("scratch-tui")
        return None


@given(command_lines())
def test_every_parser_takes_random_arguments_or_says_why_in_one_line(argv):
    args = parsed(argv)
    if args is not None and args.command in ("train", "queue", "lr-find") and hasattr(args, "hidden"):
        try:  # the settings flags as the commands read them (a model file is not run: nothing is built here)
            check_fits([config_from_args(args, check_model=False)])
        except PROJECT_ERRORS as exc:
            one_line(str(exc))


@given(TOML)
def test_the_config_reader_takes_random_toml_or_says_why_in_one_line(text):
    try:
        config = TrainConfig.from_toml(text)
    except ConfigError as exc:
        one_line(str(exc))
        return
    assert TrainConfig.from_toml(config.to_toml()) == config  # what it accepts, it writes back the same


@given(SWEEP_TOML)
def test_the_sweep_reader_takes_random_toml_or_says_why_in_one_line(text):
    try:
        configs = SweepSpec.from_toml(text).configs()
    except PROJECT_ERRORS as exc:
        one_line(str(exc))
        return
    assert configs and all(isinstance(c, TrainConfig) for c in configs)


@given(st.sampled_from(sorted(SETTINGS)), VALUE, VALUES)
def test_typed_values_model_arguments_and_sweep_axes_are_read_or_refused_in_one_line(name, text, value):
    for read in (lambda: from_text(name, text), lambda: parse_model_arg(text), lambda: parse_model_args(text),
                 lambda: parse_axis(name, text), lambda: TrainConfig(model_args={"width": value}),
                 lambda: TrainConfig(**{name: value})):
        try:
            read()
        except PROJECT_ERRORS as exc:
            one_line(str(exc))


def _store_state(root: Path) -> tuple:
    """The runs and settings recorded, and the files under the runs dir (but SQLite's own -wal and -shm)."""
    files = tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm"))))
    with RunStore(root) as store:
        return (tuple(r.id for r in store.list_runs()), tuple(store.query("SELECT key, value FROM settings")), files)


@settings(max_examples=1000 if FUZZ else 8)  # each example opens a store and runs a command: the costliest
@given(st.data())
def test_commands_that_stop_before_training_write_nothing_when_they_refuse(data):
    """`train --save-config`, `queue add --no-start` and `sweep --detach` (on a paused queue, so no runner
    starts) with random flags: exit 0, or 2 with one line and the runs dir and the target file as they were."""
    kind = data.draw(st.sampled_from(["train", "queue", "sweep"]))
    with tempfile.TemporaryDirectory() as folder:
        root, target = Path(folder) / "runs", Path(folder) / "out.toml"
        with RunStore(root) as store:
            pause_queue(store)
        before = _store_state(root)
        if kind == "sweep":
            sweep = Path(folder) / "sweep.toml"
            sweep.write_text(data.draw(SWEEP_TOML), encoding="utf-8")
            argv = ["sweep", "run", str(sweep), *data.draw(st.lists(st.sampled_from(
                ["--yes", "--parallel", "--halving", "0", "1", "3", "100000"]), max_size=3)), "--detach"]
        else:
            words = data.draw(command_lines(commands=(("train",),) if kind == "train" else (("queue", "add"),)))
            # flags that start training or other runs are left out: they are not what this looks at
            words = [w for w in words if w not in ("--seeds", "--detach", "--resume", "--fork", "--replay")]
            argv = words + (["--save-config", str(target)] if kind == "train" else ["--no-start"])
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main([*argv, "--runs-dir", str(root)])
        except SystemExit as exc:  # argparse's own
            code = exc.code
        assert code in (0, 2), (code, err.getvalue()[:300])
        if code == 2:
            one_line(err.getvalue())
            assert _store_state(root) == before and not target.exists()
        elif kind == "train" and target.exists():
            TrainConfig.load(target)  # what it wrote reads back
