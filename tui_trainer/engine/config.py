"""TrainConfig: every knob of a run in one frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

MODEL_NAMES = ("scratch-mlp", "sequential-mlp", "cnn")
DATASET_NAMES = ("fashion-mnist-mini", "mnist", "fashion-mnist", "kmnist", "cifar10")
INIT_NAMES = ("kaiming", "randn")
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
SCHEDULE_NAMES = ("constant", "cosine", "onecycle")
AUGMENT_NAMES = ("none", "flip")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """One or more bad fields; `errors` maps each field name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "fashion-mnist-mini"
    data_dir: str | None = None
    model: str = "scratch-mlp"
    hidden: tuple[int, ...] = (128, 64)
    init: str = "kaiming"
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.003
    optimizer: str = "adamw"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.01
    schedule: str = "onecycle"
    label_smoothing: float = 0.05
    # flip: random left-right mirroring of training images; it helps the CNN a little and the
    # small MLP not at all, and it is wrong for digits and kana, so it is off unless asked for.
    augment: str = "none"
    val_split: float = 0.1
    seed: int = 0
    device: str = "auto"
    # 0 keeps every training image; a smaller number makes quick experiments quick.
    max_train_samples: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        errors = _validate(self)
        if errors:
            raise ConfigError(errors)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                {key: f"{key}: unknown setting; known settings are {', '.join(sorted(known))}" for key in unknown}
            )
        return cls(**data)

    def to_toml(self) -> str:
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue  # TOML has no null; absence means the default
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> "TrainConfig":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError({"toml": f"config file is not valid TOML: {exc}"}) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError({"config": f"cannot read config file {path}: {exc.strerror}"}) from None
        return cls.from_toml(text)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")


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
        raise ConfigError({"preset": f"preset: unknown {name!r}; choose one of {', '.join(PRESETS)}"})
    base = base or TrainConfig()
    if name == "recommended":
        defaults = TrainConfig()
        keep = {"dataset", "data_dir", "device", "seed", "name", "max_train_samples", "model"}
        return TrainConfig(**{k: getattr(base if k in keep else defaults, k) for k in TrainConfig.__dataclass_fields__})
    return base.replace(**PRESETS[name])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON's string escapes are TOML's basic-string escapes; TOML also forbids a raw DEL
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate(cfg: TrainConfig) -> dict[str, str]:
    errors: dict[str, str] = {}

    def bad(name: str, allowed: str) -> None:
        errors[name] = f"{name}: got {getattr(cfg, name)!r}; {allowed}"

    def choice(name: str, options: tuple[str, ...]) -> None:
        if getattr(cfg, name) not in options:
            bad(name, f"choose one of {', '.join(options)}")

    choice("dataset", DATASET_NAMES)
    choice("model", MODEL_NAMES)
    choice("init", INIT_NAMES)
    choice("optimizer", OPTIMIZER_NAMES)
    choice("schedule", SCHEDULE_NAMES)
    choice("augment", AUGMENT_NAMES)
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, str):
        bad("data_dir", "must be a folder path")
    if (
        not isinstance(cfg.hidden, tuple)
        or not cfg.hidden
        or len(cfg.hidden) > 8
        or not all(_is_int(h) and 1 <= h <= 65536 for h in cfg.hidden)
    ):
        bad("hidden", "must be 1 to 8 layer sizes, each a whole number from 1 to 65536 (e.g. 128,64)")
    if not (_is_int(cfg.epochs) and 1 <= cfg.epochs <= 10_000):
        bad("epochs", "must be a whole number from 1 to 10000")
    if not (_is_int(cfg.batch_size) and 1 <= cfg.batch_size <= 65536):
        bad("batch_size", "must be a whole number from 1 to 65536")
    if not (_is_number(cfg.lr) and 0 < cfg.lr <= 10):
        bad("lr", "must be a number greater than 0 and at most 10 (e.g. 0.001)")
    if not (_is_number(cfg.momentum) and 0 <= cfg.momentum < 1):
        bad("momentum", "must be a number from 0 up to (not including) 1")
    if not isinstance(cfg.nesterov, bool):
        bad("nesterov", "must be true or false")
    elif cfg.nesterov and cfg.optimizer == "sgd" and not (_is_number(cfg.momentum) and cfg.momentum > 0):
        errors["nesterov"] = "nesterov: needs momentum greater than 0; set --momentum 0.9 or turn nesterov off"
    if not (_is_number(cfg.weight_decay) and 0 <= cfg.weight_decay <= 1):
        bad("weight_decay", "must be a number from 0 to 1")
    if not (_is_number(cfg.label_smoothing) and 0 <= cfg.label_smoothing < 1):
        bad("label_smoothing", "must be a number from 0 up to (not including) 1")
    if not (_is_number(cfg.val_split) and 0 <= cfg.val_split <= 0.5):
        bad("val_split", "must be a fraction from 0 to 0.5 (0 turns validation off)")
    if not (_is_int(cfg.seed) and 0 <= cfg.seed < 2**63):
        bad("seed", "must be a whole number of 0 or more")
    if not (isinstance(cfg.device, str) and _DEVICE_PATTERN.match(cfg.device)):
        bad("device", "choose auto, cpu, cuda, cuda:N or mps")
    if not (_is_int(cfg.max_train_samples) and cfg.max_train_samples >= 0):
        bad("max_train_samples", "must be a whole number of 0 (all) or more")
    if not isinstance(cfg.name, str) or len(cfg.name) > 200:
        bad("name", "must be text of at most 200 characters")
    return errors


def parse_hidden(text: str) -> tuple[int, ...]:
    """'128,64' -> (128, 64); raises ConfigError naming the field."""
    try:
        sizes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(
            {"hidden": f"hidden: got {text!r}; must be comma-separated whole numbers (e.g. 128,64)"}
        ) from None
    if not sizes:
        raise ConfigError({"hidden": f"hidden: got {text!r}; must be comma-separated whole numbers (e.g. 128,64)"})
    return sizes


CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig))
