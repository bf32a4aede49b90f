"""A model from the user's own file: `--model path/to/file.py:Name` or `--model package.module:Name`.

    config = ready(TrainConfig(model="lenet.py:LeNet", model_args={"width": 32}))   # read and checked
    model = build_model(config, (1, 28, 28), 10)                                  # from config.model_source

`Name` is a class or a factory function, called as every model is called (engine/registry.py):

    Name(image_shape=(C, H, W), num_classes=K, **model_args)  ->  an nn.Module whose forward gives logits (N, K)

The file is read once, when the run is made (`with_source`), and its text is kept in the run's config as
`model_source`: the run's record, each checkpoint and RunStarted (with its sha256) carry it, so resuming, forking,
evaluating or queueing the run, and each of its DDP ranks, build from that code, however the file changes later.
Only that one file is kept; what it imports comes from the Python path of the day.

`checked` builds the model and runs it once on a batch of 2 (forward, a loss and its backward) before anything is
recorded. Whatever goes wrong is one line, naming the file, the line where there is one, and what to fix: a
ModelFileError, which is the ConfigError of the `model` setting (the CLI exits 2 with it).

Nothing here imports torch until a model is built: `--help` and `runs` import this module for nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError, TrainConfig, applies
from .registry import DATASETS, MODELS

_MAX_SOURCE = 1_000_000
_CHECK_BATCH = 2


class ModelFileError(ConfigError):
    """A model file that cannot be read, built or run: one line naming the file (and line) and what to fix."""

    def __init__(self, message: str):
        super().__init__({"model": f"model: {message}"})


# -- the reference -------------------------------------------------------------------------------------------------
def split_reference(name: str) -> tuple[str, str]:
    """'path/to/file.py:Name' -> ('path/to/file.py', 'Name'); 'package.module:Name' -> ('package.module', 'Name')."""
    where, _, attribute = name.rpartition(":")
    return where.strip(), attribute


def is_file(where: str) -> bool:
    """A path (it ends in .py or has a folder in it) rather than a module's dotted name."""
    return where.endswith(".py") or "/" in where or os.sep in where


@functools.lru_cache(maxsize=64)
def shown_file(name: str) -> str:
    """The file as messages and tracebacks name it: the path given, or where the module is found (its dotted
    name as a path, where it is not)."""
    where, _ = split_reference(name)
    if is_file(where):
        return where
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError):
        spec = None
    return spec.origin if spec is not None and spec.origin else where.replace(".", "/") + ".py"


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def read_source(name: str) -> str:
    """The text of the file (or module) `name` points at, as it is now; ModelFileError saying what is wrong."""
    where, attribute = split_reference(name)
    if is_file(where):
        path = Path(where).expanduser()
        what = where
    else:
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError) as exc:
            raise ModelFileError(f"{where}: cannot find that module ({_said(exc)}); give a file path "
                                 f"(path/to/file.py:{attribute}) or a module on the Python path") from None
        if spec is None:
            raise ModelFileError(f"{where}: no module of that name on the Python path; give a file path "
                                 f"(path/to/file.py:{attribute}) or an importable module") from None
        if not (spec.origin and spec.origin.endswith(".py")):
            raise ModelFileError(f"{where}: module has no Python source file to keep with the run; give a .py file")
        path, what = Path(spec.origin), spec.origin
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"{what}: no such file (looked from {os.getcwd()}); give the path of your model file, "
                             f"as in --model path/to/file.py:{attribute}") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{what}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read it ({exc.strerror or exc}); give a readable .py file") from None
    if len(source) > _MAX_SOURCE:
        raise ModelFileError(f"{what}: is {len(source):,} characters; a model file kept with a run may have at most "
                             f"{_MAX_SOURCE:,}: move the rest into a module it imports")
    return source


def with_source(config: TrainConfig) -> TrainConfig:
    """`config` with its model file's text kept in it, read now where it has none yet."""
    if not applies("model_source", config) or config.model_source:
        return config
    return config.replace(model_source=read_source(config.model))


# -- building ------------------------------------------------------------------------------------------------------
_FACTORIES: dict[tuple[str, str], Any] = {}  # (model, source's sha256) -> the user's class or function


