"""The user's model files as setup offers them: found by reading, imported only when chosen.

    found = find_models([Path.cwd(), models_dir])        # ast only: nothing is imported
    problem = model_refused("net.py:Net", folders)       # '' where the app may import it, else one line
    look = inspect_model(config)                          # in a worker thread: checked, then a layer table

A model is a class deriving from nn.Module (`nn.Module`, `torch.nn.Module` or `Module`) or a top-level function
whose parameters include image_shape and num_classes; its keyword parameters with literal defaults become the
form's fields, typed from their annotations or defaults. Under `scratch-tui serve` the person choosing may be
remote, so the app imports model files only from inside the working directory or `--models-dir`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..engine.config import TrainConfig
from ..engine.model_file import is_file, read_source, source_sha256, split_reference
from .paths import inside

_MAX_FILE_BYTES = 1_000_000
_MAX_FILES = 200
_KINDS = ("int", "float", "bool", "str", "tuple")
_GIVEN = ("self", "image_shape", "num_classes")


@dataclass(frozen=True)
class ModelArg:
    name: str
    default: Any
    kind: str  # int, float, bool, str or tuple


@dataclass(frozen=True)
class FoundModel:
    reference: str  # what --model takes: "net.py:Net", "/abs/models/lenet.py:LeNet"
    args: tuple[ModelArg, ...] = field(default_factory=tuple)


# -- finding -------------------------------------------------------------------------------------------------------
def _is_module_base(base: ast.expr) -> bool:
    if isinstance(base, ast.Name):
        return base.id == "Module"
    return isinstance(base, ast.Attribute) and base.attr == "Module"


def _kind(annotation: ast.expr | None, default: Any) -> str | None:
    if annotation is not None:
        node = annotation.value if isinstance(annotation, ast.Subscript) else annotation
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        name = {"Tuple": "tuple", "list": "tuple", "List": "tuple"}.get(name, name)
        if name in _KINDS:
            return name
    if isinstance(default, bool):
        return "bool"
    for kind in (int, float, str, tuple, list):
        if isinstance(default, kind):
            return "tuple" if kind is list else kind.__name__
    return None


def _arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[ModelArg, ...]:
    """The keyword parameters with a literal default, but those every model is given."""
    spec = function.args
    positional = spec.posonlyargs + spec.args
    pairs = list(zip(positional[len(positional) - len(spec.defaults):], spec.defaults))
    pairs += [(a, d) for a, d in zip(spec.kwonlyargs, spec.kw_defaults) if d is not None]
    found = []
    for arg, node in pairs:
        if arg.arg in _GIVEN or arg in spec.posonlyargs:
            continue
        try:
            default = ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(default, list):
            default = tuple(default)
        kind = _kind(arg.annotation, default)
        if kind is not None:
            found.append(ModelArg(arg.arg, default, kind))
    return tuple(found)


def models_in(source: str) -> list[tuple[str, tuple[ModelArg, ...]]]:
    """(name, its keyword arguments) of each model the source defines at its top level."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_is_module_base(b) for b in node.bases):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is not None and not (_takes_shape(init) or init.args.kwarg):
                continue  # a layer of the model's (its __init__ cannot take the image shape), not a model
            found.append((node.name, _arguments(init) if init else ()))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _takes_shape(node):
            found.append((node.name, _arguments(node)))
    return found


