"""TrainConfig: every knob of a run in one frozen, validated dataclass.

Each field carries a Setting (help, form label and control, choices or range, when it applies).
The train flags, the equivalent command line, the setup form, TOML and validation all read SETTINGS,
so a knob is declared once, here.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import keyword
import math
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .registry import DATASETS, MODELS
from .user_text import shown, shown_path, shown_text

INIT_NAMES = ("kaiming", "randn")
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
SCHEDULE_NAMES = ("constant", "cosine", "onecycle", "plateau")
MONITOR_NAMES = ("val_loss", "val_acc")  # what early stopping, restore_best and plateau watch
AUGMENT_NAMES = ("none", "flip")
STEP_MODES = ("auto", "eager", "cuda-graph")
PRECISIONS = ("auto", "fp32", "bf16")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DEVICES = "auto, cpu, cuda, cuda:N or mps"
_MAX_LAYERS, _MAX_WIDTH, _MAX_NAME = 8, 65536, 200
_MAX_MODEL_ARGS, _MAX_SOURCE = 64, 1_000_000
_GIVEN_TO_EVERY_MODEL = ("image_shape", "num_classes")
_INT64 = 2**63  # torch stores seeds and counts as int64


@dataclass(frozen=True)
class Setting:
    """How one TrainConfig field is offered and checked; name, type and default come from the field itself."""

    help: str
    label: str
    # input, select, radio or switch; left empty, the type and choices pick it. "none": nobody types it (no flag,
    # no form row): the engine fills it in
    control: str = ""
    choices: Any = ()  # a tuple of values, or a registry (engine/registry.py): its names, asked each time
    low: float | None = None
    high: float | None = None
    bounds: str = "[]"  # interval notation: "(]" leaves out low, "[)" leaves out high
    note: str = ""  # said after the range when a value is refused
    check: Callable[[Any], bool] | None = None  # for what a type, choices and a range cannot say
    rule: str = ""  # what `check` accepts, said when a value is refused
    # (field, values) under which the setting matters; values may be a registry's Subset (the models reading it)
    only_when: tuple[str, Any] | None = None
    shown_default: str = ""  # --help's default where the value alone says little
    metavar: str | None = None
    flag_word: str = ""  # the flag's word where it is not the name's: model_args is --model-arg, given per item
    name: str = ""
    type: Any = None
    default: Any = None

    @property
    def flag(self) -> str:
        return "--" + (self.flag_word or self.name).replace("_", "-")

    @property
    def typed(self) -> bool:
        """Whether a person gives it (a flag, a form row); else the engine fills it in."""
        return self.control != "none"

    def also(self) -> str:
        """What it takes besides its listed choices, said ('FILE.py:NAME or package.module:NAME'); '' for none."""
        also = getattr(self.choices, "also", None)
        return also() if also else ""


def _setting(default: Any, **meta: Any) -> Any:
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata={"setting": Setting(**meta)})
    return dataclasses.field(default=default, metadata={"setting": Setting(**meta)})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shape(length: int) -> Callable[[Any], bool]:
    """Unset (an empty tuple), or `length` whole numbers from 1 to 4096: an image's C,H,W or H,W."""
    return lambda value: isinstance(value, tuple) and (
        not value or (len(value) == length and all(_is_int(v) and 1 <= v <= 4096 for v in value)))


def _layer_sizes(value: Any) -> bool:
    return (isinstance(value, tuple) and 1 <= len(value) <= _MAX_LAYERS
            and all(_is_int(h) and 1 <= h <= _MAX_WIDTH for h in value))


def _plain(value: Any, depth: int = 0) -> bool:
    """A model argument's value: a number, text, true/false, or a list of them (TOML and JSON keep each)."""
    if isinstance(value, bool) or _is_int(value):
        return not _is_int(value) or abs(value) < _INT64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= 10_000
    if isinstance(value, tuple):
        return depth < 4 and len(value) <= 10_000 and all(_plain(v, depth + 1) for v in value)
    return False


def _model_args(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) <= _MAX_MODEL_ARGS
            and all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)
                    and k not in _GIVEN_TO_EVERY_MODEL and _plain(v) for k, v in value.items()))


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down: a model argument read back from JSON or TOML equals the one given."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


