"""Sweeps as pure functions: a spec expands into ordinary TrainConfigs, results fold into a table.

A sweep file is a `train --config` file plus a `[sweep]` table:

    dataset = "fashion-mnist"
    epochs = 15

    [sweep]
    name = "mlp-lr"                          # optional; prefixes every run's name
    lr = {log = [1e-4, 1e-1], count = 4}     # 0.0001, 0.001, 0.01, 0.1
    weight_decay = [0.0, 0.01]               # a list: these values
    label_smoothing = {lin = [0.0, 0.1], count = 3}
    model_args.width = [16, 32]              # one argument of a model from a file (listed values only)
    seed = [0, 1, 2]                         # repeats of every config, never sampled

    # mode = "random"; samples = 20; sample_seed = 0   # draw 20 configs instead of the grid
    # search = "tpe"; pruner = "asha"; samples = 20      # an Optuna study instead (runs/study.py)

Grid order: seeds outermost (every config once with the first seed, then again with the next),
then the axes in the order written, the last varying fastest. Random mode samples a range without
`count` log-uniformly or uniformly, a list uniformly, and never the same config twice.

Nothing here knows about the store, the queue or the terminal; fields, types and ranges come from
engine/config.py's SETTINGS.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..engine.config import (SETTINGS, ConfigError, TrainConfig, field_error, from_text, model_arg_text,
                              parse_model_value, read_text_file, to_text, toml_data)
from ..engine.events import RunState
from ..engine.user_text import shown, shown_path, shown_text
from ..format import duration, fit_columns, percent

MAX_RUNS = 1000
# the most one sweep makes even when asked to go past MAX_RUNS: checked from the axes' sizes before any value
# is built, so a range of 10**9 points is refused at once instead of filling the memory
MOST_RUNS = 100_000
_LISTED = 5  # values a message lists before "..."
MODES = ("grid", "random")
# An Optuna study's search (runs/study.py): grid is this module's own grid, enqueued in order; the others
# sample `samples` configs as random mode does (a range without count, a list as categories).
SEARCHES = ("tpe", "random", "grid", "qmc")
PRUNERS = ("asha", "hyperband", "median", "none")
RANGE_SCALES = ("log", "lin")
# Settings that say where and under what name a run goes, not what it learns: never swept, and left
# out when runs are grouped into configs (the queue may put seeds of one config on different devices).
NOT_SWEPT: dict[str, str] = {
    "name": "each run's name is made from the sweep's name and its values",
    "device": "the queue places runs on devices",
    "data_dir": "it says where the data lives, not what a run learns",
    "model_source": "it is the model file's code, read from the file the model names",
}
SWEEPABLE = tuple(name for name in SETTINGS if name not in NOT_SWEPT)
# keys of [sweep] that are not settings ("name" is the sweep's own name there)
SWEEP_KEYS = ("name", "mode", "samples", "sample_seed", "search", "pruner", "heartbeat", "halving")
HEARTBEAT_S = 10  # a study's trials beat this often; one silent for 3 beats is failed and retried
# a range's points as a person would type them, and as run names and tables show them: lr=0.00316,
# not 0.0031622776601683794 (nor 1e-4 * 10**1's 0.0010000000000000002)
_SIGNIFICANT = 3


class SweepError(ValueError):
    """A bad sweep, said in one line that names the field (sweep.lr: ...)."""


class SweepTooLarge(SweepError):
    """More runs than MAX_RUNS without allow_large; `runs` says how many."""

    def __init__(self, runs: int):
        self.runs = runs
        # how to confirm is the caller's to say (--yes on the command line, a question in the app)
        super().__init__(f"sweep: {runs} runs, more than {MAX_RUNS} at once")


# ---------------------------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class Axis:
    """The values of one swept field: listed values, or a log or linear range of `count` values (ends included).

    A range without a count is only for random mode, which samples it continuously.
    """

    field: str
    values: tuple[Any, ...] = ()
    scale: str = ""  # "" for listed values, else "log" or "lin"
    low: float | None = None
    high: float | None = None
    count: int | None = None

    @property
    def is_range(self) -> bool:
        return bool(self.scale)

    def grid(self) -> tuple[Any, ...]:
        """Every value the grid takes, in order."""
        if not self.is_range:
            return self.values
        if self.count is None:
            raise SweepError(f"{_key(self.field)}: a range needs a count in a grid (or mode = \"random\")")
        lo, hi, n = self.low, self.high, self.count
        if n == 1:
            points = [lo]
        elif self.scale == "log":
            a, b = math.log(lo), math.log(hi)
            points = [lo] + [math.exp(a + (b - a) * i / (n - 1)) for i in range(1, n - 1)] + [hi]
        else:
            points = [lo] + [lo + (hi - lo) * i / (n - 1) for i in range(1, n - 1)] + [hi]
        values = tuple(_number(self.field, p) for p in points)
        if len(set(values)) < len(values):
            distinct = len(set(values))
            what = ("whole numbers" if SETTINGS[self.field].type is int
                    else f"values at {_SIGNIFICANT} significant digits")
            raise SweepError(f"{_key(self.field)}: {self.scale} range [{_show(lo)}, {_show(hi)}] with count {n} "
                             f"repeats {what} ({_first_few(values)}); use count = {distinct} or less")
        return values

    def size(self) -> int:
        return len(self.values) if not self.is_range else (self.count or 0)

    def sample(self, rng: random.Random) -> Any:
        """One value drawn at random: a range log-uniformly or uniformly, a list uniformly."""
        if not self.is_range:
            return self.values[rng.randrange(len(self.values))]
        u = rng.random()
        if self.scale == "log":
            return _number(self.field, math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return _number(self.field, self.low + u * (self.high - self.low))

    def text(self) -> str:
        """As the setup form shows it; parse_axis reads it back."""
        if self.is_range:
            count = "" if self.count is None else f" {self.count}"
            return f"{self.scale} {_show(self.low)} {_show(self.high)}{count}"
        if _item(self.field):
            return "; ".join(model_arg_text("x", v)[2:] for v in self.values)
        return ("; " if self.field == "hidden" else ", ").join(to_text(v) for v in self.values)


def _key(field: str) -> str:
    return f"sweep.{shown_text(field)}"


def _first_few(values: Sequence[Any]) -> str:
    """The first values of a long list, as a message shows them: 1, 2, 3, 4, 5, ... (1,000 in all)."""
    listed = ", ".join(shown_text(_show(v), 20) for v in values[:_LISTED])
    return listed if len(values) <= _LISTED else f"{listed}, ... ({len(values):,} in all)"


# An item of a table setting, swept on its own: "model_args.width" is model_args' width.
_TABLES = tuple(name for name, s in SETTINGS.items() if s.type == dict[str, Any])


def _item(field: str) -> tuple[str, str] | None:
    """('model_args', 'width') for 'model_args.width'; None for a setting's own name."""
    table, dot, key = field.partition(".")
    return (table, key) if dot else None