def _takes_shape(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    spec = function.args
    return {"image_shape", "num_classes"} <= {a.arg for a in spec.posonlyargs + spec.args + spec.kwonlyargs}


def _reference(path: Path, name: str) -> str:
    """The path as --model takes it: relative to the working directory where it lies inside it."""
    try:
        shown = path.relative_to(Path.cwd().resolve())
    except ValueError:
        shown = path
    return f"{shown.as_posix()}:{name}"


def find_models(folders: Sequence[Path]) -> list[FoundModel]:
    """The models of each folder's .py files (not its subfolders'), by name, read and never imported."""
    found: list[FoundModel] = []
    seen: set[Path] = set()
    for folder in folders:
        try:
            files = sorted(p for p in Path(folder).resolve().iterdir() if p.suffix == ".py" and p.is_file()
                           and not p.name.startswith("."))[:_MAX_FILES]
        except OSError:
            continue
        for path in files:
            if path in seen:
                continue
            seen.add(path)
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            found += [FoundModel(_reference(path, name), args) for name, args in models_in(source)]
    return found


def arguments_of(reference: str, folders: Sequence[Path]) -> tuple[ModelArg, ...]:
    """The keyword arguments of a model the app may import (a loaded config's, say), read from its file."""
    if model_refused(reference, folders):
        return ()
    where, name = split_reference(reference)
    try:
        source = Path(where).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    return next((args for found, args in models_in(source) if found == name), ())


# -- where code may come from --------------------------------------------------------------------------------------
def model_refused(reference: str, folders: Sequence[Path]) -> str:
    """'' when the app may import the model file `reference` names, else one line saying why not."""
    where, _ = split_reference(reference)
    allowed = " or ".join(str(Path(f).resolve()) for f in folders)
    if not is_file(where):
        return (f"model: {reference}: the app imports model files only from inside {allowed}; give a file path "
                f"there (path/to/file.py:Name)")
    try:
        inside(list(folders), where, "model file")
    except ValueError:
        return (f"model: {where}: the app imports model files only from inside {allowed} (scratch-tui "
                f"--models-dir DIR adds one); move the file there")
    return ""


# -- looking inside ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    output: str
    parameters: int


@dataclass(frozen=True)
class ModelLook:
    """What setup shows of a model from a file: its source's hash, and either why it fails or its layers."""

    sha256: str
    error: str = ""
    parameters: int = 0
    layers: tuple[Layer, ...] = ()
    source: str = ""


def _shape_text(output: Any) -> str:
    shape = getattr(output, "shape", None)
    if shape is not None:
        return "×".join(str(int(n)) for n in tuple(shape)[1:]) or "scalar"
    if isinstance(output, (tuple, list)) and output:
        return _shape_text(output[0]) + ",…"
    return "-"


def inspect_model(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int) -> ModelLook:
    """Read, check (engine/model_file.py's one forward and backward) and look inside the config's model: its
    leaf layers' output shapes for one image and their parameters. Slow (imports and builds): a worker's."""
    from ..engine.config import ConfigError
    from ..engine.model_file import checked
    from ..engine.registry import DATASETS, MODELS

    try:
        source = read_source(config.model)
    except ConfigError as exc:
        return ModelLook("", error=str(exc))
    sha = source_sha256(source)
    config = config.replace(model_source=source)
    try:
        if image_shape == tuple(DATASETS.entry(config.dataset).image_shape):
            checked(config)  # the engine's own check, as `train` makes it (a data path's shape is known later)
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = MODELS.entry(config.model).build(config, image_shape, num_classes)
            layers: list[Layer] = []
            hooks = []
            for name, module in model.named_modules():
                if name and not any(True for _ in module.children()):
                    def hook(module: Any, _inputs: Any, output: Any, name: str = name) -> None:
                        count = sum(p.numel() for p in module.parameters(recurse=False))
                        layers.append(Layer(name, type(module).__name__, _shape_text(output), count))
                    hooks.append(module.register_forward_hook(hook))
            model.eval()
            try:
                with torch.no_grad():
                    logits = model(torch.randn(1, *image_shape))
            finally:
                for handle in hooks:
                    handle.remove()
            if not layers:  # a model of bare parameters: itself the one layer
                layers.append(Layer("(model)", type(model).__name__, _shape_text(logits),
                                    sum(p.numel() for p in model.parameters())))
    except ConfigError as exc:
        return ModelLook(sha, error=str(exc))
    except Exception as exc:  # the check said what it could; anything else is still one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return ModelLook(sha, error=f"model: {split_reference(config.model)[0]}: {type(exc).__name__}: {first}")
    return ModelLook(sha, parameters=sum(p.numel() for p in model.parameters()), layers=tuple(layers),
                     source=source)


def layer_table(look: ModelLook, width: int = 36, rows: int = 12) -> str:
    """The layers as a compact table that fits half of an 80-column screen (the longest names cut at the left)."""
    shown = look.layers[:rows]
    kind_w = min(9, max([4, *(len(layer.kind) for layer in shown)]))
    out_w = min(10, max([6, *(len(layer.output) for layer in shown)]))
    count_w = max([6, *(len(f"{layer.parameters:,}") for layer in shown)])
    name_w = max(5, min(max([5, *(len(layer.name) for layer in shown)]), width - kind_w - out_w - count_w - 3))

    def cut(text: str, room: int, left: bool = False) -> str:
        if len(text) <= room:
            return text
        return "…" + text[-(room - 1):] if left else text[:room - 1] + "…"

    lines = [f"{'layer':<{name_w}} {'type':<{kind_w}} {'output':<{out_w}} {'params':>{count_w}}"]
    for layer in shown:
        lines.append(f"{cut(layer.name, name_w, left=True):<{name_w}} {cut(layer.kind, kind_w):<{kind_w}} "
                     f"{cut(layer.output, out_w):<{out_w}} {layer.parameters:>{count_w},}")
    if len(look.layers) > rows:
        lines.append(f"… {len(look.layers) - rows} more layers")
    return "\n".join(lines)