_SOURCE_MODELS = ("model", MODELS.where(lambda entry: entry.keeps_source))
_SGD = ("optimizer", ("sgd",))
_PLATEAU = ("schedule", ("plateau",))


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = _setting("fashion-mnist-mini", label="Dataset", control="radio", choices=DATASETS,
                            help="images to train on; a set not on disk yet downloads on first use "
                                 "(fashion-mnist-mini ships with the package)")
    # A dataset of the user's (a folder, .npz or CSV) is converted once to one image shape (engine/user_data.py).
    image_shape: tuple[int, ...] = _setting(
        (), label="Image shape", only_when=("dataset", DATASETS.reading("image_shape")), metavar="C,H,W",
        shown_default="inferred", check=_shape(3), rule="must be C,H,W, each from 1 to 4096 (e.g. 1,28,28), or empty",
        help="how your data's images are read: channels, height, width (needed for a CSV whose rows are not "
             "square); inferred when empty")
    resize: tuple[int, ...] = _setting(
        (), label="Resize to", only_when=("dataset", DATASETS.reading("resize")), metavar="H,W",
        shown_default="no resizing", check=_shape(2), rule="must be H,W, each from 1 to 4096 (e.g. 28,28), or empty",
        help="scale every image of your data to this height and width (for images of mixed sizes)")
    model: str = _setting("scratch-mlp", label="Model", control="radio", choices=MODELS, metavar="MODEL",
                          help="the network to train")
    hidden: tuple[int, ...] = _setting(
        (128, 64), label="Hidden sizes", only_when=("model", MODELS.reading("hidden")), metavar="SIZES",
        help="MLP hidden layer sizes, e.g. 128,64", check=_layer_sizes,
        rule=f"must be 1 to {_MAX_LAYERS} layer sizes, each a whole number from 1 to {_MAX_WIDTH} (e.g. 128,64)")
    init: str = _setting("kaiming", label="Init", choices=INIT_NAMES, only_when=("model", MODELS.reading("init")),
                         help="MLP weight init: kaiming (scaled) or randn (unscaled N(0,1))")
    # A model from a file is called as Name(image_shape=(C, H, W), num_classes=K, **model_args).
    model_args: dict[str, Any] = _setting(
        {}, label="Model args", only_when=("model", MODELS.reading("model_args")), metavar="KEY=VALUE",
        flag_word="model_arg", shown_default="none", check=_model_args,
        help="an argument for your model's class or function, repeatable (e.g. width=32); VALUE is read as a "
             "Python literal, else taken as text; in TOML, a [model_args] table",
        rule="must be NAME=VALUE pairs (e.g. width=32, act='relu'): each NAME a Python identifier other than "
             "image_shape and num_classes, each VALUE a number, text, true/false or a list of them")
    # The model file's code, read once when the run is made and kept with it: resuming, forking, evaluating or
    # queueing it, and each of its DDP ranks, builds from this text, never from the file as it is now.
    model_source: str = _setting(
        "", label="Model source", control="none", only_when=_SOURCE_MODELS,
        help="the model file's source, kept with the run (read from --model's file)",
        check=lambda v: isinstance(v, str) and len(v) <= _MAX_SOURCE,
        rule=f"must be the model file's text, at most {_MAX_SOURCE:,} characters")
    epochs: int = _setting(15, label="Epochs", low=1, high=10_000, help="passes over the training images")
    batch_size: int = _setting(128, label="Batch size", low=1, high=65536, help="images per optimizer step")
    lr: float = _setting(0.003, label="Learning rate", low=0, high=10, bounds="(]", note="(e.g. 0.001)",
                         help="learning rate; the peak rate for onecycle")
    optimizer: str = _setting("adamw", label="Optimizer", choices=OPTIMIZER_NAMES,
                              help="how gradients move the weights")
    momentum: float = _setting(0.9, label="Momentum", low=0, high=1, bounds="[)", only_when=_SGD,
                               help="SGD momentum")
    nesterov: bool = _setting(False, label="Nesterov", only_when=_SGD, help="Nesterov momentum for SGD")
    weight_decay: float = _setting(0.01, label="Weight decay", low=0, high=1,
                                   help="weight decay (decoupled from the gradient for adamw)")
    schedule: str = _setting("onecycle", label="LR schedule", choices=SCHEDULE_NAMES,
                             help="how the learning rate moves over the run; plateau: cut it when the monitored "
                                  "metric stops improving")
    # As Keras's and torch's ReduceLROnPlateau: a multiplier (0.1 cuts the lr tenfold), a patience and a floor.
    plateau_patience: int = _setting(2, label="Plateau patience", low=1, high=10_000, only_when=_PLATEAU,
                                     metavar="EPOCHS", help="epochs without improvement before the lr is cut")
    plateau_factor: float = _setting(0.1, label="Plateau factor", low=0, high=1, bounds="()", only_when=_PLATEAU,
                                     metavar="FACTOR", note="(0.1 cuts the lr tenfold)",
                                     help="what the lr is multiplied by at a plateau")
    min_lr: float = _setting(1e-6, label="Min LR", low=0, high=10, only_when=_PLATEAU, metavar="LR",
                             help="the plateau schedule never cuts the lr below this")
    label_smoothing: float = _setting(0.05, label="Label smoothing", low=0, high=1, bounds="[)",
                                      help="share of each target spread over the other classes")
    # flip: random left-right mirroring of training images; it helps the CNN a little and the
    # small MLP not at all, and it is wrong for digits and kana, so it is off unless asked for.
    augment: str = _setting("none", label="Augment", choices=AUGMENT_NAMES,
                            help="flip: mirror training images at random; for clothes and CIFAR-10, not digits")
    val_split: float = _setting(0.1, label="Validation split", low=0, high=0.5, note="(0 turns validation off)",
                                help="fraction of the training images held out for validation; 0 for none")
    early_stopping: int = _setting(0, label="Early stopping", low=0, high=10_000, metavar="PATIENCE",
                                   note="(epochs without improvement; 0 turns early stopping off)",
                                   help="stop after PATIENCE epochs without improvement of --monitor; 0 for never")
    monitor: str = _setting("val_loss", label="Monitor", choices=MONITOR_NAMES,
                            help="the validation metric early stopping, --restore-best and plateau watch")
    restore_best: bool = _setting(False, label="Restore best",
                                  help="evaluate the weights of the best epoch by --monitor, not the last")
    seed: int = _setting(0, label="Seed", low=0, help="seeds the init, the split and the shuffling")
    device: str = _setting("auto", label="Device", control="radio", help=f"where to train: {_DEVICES}",
                           check=lambda v: isinstance(v, str) and bool(_DEVICE_PATTERN.match(v)),
                           rule=f"choose {_DEVICES}")
    # One process per GPU, each training its share of every batch (engine/distributed.py): the batch size is
    # the global one, so 2 GPUs and 1 follow the same steps. The launchers read it (cli/train.py, runs/spawn.py
    # start torch.distributed.run); the loop runs as whichever rank it was started as.
    gpus: int = _setting(1, label="GPUs", low=1, high=64, metavar="N",
                         help="train on N GPUs of this machine, one process each (DDP through torchrun); "
                              "1 trains in one process")
    # auto picks by measurement (bench/run_all.py): on a GPU a step this small is bound by kernel
    # launches, and replaying it as one CUDA graph is several times faster.
    step_mode: str = _setting("auto", label="Step", choices=STEP_MODES,
                              help="auto: one CUDA graph per step on a GPU, eager elsewhere; "
                                   "eager: op by op; cuda-graph: always a graph (GPU only)")
    precision: str = _setting("auto", label="Precision", choices=PRECISIONS,
                              help="auto: bf16 autocast and channels_last for the CNN on a GPU, fp32 "
                                   "elsewhere; fp32; bf16: bf16 autocast")
    # The thread count orders the float sums: pinned when the run starts (engine/threads.py) and recorded, so a
    # resume, a fork and the repeat line keep it.
    threads: int = _setting(0, label="CPU threads", low=0, high=1024, metavar="N", note="(0: auto)",
                            shown_default="0 (the cores this process may use)",
                            help="CPU threads torch computes with; 0: the cores this process may use, pinned "
                                 "and recorded when the run starts, so a repeat computes the same sums")
    # The probe runs eagerly beside the step (engine/probe.py): at step 0, every N steps of the first 100, then
    # once an epoch, each time only if it stays within 3% of the training time (probe.affordable).
    probe_every: int = _setting(25, label="Probe every", low=0, high=1_000_000, metavar="N", note="(0: off)",
                                help="measure every layer on a fixed batch at step 0, every N steps of the first "
                                     "100, then once an epoch, within 3% of the training time (the Layers view, "
                                     "the init check); 0 turns it off")
    # 0 keeps every training image; a smaller number makes quick experiments quick.
    max_train_samples: int = _setting(0, label="Max train images", low=0, note="(0: all)", metavar="N",
                                      help="train on at most N images; 0 for all")
    name: str = _setting("", label="Run name", shown_default="unnamed", help="a name for this run",
                         check=lambda v: isinstance(v, str) and len(v) <= _MAX_NAME,
                         rule=f"must be text of at most {_MAX_NAME} characters")
    data_dir: str | None = _setting(None, label="Data folder", metavar="DIR", help="where full datasets live",
                                    shown_default="$SCRATCH_TUI_DATA or the user cache",
                                    check=lambda v: v is None or isinstance(v, str), rule="must be a folder path")
    # Each epoch's checkpoint is a hard link of the last one (no copy); the last N and the best stay, so a fork
    # can start from any of them, and a long run does not fill the disk.
    keep_checkpoints: int = _setting(3, label="Keep checkpoints", low=1, high=10_000, metavar="N",
                                     help="epoch checkpoints a recorded run keeps besides its best; older ones "
                                          "are deleted as new ones are saved")
    # An exponential moving average of the weights, updated after every step on the device (inside the CUDA graph on
    # the graph path): each epoch validates both, the test set is evaluated on the average, checkpoints keep it.
    ema: float = _setting(0.0, label="Weight EMA", low=0, high=1, bounds="[)", metavar="DECAY",
                          note="(0 turns it off; e.g. 0.999)",
                          help="keep an exponential moving average of the weights with this decay per step, "
                               "validated each epoch and evaluated on the test set; 0 for none")

    def __post_init__(self) -> None:
        for name, s in SETTINGS.items():  # JSON and TOML give lists: the config holds tuples
            if s.type == tuple[int, ...] and isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.model_args, Mapping):
            object.__setattr__(self, "model_args", {k: _frozen(v) for k, v in self.model_args.items()})
        if self.model_source and not applies("model_source", self):
            object.__setattr__(self, "model_source", "")  # only a model from a file keeps its source
        errors = _validate(self)
        if errors:
            raise ConfigError(errors)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes`; another model leaves the kept source behind (it was the old model's)."""
        if changes.get("model", self.model) != self.model and "model_source" not in changes:
            changes["model_source"] = ""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name, s in SETTINGS.items():
            if s.type == tuple[int, ...]:
                data[name] = list(data[name])
        data["model_args"] = json.loads(json.dumps(self.model_args))  # tuples as lists, as JSON and TOML hold them
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        unknown = sorted(set(data) - set(SETTINGS))
        if unknown:  # one message, naming the first few: a file of a thousand typos is still one line
            named = ", ".join(shown_text(key, 40) or '""' for key in unknown[:3])
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise ConfigError({unknown[0]: f"{named}{more}: unknown setting{'s' if len(unknown) > 1 else ''}; known "
                                           f"settings are {', '.join(sorted(SETTINGS))}"})
        return cls(**data)

    def to_toml(self) -> str:
        data = self.to_dict()
        # TOML has no null; absence means the default (and so for no model arguments and no kept source)
        return "".join(f"{_toml_key(name)} = {_toml_value(data[name])}\n" for name in SETTINGS
                       if data[name] is not None and data[name] not in ({}, "") or name == "name")

    @classmethod
    def from_toml(cls, text: str, source: str = "config file") -> "TrainConfig":
        return cls.from_dict(toml_data(text, source))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        source = f"config file {shown_path(path)}"
        return cls.from_toml(read_text_file(path, source), source)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")


_MAX_FILE = 10_000_000  # bytes of a config or sweep file: far more than any holds, far less than /dev/zero


def read_text_file(path: str | Path, source: str) -> str:
    """A config or sweep file's text; a ConfigError that names it (`source`) and says what to do."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise ConfigError({"config": f"cannot read {source}: {exc.strerror or exc}"}) from None
    except ValueError:  # a NUL in the path
        raise ConfigError({"config": f"cannot read {source}: the path holds a NUL character"}) from None
    if len(data) > _MAX_FILE:
        raise ConfigError({"config": f"cannot read {source}: it is over {_MAX_FILE // 1_000_000} MB, more than a "
                                     f"config holds; check the path"})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError({"config": f"cannot read {source}: it is not UTF-8 text; save it as UTF-8"}) from None


def toml_data(text: str, source: str = "config file") -> dict[str, Any]:
    """TOML text as a dict; a ConfigError naming `source` for anything tomllib cannot read."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError({"toml": f"{source} is not valid TOML: {exc}"}) from None
    except RecursionError:
        raise ConfigError({"toml": f"{source} nests lists or tables too deeply to read; a config holds plain "
                                   f"values and one [model_args] table"}) from None
    except ValueError as exc:  # a whole number of over 4,300 digits
        raise ConfigError({"toml": f"{source} holds a value TOML cannot read ({shown_text(str(exc))}); "
                                   f"fix that value"}) from None


def _completed(field: dataclasses.Field, hint: Any) -> Setting:
    meta: Setting = field.metadata["setting"]
    control = meta.control or ("switch" if hint is bool else "select" if meta.choices else "input")
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return dataclasses.replace(meta, name=field.name, type=hint, default=default, control=control)


_HINTS = typing.get_type_hints(TrainConfig)
SETTINGS: dict[str, Setting] = {f.name: _completed(f, _HINTS[f.name]) for f in dataclasses.fields(TrainConfig)}


def applies(name: str, config: TrainConfig | Mapping[str, Any]) -> bool:
    """Whether a setting matters given the others: momentum only for SGD, hidden sizes and init only for the
    models built from them (their registry entries say which)."""
    when = SETTINGS[name].only_when
    if when is None:
        return True
    field, values = when
    value = config[field] if isinstance(config, Mapping) else getattr(config, field)
    return value in values


def allowed(name: str) -> str:
    """What a setting accepts, as said after "name: got X; "."""
    s = SETTINGS[name]
    if s.choices:
        also = s.also()
        return f"choose one of {', '.join(s.choices)}" + (f", or give {also}" if also else "")
    if s.type is bool:
        return "must be true or false"
    if s.type not in (int, float):
        return s.rule
    if s.high is None:
        span = f"of {s.low} or more"
    elif s.bounds == "(]":
        span = f"greater than {s.low} and at most {s.high}"
    elif s.bounds == "[)":
        span = f"from {s.low} up to (not including) {s.high}"
    elif s.bounds == "()":
        span = f"between {s.low} and {s.high}, neither included"
    else:
        span = f"from {s.low} to {s.high}"
    noun = "whole number" if s.type is int else "number"
    return f"must be a {noun} {span}" + (f" {s.note}" if s.note else "")


def _accepts(s: Setting, value: Any) -> bool:
    if s.choices:
        return value in s.choices
    if s.type is bool:
        return isinstance(value, bool)
    if s.type is int:
        if not (_is_int(value) and value < _INT64):
            return False
    elif s.type is float:
        if not _is_number(value):
            return False
    else:
        return s.check(value)
    above = s.low is None or (value > s.low if s.bounds[0] == "(" else value >= s.low)
    below = s.high is None or (value < s.high if s.bounds[1] == ")" else value <= s.high)
    return above and below


def field_error(name: str, value: Any) -> str | None:
    """The message for a value the setting refuses on its own, or None."""
    if _accepts(SETTINGS[name], value):
        return None
    too_big = ", and below 2**63" if _is_int(value) and abs(value) >= _INT64 and SETTINGS[name].type is int else ""
    return f"{name}: got {shown(value)}; {allowed(name)}{too_big}"


def _validate(cfg: TrainConfig) -> dict[str, str]:
    errors = {name: message for name in SETTINGS if (message := field_error(name, getattr(cfg, name)))}
    if ("nesterov" not in errors and cfg.nesterov and applies("nesterov", cfg)
            and not (_is_number(cfg.momentum) and cfg.momentum > 0)):
        errors["nesterov"] = "nesterov: needs momentum greater than 0; set --momentum 0.9 or turn nesterov off"
    if "gpus" not in errors and "device" not in errors and cfg.gpus > 1 and cfg.device not in ("auto", "cuda"):
        errors["gpus"] = (f"gpus: {cfg.gpus} processes need --device auto or cuda (each rank takes the GPU of its "
                          f"number), got {cfg.device}")
    if "val_split" not in errors and cfg.val_split == 0:
        # each of these watches a validation metric, which a run without a validation split has not got
        watching = {"early_stopping": ("early stopping", _is_int(cfg.early_stopping) and cfg.early_stopping > 0),
                    "restore_best": ("restoring the best epoch", cfg.restore_best is True),
                    "schedule": ("the plateau schedule", cfg.schedule == "plateau")}
        for name, (what, asked) in watching.items():
            if asked and name not in errors:
                errors[name] = f"{name}: {what} needs a validation split: set --val-split above 0"
    return errors


_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def from_text(name: str, text: str) -> Any:
    """A value as typed in the form or on the command line; a ConfigError names the field."""
    kind = SETTINGS[name].type
    if kind == tuple[int, ...]:
        return parse_hidden(text) if name == "hidden" else parse_sizes(name, text, SETTINGS[name].metavar)
    if kind == dict[str, Any]:
        return parse_model_args(text)
    if kind is bool:
        word = text.strip().lower()
        if word not in _BOOL_WORDS:
            raise ConfigError({name: f"{name}: got {shown(text)}; must be true or false (or yes/no, 1/0)"})
        return _BOOL_WORDS[word]
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ConfigError({name: f"{name}: got {shown(text)}; must be a {noun}"}) from None
    if kind == str | None:
        return text or None
    return text


def to_text(value: Any) -> str:
    """A value as the form and the command line show it; from_text reads it back."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(model_arg_text(k, v) for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


PRESETS: dict[str, dict[str, Any]] = {
    "recommended": {},
    # The classic tutorial: unscaled randn init, plain SGD, no schedule.
    "tutorial": {
        "model": "scratch-mlp",
        "hidden": (128, 64),
        "init": "randn",
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
        "schedule": "constant",
        "label_smoothing": 0.0,
        "batch_size": 64,
        "epochs": 15,
    },
}


def preset(name: str, base: TrainConfig | None = None) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError({"preset": f"preset: unknown {shown(name)}; choose one of {', '.join(PRESETS)}"})
    base = base or TrainConfig()
    if name == "recommended":
        defaults = TrainConfig()
        keep = {"dataset", "data_dir", "device", "seed", "name", "max_train_samples", "model", "model_args",
                "model_source"}
        chosen = TrainConfig(**{k: getattr(base if k in keep else defaults, k) for k in SETTINGS})
        return chosen.replace(**MODELS.entry(chosen.model).recommended)
    return base.replace(**PRESETS[name])


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON's string escapes are TOML's basic-string escapes; TOML also forbids a raw DEL
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def parse_hidden(text: str) -> tuple[int, ...]:
    """'128,64' -> (128, 64); raises ConfigError naming the field (an empty item, as in 128,,64, is a typo)."""
    parts = text.replace(" ", "").split(",")
    if not all(part.isdigit() and part.isascii() and len(part) < 1000 for part in parts):
        raise ConfigError({"hidden": f"hidden: got {shown(text)}; must be comma-separated whole numbers, none "
                                     f"empty (e.g. 128,64)"})
    return tuple(int(part) for part in parts)


def parse_sizes(name: str, text: str, shape: str | None) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28), '' -> () (not set); a ConfigError names the field and the shape it takes."""
    parts = text.replace(" ", "").split(",")
    if parts == [""]:
        return ()
    if not all(part.isdigit() and part.isascii() and len(part) < 1000 for part in parts):
        raise ConfigError({name: f"{name}: got {shown(text)}; must be {shape} as whole numbers, none empty, or "
                                 f"nothing"})
    return tuple(int(part) for part in parts)


def parse_model_value(text: str) -> Any:
    """A model argument's value as typed: a Python literal (32, 0.5, 'relu', (64, 32), True), else the text."""
    try:
        return _frozen(ast.literal_eval(text.strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_model_arg(text: str) -> tuple[str, Any]:
    """'width=32' -> ('width', 32), as --model-arg gives one; raises ConfigError naming model_args."""
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not key.isidentifier() or keyword.iskeyword(key):
        raise ConfigError({"model_args": f"model_args: got {shown(text)}; give NAME=VALUE, NAME a Python identifier "
                                         f"(e.g. width=32)"})
    return key, parse_model_value(value)


def parse_model_args(text: str) -> dict[str, Any]:
    """'width=32, act=relu' -> {'width': 32, 'act': 'relu'} (the form's text; to_text writes it)."""
    if not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        call = None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ConfigError({"model_args": f"model_args: got {shown(text)}; give NAME=VALUE pairs separated by commas "
                                         f"(e.g. width=32, act='relu')"})
    source = f"f({text})"
    return {k.arg: parse_model_value(ast.get_source_segment(source, k.value) or "") for k in call.keywords}


def model_arg_text(key: str, value: Any) -> str:
    """'width=32', as --model-arg takes it back: text bare where it reads back as the same text, else quoted."""
    if isinstance(value, str) and value.isidentifier() and parse_model_value(value) == value:
        return f"{key}={value}"
    return f"{key}={value!r}"