def _setting(field: str) -> str:
    """The setting a swept field belongs to: model_args for model_args.width."""
    return field.partition(".")[0]


def _show(value: Any) -> str:
    """A value in a run name, a message or a table cell: 0.001, 128,64, cnn."""
    if isinstance(value, bool):
        return "true" if value else "false"  # as TOML and parse_axis write it
    if isinstance(value, float):
        return f"{value:.6g}"
    return to_text(value)


def _number(field: str, value: float) -> int | float:
    """A range point as the field takes it: whole numbers rounded half up, others to 3 significant digits."""
    if SETTINGS[field].type is int:
        return math.floor(value + 0.5)
    return float(f"{value:.{_SIGNIFICANT}g}")


def _checked(field: str, value: Any) -> Any:
    """A value the field accepts on its own (ints are floats for float fields); else SweepError naming it."""
    if isinstance(value, list):
        value = tuple(value)
    if (item := _item(field)) is not None:
        value = _tuples(value)
        if field_error(item[0], {item[1]: value}):
            raise SweepError(f"{_key(field)}: got {shown(value)}; each value must be a number, text, true/false or a "
                             f"list of them")
        return value
    if SETTINGS[field].type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    message = field_error(field, value)
    if message:
        raise SweepError(f"sweep.{message}")
    return value