def factory_of(name: str, source: str) -> Callable[..., Any]:
    """The factory the registry calls for `name` built from `source` (the file's, read now, when empty): the
    user's class or function, each of whose failures is a ModelFileError naming the file and line."""
    source = source or read_source(name)
    key = (name, source_sha256(source))
    if key not in _FACTORIES:
        _FACTORIES[key] = _user_factory(name, source)
    user = _FACTORIES[key]

    def build(image_shape: tuple[int, int, int], num_classes: int, **model_args: Any) -> Any:
        return _call(name, source, user, image_shape, num_classes, model_args)

    return build


def _user_factory(name: str, source: str) -> Any:
    """Run the source as a module of its own, then find `Name` in it."""
    from torch import nn

    where, attribute = split_reference(name)
    filename = shown_file(name)
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ModelFileError(f"{filename}:{exc.lineno}: syntax error: {exc.msg}; fix the file") from None
    except ValueError as exc:  # a NUL byte
        raise ModelFileError(f"{filename}: cannot be compiled ({exc}); fix the file") from None
    module_name = f"scratch_tui_model_{source_sha256(source)[:16]}"
    module = types.ModuleType(module_name)
    module.__file__ = filename
    if not is_file(where):  # its relative imports, from its own package (itself, for a package's __init__)
        module.__package__ = where.rpartition(".")[0]
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations is not None:
            module.__package__, module.__path__ = where, list(spec.submodule_search_locations)
    sys.modules[module_name] = module  # a dataclass or pickle in it looks itself up there
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise ModelFileError(f"{_at(filename, exc)}: running the file raised {_said(exc)}; fix the file") from None
    if attribute not in module.__dict__:
        defined = [n for n, v in vars(module).items() if not n.startswith("_")
                   and (inspect.isclass(v) or inspect.isfunction(v)) and getattr(v, "__module__", "") == module_name]
        hint = (f"it defines {', '.join(defined)}: name one of them after the colon" if defined
                else f"define a class or function {attribute} in it")
        raise ModelFileError(f"{filename}: has no {attribute}; {hint}")
    factory = module.__dict__[attribute]
    line = _line_of(source, attribute)
    at = f"{filename}:{line}" if line else filename
    if inspect.isclass(factory):
        if not issubclass(factory, nn.Module):
            raise ModelFileError(f"{at}: {attribute} is a class but not an nn.Module; subclass torch.nn.Module, or "
                                 f"give a function that returns one")
    elif not callable(factory):
        raise ModelFileError(f"{at}: {attribute} is {_a(type(factory).__name__)}, not an nn.Module class or a function "
                             f"that returns one; name the model's class or factory after the colon")
    return factory


def _call(name: str, source: str, user: Any, image_shape: tuple[int, int, int], num_classes: int,
          model_args: dict[str, Any]) -> Any:
    from torch import nn

    filename, (_, attribute) = shown_file(name), split_reference(name)
    line = _line_of(source, attribute)
    at = f"{filename}:{line}" if line else filename
    call = _call_text(attribute, image_shape, num_classes, model_args)
    try:
        model = user(image_shape=tuple(image_shape), num_classes=num_classes, **model_args)
    except Exception as exc:
        fix = f"fix {attribute} or the model arguments" if model_args else f"fix {attribute}"
        raise ModelFileError(f"{_at(filename, exc, at)}: {call} raised {_said(exc)}; {fix}") from None
    if not isinstance(model, nn.Module):
        raise ModelFileError(f"{at}: {call} returned {_a(type(model).__name__)}, not an nn.Module; return the model")
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelFileError(f"{at}: {attribute} has no trainable parameters; create its weights in __init__ as "
                             f"nn.Parameter or as layers such as nn.Linear")
    return model


# -- the check -----------------------------------------------------------------------------------------------------
_CHECKED: set[tuple[Any, ...]] = set()