def _tuples(value: Any) -> Any:
    """Lists as tuples, all the way down, as the config keeps a model argument."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _known(field: str) -> None:
    if (item := _item(field)) is not None:
        table, key = item
        if table not in _TABLES:
            raise SweepError(f"{_key(field)}: unknown setting; only {', '.join(_TABLES)} sweeps its items one by one")
        if not key.isidentifier():
            raise SweepError(f"{_key(field)}: {shown(key)} is not an argument name (a Python identifier)")
        return
    if field in _TABLES:
        raise SweepError(f"{_key(field)}: sweep its items one at a time, as {field}.NAME = [values] "
                         f"(e.g. {field}.width = [16, 32])")
    if field in NOT_SWEPT:
        raise SweepError(f"{_key(field)}: cannot be swept; {NOT_SWEPT[field]}")
    if field not in SETTINGS:
        raise SweepError(f"{_key(field)}: unknown setting; settings that can be swept are {', '.join(SWEEPABLE)}")


def list_axis(field: str, values: Iterable[Any]) -> Axis:
    """An axis of listed values, each checked by the field's own rules; no value twice."""
    _known(field)
    values = tuple(values)
    if len(values) > MOST_RUNS:
        raise SweepError(f"{_key(field)}: {len(values):,} values, more than the {MOST_RUNS:,} runs one sweep may "
                         f"make; list fewer")
    checked = tuple(_checked(field, v) for v in values)
    if not checked:
        raise SweepError(f"{_key(field)}: empty list; give at least one value")
    seen: set[Any] = set()
    for v in checked:  # every value is a number, text, true/false or a tuple of them: hashable
        if v in seen:
            raise SweepError(f"{_key(field)}: {shown_text(_show(v))} is listed twice")
        seen.add(v)
    return Axis(field, values=checked)


def range_axis(field: str, scale: str, low: Any, high: Any, count: Any = None) -> Axis:
    """A log or linear range from low to high, ends included; count values, or None to sample it (random mode)."""
    _known(field)
    kind = SETTINGS[_setting(field)].type
    if kind not in (int, float):
        raise SweepError(f"{_key(field)}: a range needs a number setting; give a list of values instead")
    if scale not in RANGE_SCALES:
        raise SweepError(f"{_key(field)}: a range is log or lin, got {shown(scale)}")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    ends = f"[{_show(low)}, {_show(high)}]" if numbers else shown([low, high])  # not numbers: anything, quoted
    if not numbers or not low < high or (scale == "log" and not low > 0):
        need = "0 < lo < hi" if scale == "log" else "lo < hi"
        raise SweepError(f"{_key(field)}: {scale} range needs {need}, got {ends}")
    for end in (low, high):
        _checked(field, _number(field, end))
    if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
        raise SweepError(f"{_key(field)}: count must be a whole number of 1 or more, got {shown(count)}")
    if count is not None and count > MOST_RUNS:  # before a single point is built
        raise SweepError(f"{_key(field)}: count {count:,} is more than the {MOST_RUNS:,} runs one sweep may make; "
                         f"lower it")
    axis = Axis(field, scale=scale, low=float(low), high=float(high), count=count)
    if count is not None:
        for v in axis.grid():  # refuses repeated whole numbers; each point checked by the field's rules
            _checked(field, v)
    return axis


def parse_axis(field: str, text: str) -> Axis:
    """One axis as typed in setup: "0.001, 0.01", "log 1e-4 1e-1 4", "lin 0.1 0.5 5" (no count: random only).

    Hidden sizes are separated by ";" ("128,64; 256,128"); other lists by "," or ";".
    """
    _known(field)
    words = text.split()
    if words and words[0].lower() in RANGE_SCALES:
        if len(words) not in (3, 4):
            raise SweepError(f"{_key(field)}: a range is '{words[0]} LO HI COUNT', got {shown(text.strip())}")
        low, high = (_from_text(field, w) for w in words[1:3])
        count = _whole_count(field, words[3]) if len(words) == 4 else None
        return range_axis(field, words[0].lower(), low, high, count)
    separator = ";" if field == "hidden" or _item(field) else (";" if ";" in text else ",")
    parts = [part.strip() for part in text.split(separator) if part.strip()]
    if _item(field):  # a model argument's values: Python literals, else text (as --model-arg reads one)
        return list_axis(field, [parse_model_value(part) for part in parts])
    return list_axis(field, [_from_text(field, part) for part in parts])


def _from_text(field: str, text: str) -> Any:
    try:
        return from_text(field, text)
    except ConfigError as exc:
        raise SweepError(f"sweep.{exc}") from None


def _whole_count(field: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SweepError(f"{_key(field)}: count must be a whole number of 1 or more, got {shown(text)}") from None


def _axis_from_toml(field: str, value: Any) -> Axis:
    _known(field)
    if isinstance(value, list):
        return list_axis(field, value)
    if isinstance(value, dict):
        scales = [s for s in RANGE_SCALES if s in value]
        extra = sorted(set(value) - {*RANGE_SCALES, "count"})
        if len(scales) != 1 or extra:
            raise SweepError(f"{_key(field)}: a range is {{log = [lo, hi], count = n}} or {{lin = [lo, hi], count = n}}"
                             f", got keys {', '.join(shown_text(k, 20) for k in sorted(value)[:_LISTED]) or 'none'}")
        ends = value[scales[0]]
        if not (isinstance(ends, list) and len(ends) == 2):
            raise SweepError(f"{_key(field)}: {scales[0]} needs [lo, hi], got {shown(ends)}")
        return range_axis(field, scales[0], ends[0], ends[1], value.get("count"))
    raise SweepError(f"{_key(field)}: give a list of values or a range; one value belongs in the config above [sweep]")


# ---------------------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SweepSpec:
    """A base config, the axes swept over it, and the seeds every config repeats with."""

    base: TrainConfig
    axes: tuple[Axis, ...] = ()
    seeds: tuple[int, ...] = ()
    mode: str = "grid"
    samples: int = 0
    sample_seed: int = 0
    name: str = ""
    search: str = ""  # "" for a sweep of the store alone; else an Optuna study's sampler (SEARCHES)
    pruner: str = "none"
    heartbeat: float = HEARTBEAT_S
    halving: int = 1  # the pruner's first rung (its min resource): no trial is pruned before this epoch

    @property
    def is_study(self) -> bool:
        return bool(self.search)

    def __post_init__(self) -> None:
        fields = [a.field for a in self.axes]
        for i, axis in enumerate(self.axes):  # an Axis made by hand is checked as parse_axis checks one
            _known(axis.field)
            if axis.is_range:
                range_axis(axis.field, axis.scale, axis.low, axis.high, axis.count)
            else:
                list_axis(axis.field, axis.values)
            if axis.field in fields[:i]:
                raise SweepError(f"{_key(axis.field)}: swept twice")
        if "seed" in fields:
            raise SweepError("sweep.seed: seeds are repeats; give them as seeds, not as an axis")
        if self.mode not in MODES:
            raise SweepError(f"sweep.mode: got {shown(self.mode)}; choose grid or random")
        if self.search and self.search not in SEARCHES:
            raise SweepError(f"sweep.search: got {shown(self.search)}; choose one of {', '.join(SEARCHES)}")
        if self.pruner not in PRUNERS:
            raise SweepError(f"sweep.pruner: got {shown(self.pruner)}; choose one of {', '.join(PRUNERS)}")
        if not (isinstance(self.heartbeat, (int, float)) and not isinstance(self.heartbeat, bool)
                and self.heartbeat > 0):
            raise SweepError(f"sweep.heartbeat: got {shown(self.heartbeat)}; must be a number of seconds above 0")
        if not (isinstance(self.halving, int) and not isinstance(self.halving, bool)
                and 1 <= self.halving <= self.base.epochs):
            raise SweepError(f"sweep.halving: got {shown(self.halving)}; must be an epoch the runs reach, from 1 to "
                             f"{self.base.epochs}")
        if self.mode == "random":
            if not (isinstance(self.samples, int) and not isinstance(self.samples, bool) and self.samples >= 1):
                raise SweepError(f"sweep.samples: random mode needs samples = n of 1 or more, got "
                                 f"{shown(self.samples)}")
            if not self.axes:
                raise SweepError("sweep: random mode needs at least one field to sample")
            for axis in self.axes:
                if axis.is_range and axis.count is not None:
                    raise SweepError(f"{_key(axis.field)}: count has no meaning in random mode (a range is sampled "
                                     f"continuously); remove it, or use a list")
        else:
            if self.samples:
                raise SweepError('sweep.samples: only with mode = "random"')
        if self.size() > MOST_RUNS:  # from the axes' sizes alone: nothing is built yet
            raise SweepError(f"sweep: {self.size():,} runs, more than the {MOST_RUNS:,} one sweep may make; lower a "
                             f"count or list fewer values")
        if self.mode == "grid":
            for axis in self.axes:
                axis.grid()  # a range without a count says so here
        if not self.axes and len(self.seeds) < 2:
            raise SweepError("sweep: nothing to sweep; list values or a range of a setting under [sweep]")
        if not isinstance(self.name, str) or field_error("name", self.name):
            raise SweepError(f"sweep.name: got {shown(self.name)}; must be text (a short name for the sweep)")
        for axis in self.axes:
            self._check_applies(axis)

    def _check_applies(self, axis: Axis) -> None:
        """An axis that changes nothing in every run (momentum without SGD) is refused."""
        when = SETTINGS[_setting(axis.field)].only_when
        if when is None:
            return
        on, values = when
        swept = next((a for a in self.axes if a.field == on), None)
        taken = {getattr(self.base, on)} if swept is None else set(swept.values)  # `on` fields take choices: lists
        if not any(value in values for value in taken):  # values may be a registry's models reading the setting
            raise SweepError(f"{_key(axis.field)}: only matters with {on} {' or '.join(values)}, "
                             f"and no run of this sweep uses it")

    @property
    def seeds_or_base(self) -> tuple[int, ...]:
        return self.seeds or (self.base.seed,)

    @property
    def varied(self) -> tuple[str, ...]:
        """The fields that differ between runs, as run names list them: axes in order, then seed."""
        fields = tuple(a.field for a in self.axes if self.mode == "random" or a.size() > 1)
        return fields + (("seed",) if len(self.seeds) > 1 else ())

    def size(self) -> int:
        """How many runs the sweep makes, known before expanding it."""
        per_seed = self.samples if self.mode == "random" else math.prod(a.size() for a in self.axes)
        return per_seed * len(self.seeds_or_base)

    def configs(self, allow_large: bool = False) -> list[TrainConfig]:
        """Every run's config, in a fixed order, each named after the sweep and its varied values."""
        size = self.size()
        if size > MAX_RUNS and not allow_large:
            raise SweepTooLarge(size)
        combos = self._grid() if self.mode == "grid" else self._samples()
        runs: list[TrainConfig] = []
        for seed in self.seeds_or_base:
            for combo in combos:
                values = {**combo, "seed": seed}
                runs.append(self._config(values))
        return runs

    def _grid(self) -> list[dict[str, Any]]:
        fields = [a.field for a in self.axes]
        return [dict(zip(fields, combo)) for combo in itertools.product(*(a.grid() for a in self.axes))]

    def _samples(self) -> list[dict[str, Any]]:
        finite = all(not a.is_range or a.count is not None for a in self.axes)
        if finite:
            room = math.prod(a.size() for a in self.axes)
            if self.samples > room:
                raise SweepError(f"sweep.samples: {self.samples} samples but only {room} different configs; "
                                 f"lower samples or use the grid")
        rng = random.Random(self.sample_seed)
        drawn: list[dict[str, Any]] = []
        seen: set[tuple] = set()
        for _ in range(self.samples * 100):
            combo = {a.field: a.sample(rng) for a in self.axes}
            key = tuple(combo.values())
            if key not in seen:
                seen.add(key)
                drawn.append(combo)
                if len(drawn) == self.samples:
                    return drawn
        raise SweepError(f"sweep.samples: found only {len(drawn)} different configs in {self.samples * 100} draws; "
                         f"lower samples or widen the ranges")

    def _config(self, values: Mapping[str, Any]) -> TrainConfig:
        label = " ".join(f"{f}={_show(values[f])}" for f in self.varied)
        name = " ".join(part for part in (self.name or self.base.name, label) if part)
        while field_error("name", name):  # a name too long for a run: cut, the values stay in its config
            name = name[:-1]
        changes: dict[str, Any] = {}
        for field, value in values.items():
            if (item := _item(field)) is not None:  # model_args.width: the base's arguments, that one changed
                changes.setdefault(item[0], dict(getattr(self.base, item[0])))[item[1]] = value
            else:
                changes[field] = value
        try:
            return self.base.replace(**changes, name=name)
        except ConfigError as exc:
            raise SweepError(f"sweep: {label or 'the base config'}: {exc}") from None

    # -------------------------------------------------------------------------------- reading it

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSpec":
        """The base config's keys as in `train --config`, plus a `sweep` table."""
        data = dict(data)
        table = data.pop("sweep", None)
        if not isinstance(table, dict):
            raise SweepError("sweep: no [sweep] table; add one with the values to sweep (e.g. lr = [0.001, 0.003])")
        try:
            base = TrainConfig.from_dict(data)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        table = dict(table)
        table_keys = set(table)
        name = table.pop("name", "")
        search, pruner = table.pop("search", ""), table.pop("pruner", None)
        if search and "mode" in table:
            raise SweepError('sweep.mode: give search or mode, not both (search = "grid" or "random" says the mode)')
        if pruner is not None and not search:
            raise SweepError('sweep.pruner: only with search = "tpe", "random", "grid" or "qmc" (an Optuna study)')
        mode = table.pop("mode", "grid" if search in ("", "grid") else "random")
        heartbeat = table.pop("heartbeat", HEARTBEAT_S)
        halving = table.pop("halving", 1)
        if "halving" in table_keys and not search:
            raise SweepError('sweep.halving: only in a study (search = ...); for a sweep without search, '
                             '`scratch-tui sweep FILE --halving EPOCH` makes it one, with pruner asha')
        samples = table.pop("samples", 0)
        sample_seed = table.pop("sample_seed", 0)
        if not (isinstance(sample_seed, int) and not isinstance(sample_seed, bool)):
            raise SweepError(f"sweep.sample_seed: got {shown(sample_seed)}; must be a whole number")
        if mode != "random" and "sample_seed" in table_keys:
            raise SweepError('sweep.sample_seed: only with mode = "random"')
        seeds: tuple[int, ...] = ()
        if "seed" in table:
            seed_axis = _axis_from_toml("seed", table.pop("seed"))
            if seed_axis.is_range and seed_axis.count is None:
                raise SweepError("sweep.seed: seeds are repeats, never sampled; list them (seed = [0, 1, 2])")
            seeds = seed_axis.grid()
        axes: list[Axis] = []
        for field, value in table.items():
            if field in _TABLES and isinstance(value, dict):  # model_args.width = [16, 32]: an axis per item
                axes += [_axis_from_toml(f"{field}.{key}", items) for key, items in value.items()]
            else:
                axes.append(_axis_from_toml(field, value))
        axes = tuple(axes)
        return cls(base=base, axes=axes, seeds=seeds, mode=mode, samples=samples, sample_seed=sample_seed, name=name,
                   search=search, pruner=pruner or "none", heartbeat=heartbeat, halving=halving)

    @classmethod
    def from_toml(cls, text: str, source: str = "sweep file") -> "SweepSpec":
        try:
            data = toml_data(text, source)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "SweepSpec":
        source = f"sweep file {shown_path(path)}"
        try:
            text = read_text_file(path, source)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        return cls.from_toml(text, source)


def axes_spec(base: TrainConfig, axes: Mapping[str, Axis] | Sequence[Axis], mode: str = "grid", samples: int = 0,
              seeds: Sequence[int] = (), name: str = "", sample_seed: int = 0) -> SweepSpec:
    """A sweep built without a file (setup's marked fields, to queue or to extend a sweep with); an axis for "seed"
    counts as the seeds."""
    axes = list(axes.values()) if isinstance(axes, Mapping) else list(axes)
    seed_axes = [a for a in axes if a.field == "seed"]
    if seed_axes and seeds:
        raise SweepError("sweep.seed: given twice, as an axis and as seeds")
    if seed_axes:
        seeds = seed_axes[0].grid()
    checked = list_axis("seed", seeds).values if seeds else ()
    return SweepSpec(base=base, axes=tuple(a for a in axes if a.field != "seed"), seeds=checked, mode=mode,
                     samples=samples, sample_seed=sample_seed, name=name)


def expand(base: TrainConfig, axes: Mapping[str, Axis] | Sequence[Axis], mode: str = "grid", samples: int = 0,
           seeds: Sequence[int] = (), name: str = "", sample_seed: int = 0,
           allow_large: bool = False) -> list[TrainConfig]:
    """The runs of axes_spec's sweep."""
    return axes_spec(base, axes, mode, samples, seeds, name, sample_seed).configs(allow_large=allow_large)


# ---------------------------------------------------------------------------------------------- table


def config_group(config: TrainConfig) -> tuple[tuple[str, Any], ...]:
    """What makes runs the same config: every setting but the seed and those never swept (name, device, data);
    a table setting (model_args) as its items, each a field of its own (model_args.width)."""
    group: list[tuple[str, Any]] = []
    for name in SWEEPABLE:
        value = getattr(config, name)
        if name == "seed":
            continue
        if name in _TABLES:
            group += [(f"{name}.{key}", item) for key, item in sorted(value.items())]
        else:
            group.append((name, value))
    return tuple(group)


@dataclass(frozen=True)
class RunResult:
    """One run of a sweep as the table needs it; only finished runs count towards the means."""

    config: TrainConfig
    best_val_acc: float | None
    test_acc: float | None
    seconds: float
    state: RunState
    run_id: str = ""

    @property
    def done(self) -> bool:
        return self.state == RunState.FINISHED

    @classmethod
    def from_record(cls, record: Any) -> "RunResult":
        """From the store's RunRecord (its config, accuracies, training time and status)."""
        return cls(config=record.train_config(), best_val_acc=record.best_val_acc, test_acc=record.test_acc,
                   seconds=record.duration_s, state=record.state, run_id=record.id)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds; std is None for fewer than two, mean None for none."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Stat":
        present = [v for v in values if v is not None]
        mean = statistics.fmean(present) if present else None
        std = statistics.stdev(present) if len(present) > 1 else None
        return cls(mean, std, len(present))


METRICS = ("test_acc", "best_val_acc", "seconds")


@dataclass(frozen=True)
class SweepRow:
    """One config: its values of the varied fields, how many of its runs are done, and its metrics over seeds."""

    values: dict[str, Any]
    config: TrainConfig  # its first run's config
    done: int
    total: int
    seeds: tuple[int, ...]  # the seeds of its finished runs
    best_val_acc: Stat
    test_acc: Stat
    seconds: Stat
    best_run_id: str  # its finished run with the best test (else val) accuracy; "" when none

    def metric(self, name: str) -> Stat:
        return getattr(self, name)


@dataclass(frozen=True)
class SweepTable:
    fields: tuple[str, ...]  # the varied fields, one column each
    rows: tuple[SweepRow, ...]  # best first

    @property
    def sort_metric(self) -> str:
        """test_acc when any config has one, else best_val_acc."""
        return "test_acc" if any(r.test_acc.mean is not None for r in self.rows) else "best_val_acc"

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row: the varied values, done, total, then mean and std of each metric."""
        out = []
        for row in self.rows:
            record: dict[str, Any] = dict(row.values)
            record.update(done=row.done, total=row.total)
            for m in METRICS:
                record[f"{m}_mean"] = row.metric(m).mean
                record[f"{m}_std"] = row.metric(m).std
            record["best_run_id"] = row.best_run_id
            out.append(record)
        return out

    def columns(self) -> list[str]:
        return [*self.fields, "done", "total", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")), "best_run_id"]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns())
        for record in self.records():
            writer.writerow("" if v is None else to_text(v) if isinstance(v, (tuple, str)) else repr(v)
                            for v in record.values())
        return buffer.getvalue()

    def to_json(self) -> str:
        rows = [{k: list(v) if isinstance(v, tuple) else v for k, v in r.items()} for r in self.records()]
        return json.dumps({"fields": list(self.fields), "sort_metric": self.sort_metric, "rows": rows}) + "\n"

    def cells(self, ascii_only: bool = False) -> list[list[str]]:
        """The table as text cells, header first: varied fields, done/total, test acc, best val, time."""
        pm = " +- " if ascii_only else " ± "
        header = [*self.fields, "done", "test acc", "best val", "time"]
        rows = [header]
        for r in self.rows:
            def acc(s: Stat) -> str:
                return percent(s.mean) + ("" if s.std is None else f"{pm}{s.std:.2f}")

            time = "-" if r.seconds.mean is None else duration(r.seconds.mean) + (
                "" if r.seconds.std is None else f"{pm}{duration(r.seconds.std)}")
            rows.append([*(_show(r.values[f]) for f in self.fields), f"{r.done}/{r.total}", acc(r.test_acc),
                         acc(r.best_val_acc), time])
        return rows

    def render(self, width: int | None = 80, ascii_only: bool = False) -> list[str]:
        """Plain-text lines that fit `width`: the varied values are cut first, then time and best val go."""
        cells = self.cells(ascii_only)
        n = len(self.fields)
        natural = {i: max(len(row[i]) for row in cells) for i in range(len(cells[0]))}
        # a varied column narrows to 6 characters, its header too; the others keep their header's width
        minimum = {i: min(w, 6 if i < n else len(cells[0][i])) for i, w in natural.items()}
        widths = fit_columns(natural, minimum, width, 2, squeeze=tuple(range(n)), drop=(n + 3, n + 2))
        mark = "~" if ascii_only else "\u2026"

        def cut(text: str, w: int) -> str:
            return text if len(text) <= w else text[:max(w - len(mark), 0)] + mark

        return ["  ".join(cut(row[i], w).ljust(w) for i, w in widths.items()).rstrip() for row in cells]


def sweep_table(runs: Iterable[RunResult]) -> SweepTable:
    """One row per config (its runs grouped over seeds), the fields that differ as columns, best first."""
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(config_group(run.config), []).append(run)
    keys = list(groups)
    names = list(dict.fromkeys(name for k in keys for name, _ in k))  # every group's fields, in order
    fields = tuple(name for name in names if len({dict(k).get(name) for k in keys}) > 1)
    rows = []
    for key, members in groups.items():
        done = [m for m in members if m.done]
        best = max(done, key=lambda m: (m.test_acc is not None, m.test_acc or 0, m.best_val_acc or 0), default=None)
        rows.append(SweepRow(
            values={f: dict(key).get(f) for f in fields}, config=members[0].config, done=len(done), total=len(members),
            seeds=tuple(m.config.seed for m in done),
            best_val_acc=Stat.of([m.best_val_acc for m in done]), test_acc=Stat.of([m.test_acc for m in done]),
            seconds=Stat.of([m.seconds for m in done]), best_run_id=best.run_id if best else ""))

    def rank(row: SweepRow) -> tuple:
        if row.test_acc.mean is not None:
            return (0, -row.test_acc.mean, -(row.best_val_acc.mean or 0))
        if row.best_val_acc.mean is not None:
            return (1, -row.best_val_acc.mean)
        return (2,)

    return SweepTable(fields=fields, rows=tuple(sorted(rows, key=rank)))  # sorted() is stable: ties keep run order


def metric_by_field(table: SweepTable, field: str, metric: str | None = None) -> list[tuple[Any, float]]:
    """(value, metric) for a chart against one swept field: per value, the mean over its configs' means.

    `metric` is one of METRICS; by default the one the table sorts by. Values come sorted; configs
    without the metric yet are left out.
    """
    if field not in table.fields:
        raise SweepError(f"{_key(field)}: not varied in this sweep; choose one of {', '.join(table.fields) or 'none'}")
    metric = metric or table.sort_metric
    if metric not in METRICS:
        raise ValueError(f"metric: got {shown(metric)}; choose one of {', '.join(METRICS)}")
    by_value: dict[Any, list[float]] = {}
    for row in table.rows:
        mean = row.metric(metric).mean
        if mean is not None:
            by_value.setdefault(row.values[field], []).append(mean)
    pairs = [(value, statistics.fmean(means)) for value, means in by_value.items()]
    try:
        return sorted(pairs, key=lambda p: p[0])
    except TypeError:  # values of mixed kinds: keep the table's order
        return pairs