def checked(config: TrainConfig) -> TrainConfig:
    """`config` once its model is built and run on a batch of 2 random images of its dataset's shape: the forward
    must give logits (2, K), and a loss of them must backpropagate. ModelFileError else; the config as it was."""
    if not applies("model_source", config):
        return config
    config = with_source(config)
    dataset = DATASETS.entry(config.dataset)
    shape, classes = tuple(dataset.image_shape), len(dataset.classes)
    key = (config.model, source_sha256(config.model_source), json.dumps(config.to_dict()["model_args"]), shape,
           classes)
    if key in _CHECKED:
        return config
    import torch
    import torch.nn.functional as F

    filename, (_, attribute) = shown_file(config.model), split_reference(config.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MODELS.entry(config.model).build(config, shape, classes)
        model.train()
        line = _forward_line(model, filename) or _line_of(config.model_source, attribute)
        at = f"{filename}:{line}" if line else filename
        batch = (_CHECK_BATCH, *shape)
        x = torch.randn(batch)
        try:
            logits = model(x)
        except Exception as exc:
            raise ModelFileError(f"{_at(filename, exc, at)}: forward on a batch of shape {_shape(batch)} raised "
                                 f"{_said(exc)}; fix forward") from None
        if not isinstance(logits, torch.Tensor):
            raise ModelFileError(f"{at}: forward returned {_a(type(logits).__name__)}; it must return one tensor of "
                                 f"logits of shape ({_CHECK_BATCH}, {classes}), a score per class")
        if tuple(logits.shape) != (_CHECK_BATCH, classes):
            raise ModelFileError(f"{at}: forward returned shape {_shape(logits.shape)} for a batch of shape "
                                 f"{_shape(batch)}; it must return logits of shape ({_CHECK_BATCH}, {classes}): "
                                 f"a score for each of the {classes} classes")
        if not logits.is_floating_point():
            raise ModelFileError(f"{at}: forward returned {logits.dtype} values; logits must be floating point")
        try:
            F.cross_entropy(logits.float(), torch.zeros(_CHECK_BATCH, dtype=torch.long)).backward()
        except Exception as exc:
            raise ModelFileError(f"{_at(filename, exc, at)}: backpropagating through forward raised {_said(exc)}; "
                                 f"keep the logits connected to the parameters (no .detach(), no in-place "
                                 f"changes of what autograd needs)") from None
    _CHECKED.add(key)
    return config


def ready(config: TrainConfig, check: bool = True) -> TrainConfig:
    """`config` with its model file's source kept (where its model is one) and, with `check`, checked."""
    if not applies("model_source", config):
        return config
    config = with_source(config)
    return checked(config) if check else config


def ready_all(configs: list[TrainConfig]) -> list[TrainConfig]:
    """`ready` for the runs of a sweep or a queue: each model file read once, so that every run keeps the same
    source, and each model (with its arguments) checked once."""
    sources: dict[str, str] = {}
    out = []
    for config in configs:
        if applies("model_source", config) and not config.model_source:
            if config.model not in sources:
                sources[config.model] = read_source(config.model)
            config = config.replace(model_source=sources[config.model])
        out.append(ready(config))
    return out


# -- saying where --------------------------------------------------------------------------------------------------
def _line_of(source: str, attribute: str) -> int | None:
    """The line where the module's top level defines `attribute`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    line = None
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attribute:
            line = node.lineno
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == attribute for t in targets):
                line = node.lineno
    return line


def _forward_line(model: Any, filename: str) -> int | None:
    """Where the model's forward is defined, when that is in the user's file."""
    code = getattr(getattr(type(model), "forward", None), "__code__", None)
    return code.co_firstlineno if code is not None and code.co_filename == filename else None


def _at(filename: str, exc: BaseException, fallback: str | None = None) -> str:
    """'file.py:LINE' of the deepest frame of `exc` in the user's file, else `fallback` (or the file alone)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    if frames:
        return f"{filename}:{frames[-1].lineno}"
    if isinstance(exc, SyntaxError) and exc.filename == filename and exc.lineno:
        return f"{filename}:{exc.lineno}"
    return fallback or filename


def _said(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > 200:
        first = first[:199] + "…"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ")"


def _call_text(attribute: str, image_shape: tuple[int, ...], num_classes: int, model_args: dict[str, Any]) -> str:
    args = [f"image_shape={_shape(image_shape)}", f"num_classes={num_classes}"]
    args += [f"{k}={v!r}" for k, v in model_args.items()]
    return f"{attribute}({', '.join(args)})"


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
