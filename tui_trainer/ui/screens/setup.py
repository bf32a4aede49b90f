"""Setup: device, dataset, model and hyperparameters, validated by the engine's own TrainConfig.

From here a config is started (F5), added to the queue (F6), or swept: F4 on a field marks it with
the values to take (runs/sweep.py's parse_axis reads them), and F7 queues every run of the sweep.
Opened from a sweep's view to extend it, the form holds the sweep's grid, and F7 queues only the runs
the sweep lacks, under its id (runs/sweep_life.py's extend, as `sweep extend` does).
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import Suggester
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Label, ProgressBar, RadioButton, RadioSet, Select, Static, Switch
from textual.widgets._select import SelectOverlay

from ...command_line import command_line
from ...format import counted
from ...engine.config import (SETTINGS, ConfigError, Setting, TrainConfig, applies, field_error, from_text,
                              parse_model_args, parse_model_value, preset, to_text)
from ...engine.data import DatasetUnavailable, load_raw
from ...engine.distributed import gpus_missing
from ...engine.lr_find import END_LR, START_LR, STEPS
from ...engine.models import build_model, count_parameters
from ...engine.registry import DATASETS, MODELS, is_data_path, is_model_reference
from ...engine.checkpoints import CheckpointError
from ...runs.fork import FIXED as FORK_FIXED
from ...runs.queue import new_sweep_id
from ...runs.spawn import SpawnError
from ...runs.store import StoreError
from ...runs.sweep import MAX_RUNS, Axis, SweepError, SweepTooLarge, axes_spec, expand, parse_axis
from ..markup import markup, plain
from ..messages import DownloadFinished, DownloadProgress
from ..model_files import ModelArg, ModelLook, arguments_of, find_models, inspect_model, layer_table, model_refused
from ..paths import inside
from ..widgets.switch import WordedSwitch
from ..widgets.footer import KeyFooter
from ..widgets.gpu_line import GpuLine
from .help import HELP_IN_FOOTER
from .lr_find import LrFindScreen, lr_text
from .prompt import PromptScreen

# Radio settings (device, dataset, model) fill the left column; the rest are rows of the right one (but what the
# engine fills in itself, a model file's kept source).
RADIOS = tuple(name for name, s in SETTINGS.items() if s.control == "radio")
FIELDS = tuple(s for s in SETTINGS.values() if s.control != "radio" and s.typed)
OWN_DATA = "your-data"  # the dataset radio whose path field names a folder, .npz or .csv


class PathSuggester(Suggester):
    """Completes a typed path with the first entry of its folder that starts so (a folder with its slash)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        folder, _, start = value.rpartition("/")
        where = os.path.expanduser(folder or ".") if folder or not value.startswith("/") else "/"
        try:
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(where)
                           if e.name.startswith(start) and (start.startswith(".") or not e.name.startswith(".")))
        except OSError:
            return None
        names = [n for n in names if n != start]
        return f"{folder}/{names[0]}" if names and folder else names[0] if names else None


class ModelLooked(Message):
    """A model file's check and layers, from the worker that built it."""

    def __init__(self, key: tuple, look: ModelLook) -> None:
        super().__init__()
        self.key, self.look = key, look


def _arg_text(arg: ModelArg, value: object) -> str:
    if arg.kind == "tuple" and isinstance(value, tuple):
        return ", ".join(repr(v) for v in value)
    return str(value)


def _arg_value(arg: ModelArg, text: str) -> object:
    """A model argument's field read as its kind; ValueError saying what it takes."""
    text = text.strip()
    if arg.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{arg.name}: got {text!r}; must be a whole number") from None
    if arg.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{arg.name}: got {text!r}; must be a number") from None
    if arg.kind == "tuple":
        value = parse_model_value(text) if text else ()
        value = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, str) and v == text for v in value) and text:
            raise ValueError(f"{arg.name}: got {text!r}; must be values separated by commas (e.g. 64, 32)")
        return value
    return text  # str


class _MenuOverlay(SelectOverlay):
    # Open, a dropdown's own "esc Dismiss menu" would push itself to the front of the footer and shift every
    # key along; escape still closes the menu, and the footer stays the same wherever the focus is.
    BINDINGS = [Binding("escape", "dismiss", "Dismiss menu", show=False)]


class FormSelect(Select):
    """A Select whose open menu leaves the footer as it was."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            yield _MenuOverlay(type_to_search=self._type_to_search).data_bind(compact=Select.compact) \
                if isinstance(widget, SelectOverlay) else widget


@functools.lru_cache(maxsize=64)  # asked again on every keystroke in the form
def parameter_count(model: str, dataset: str, hidden: tuple[int, ...]) -> int:
    spec = DATASETS.entry(dataset)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return count_parameters(build_model(model, spec.image_shape, len(spec.classes), hidden))


class SetupScreen(Screen):
    HELP_TITLE = "Setup"
    HELP_NOTES = ("Sweeps: F4 on a field takes its values: a list (0.001, 0.01), a log or linear range with a "
                  "count (log 1e-4 1e-1 4, lin 0.1 0.5 5); on Seed, the seeds each config repeats with (0, 1). "
                  "An empty answer unmarks the field. F7 queues every run of the sweep under one sweep id; F3 "
                  "shows the queue. LR finder (F8): a short range test of this config (records no run); a "
                  "applies its suggestion to the learning rate. Save writes inside the working directory only.")
    BINDINGS = [
        # short in the footer, so that all of it fits 80 columns; help and the palette say the tooltip
        # (a browser under `serve` takes some F keys for itself: each has a ctrl key as well)
        Binding("f5,ctrl+g", "start", "Start", priority=True),
        Binding("f6,ctrl+y", "queue", "Queue", tooltip="Queue this config (trains in the background)",
                priority=True),
        Binding("f4,ctrl+f", "sweep_field", "Mark", tooltip="Sweep the focused field: give its values",
                priority=True),
        Binding("f7,ctrl+l", "queue_sweep", "Sweep", tooltip="Queue the sweep of the marked fields", priority=True),
        HELP_IN_FOOTER,
        Binding("ctrl+r", "preset('recommended')", "Recommended", priority=True),
        Binding("ctrl+t", "preset('tutorial')", "Tutorial", show=False, priority=True),
        Binding("ctrl+s", "save_config", "Save", tooltip="Save TOML", priority=True),
        Binding("ctrl+o", "load_config", "Load", tooltip="Load TOML", show=False, priority=True),
        Binding("f8,ctrl+b", "lr_find", "LR finder", show=False, priority=True,
                tooltip="LR finder: a short range test, then apply its suggested lr"),
        # a fork's setup (the runs screen's f), or a sweep's extension (its view's e), goes back without a run
        Binding("escape", "leave", "Back",
                tooltip="Back, queueing nothing (a fork's setup, or a sweep's extension, only)"),
    ]
    # the LR finder's range: (start lr, end lr, steps), the engine's defaults (a test sets a short one)
    lr_find_range: tuple[float, float, int] = (START_LR, END_LR, STEPS)

    def __init__(self, config: TrainConfig | None = None, axes: dict[str, Axis] | None = None,
                 fork: tuple[str, int | str | None] | None = None, extend: tuple[str, str] | None = None) -> None:
        super().__init__()
        # (parent run id, the epoch of its checkpoint, a step checkpoint's name, or None for its last): F5 starts
        # a fork of it, the form holding the parent's config for the user to change
        self.fork = fork
        # (sweep id, its name): F7 queues the runs of the marked fields that the sweep lacks, under its id; the
        # screen then closes, handing back what it queued (app.Queued)
        self.extend = extend
        self.initial = config or TrainConfig()
        self.axes: dict[str, Axis] = dict(axes or {})  # the fields marked to sweep, with their values
        self.errors: dict[str, str] = {}
        self.config: TrainConfig | None = self.initial
        self._loading = False
        self._downloading: str | None = None
        self._by_id: dict[str, Widget] | None = None
        self._found: dict[str, Any] = {}
        self._looks: dict[tuple, ModelLook] = {}  # a model file's check and layers, by what decides them
        self._looking: set[tuple] = set()
        self._arg_errors: dict[str, str] = {}
        self._args_for: str | None = None  # the model whose argument fields are up

    # -- layout ------------------------------------------------------------
    def compose(self) -> ComposeResult:
        app = self.app
        with Horizontal(id="setup-body"):
            # the panes scroll to the focused control; they are no Tab stops of their own (nothing shows there)
            with VerticalScroll(id="choices", can_focus=False):
                yield Label(SETTINGS["device"].label, classes="section")
                with RadioSet(id="device"):
                    best = next((d.name for d in app.devices if d.kind != "cpu"), "cpu")
                    yield RadioButton(f"auto  → {best}", value=True, name="auto")
                    for d in app.devices:
                        yield RadioButton(f"{d.name}  {d.describe()}", name=d.name)
                yield GpuLine(id="gpu")  # the chosen card's live readings, where NVML reads it
                yield Label(SETTINGS["dataset"].label, classes="section")
                with RadioSet(id="dataset"):
                    for name in SETTINGS["dataset"].choices:
                        yield RadioButton(self._dataset_label(name), name=name)
                    yield RadioButton("your data…", name=OWN_DATA)
                with Horizontal(classes="field-row", id="row-data-path"):
                    yield Label("Path", classes="path-label")
                    yield Input(placeholder="folder, .npz or .csv", id="data-path", compact=True,
                                suggester=PathSuggester())
                yield Static("", classes="field-sweep", id="sweep-dataset")
                yield ProgressBar(id="download-bar", show_eta=True)
                yield Static("", id="dataset-note", classes="note")
                yield Label(SETTINGS["model"].label, classes="section")
                with RadioSet(id="model"):
                    for name in self._model_names():
                        yield RadioButton(name, name=name)
                yield Static("", classes="field-sweep", id="sweep-model")
                yield Static("", id="model-note", classes="note")
                yield Static("", id="model-layers", classes="note")
            with VerticalScroll(id="params", can_focus=False):
                yield Label("Hyperparameters", classes="section")
                for spec in FIELDS:
                    with Horizontal(classes="field-row", id=f"row-{spec.name}"):
                        yield Label(spec.label, classes="field-label")
                        yield self._field_widget(spec)
                    yield Static("", classes="field-sweep", id=f"sweep-{spec.name}")
                    yield Static("", classes="field-error", id=f"error-{spec.name}")
                    if spec.name == "model_args":  # a model file's own keyword arguments, a field each
                        yield Vertical(id="model-arg-fields")
        yield Static("", id="mode-note")  # a fork's, or a sweep's extension
        yield Static("", id="sweep-summary")
        yield Static("", id="command")
        yield KeyFooter()

    def _field_widget(self, spec: Setting):
        value = getattr(self.initial, spec.name)
        if spec.control == "select":
            return FormSelect([(c, c) for c in spec.choices], value=value, allow_blank=False, id=f"field-{spec.name}",
                          compact=True)
        if spec.control == "switch":
            return WordedSwitch(value=value, id=f"field-{spec.name}")
        placeholder = "default" if spec.default in (None, "") else ""
        return Input(to_text(value), placeholder=placeholder, id=f"field-{spec.name}", compact=True)

    def _dataset_label(self, name: str) -> str:
        if name == OWN_DATA:
            return "your data…"
        return f"{name}  {self.app.dataset_status(name)}"

    def _model_names(self) -> list[str]:
        """The built-ins, then the models of the working directory's (and --models-dir's) .py files, then the
        loaded config's model file where it is none of those."""
        self._found = {f.reference: f for f in find_models(self._folders())}
        names = [*SETTINGS["model"].choices, *self._found]
        if is_model_reference(self.initial.model) and self.initial.model not in names:
            names.append(self.initial.model)
        return names

    def _folders(self) -> list[Path]:
        folders = getattr(self.app, "model_folders", None)
        return folders() if folders else [Path.cwd()]

    def _model_args_of(self, model: str) -> tuple[ModelArg, ...]:
        if model in self._found:
            return self._found[model].args
        return arguments_of(model, self._folders()) if is_model_reference(model) else ()

    def on_mount(self) -> None:
        self.apply_config(self.initial)
        if self.fork:
            self._show_fork()
        if self.extend:
            self._show_extend()
        self._follow_gpu()
        self._show_axes()

    def refill(self, config: TrainConfig, axes: dict[str, Axis]) -> None:
        """The form again, for the next run: `config`, and `axes` marked to sweep (the app keeps this screen)."""
        self.initial, self.axes = config, dict(axes)
        self.apply_config(config)
        self._follow_gpu()
        self._show_axes()

    def on_screen_suspend(self) -> None:
        self.query_one(GpuLine).pause()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles all of a screen switched back to (some 500 widgets here: 40 ms of `n`), though not
        # one popped back to; the form's styles have not changed meanwhile. This runs before Screen's handler.
        event.refresh_styles = False
        self.query_one(GpuLine).resume()

    def _follow_gpu(self) -> None:
        device = self._selected("device")
        if device == "auto":  # what the run will resolve it to, as the radio's label says
            device = next((d.name for d in self.app.devices if d.kind != "cpu"), "cpu")
        self.query_one(GpuLine).follow(device)

    # -- reading and writing the form ---------------------------------------
    def apply_config(self, config: TrainConfig) -> list[tuple[str, str]]:
        """Fill the form; returns the choices this machine does not offer (they keep their current pick)."""
        self._loading = True
        missing: list[tuple[str, str]] = []
        try:
            for spec in FIELDS:
                value = getattr(config, spec.name)
                self._part(f"field-{spec.name}").value = to_text(value) if spec.control == "input" else value
            for set_id in RADIOS:
                value = getattr(config, set_id)
                radios = self.query_one(f"#{set_id}", RadioSet)
                buttons = [b for b in radios.query(RadioButton) if b.name == value]
                if not buttons and set_id == "dataset" and is_data_path(value):
                    self._part("data-path").value = value
                    buttons = [b for b in radios.query(RadioButton) if b.name == OWN_DATA]
                if not buttons and set_id == "model" and is_model_reference(value):
                    button = RadioButton(value, name=value)  # a loaded config's file: checked as any other
                    radios.mount(button)
                    self.call_after_refresh(setattr, button, "value", True)
                    continue
                for button in buttons:
                    button.value = True
                if not buttons:
                    missing.append((set_id, value))
        finally:
            self._loading = False
        self.validate()
        self._fill_arg_fields()
        return missing

    def _parts(self) -> dict[str, Widget]:
        """The form's widgets by id, from one walk of the screen: they are built once, and a query per field
        and keystroke walked it each time."""
        if self._by_id is None:
            self._by_id = {w.id: w for w in self.walk_children() if w.id}
        return self._by_id

    def _part(self, widget_id: str) -> Any:
        return self._parts()[widget_id]

    def _selected(self, set_id: str) -> str | None:
        pressed = self.query_one(f"#{set_id}", RadioSet).pressed_button
        return pressed.name if pressed else None

    def _picked(self) -> dict[str, object]:
        """The radios, selects and switches: always valid, and what decides which fields apply."""
        picked: dict[str, object] = {name: self._selected(name) or getattr(self.initial, name) for name in RADIOS}
        if picked["dataset"] == OWN_DATA:
            picked["dataset"] = self._part("data-path").value.strip()
        picked.update({s.name: self._part(f"field-{s.name}").value for s in FIELDS if s.control != "input"})
        return picked

    def _read_values(self) -> tuple[dict[str, object], dict[str, str]]:
        """Every field the form can read, and a message for each it refuses (left out of the values)."""
        values = self._picked()
        # what nobody types (a model file's kept source) stays the loaded config's; another model drops it
        values.update({s.name: getattr(self.initial, s.name) for s in SETTINGS.values() if not s.typed})
        if values["model"] != self.initial.model:
            values["model_source"] = ""  # another model's source is not this one's
        errors: dict[str, str] = {}
        for spec in FIELDS:
            if spec.control != "input":
                continue
            text = self._part(f"field-{spec.name}").value.strip()
            try:
                value = from_text(spec.name, text)  # the CLI's own reading, so both say the same
                message = field_error(spec.name, value)
            except ConfigError as exc:
                value, message = None, exc.errors[spec.name]
            if message and not applies(spec.name, values):
                # the row is hidden for this model or optimizer, so a bad value there must not block Start
                value, message = getattr(self.initial, spec.name), None
            if message:
                errors[spec.name] = message
            else:
                values[spec.name] = value
        return values, errors

    def read_form(self) -> tuple[TrainConfig | None, dict[str, str]]:
        values, errors = self._read_values()
        if self._selected("dataset") == OWN_DATA and not values["dataset"]:
            errors["dataset"] = "dataset: give the path of your data: a folder of images, a .npz or a .csv"
        if applies("model_source", values):
            if why := model_refused(str(values["model"]), self._folders()):
                errors["model"] = why
            elif (look := self._looks.get(self._look_key(values))) is not None and look.error:
                errors["model"] = look.error
        if self._arg_errors:
            errors["model_args"] = next(iter(self._arg_errors.values()))
        try:
            config = TrainConfig(**values)
        except ConfigError as exc:
            config = None
            errors = {**exc.errors, **errors}
        if config and (missing := gpus_missing(config.gpus, self._gpu_count())):
            errors["gpus"] = missing  # a config another machine could train, but not this one
        return (config if not errors else None), errors

    def _gpu_count(self) -> int:
        return sum(d.kind == "cuda" for d in self.app.devices)

    def _row_shown(self, name: str, picked: dict[str, object]) -> bool:
        """A row that applies; GPUs only on a machine with several, or when a loaded config asks for more."""
        if name == "gpus":
            return self._gpu_count() > 1 or "gpus" in self.errors or bool(self.config and self.config.gpus > 1)
        return applies(name, picked)

    def validate(self) -> None:
        if self._loading:
            return
        self.config, self.errors = self.read_form()
        picked = self._picked()
        for spec in FIELDS:
            self._part(f"row-{spec.name}").display = self._row_shown(spec.name, picked)
            message = self.errors.get(spec.name, "")
            error = self._part(f"error-{spec.name}")
            error.update(plain(message))
            error.display = bool(message)
            self._part(f"field-{spec.name}").set_class(bool(message), "invalid")
        command = self.query_one("#command", Static)
        if self.config:
            command.update(markup("[b]CLI:[/b] $cli", cli=command_line(self.config)))
        else:
            command.update(f"[b red]{counted(len(self.errors), 'field')} to fix before Start[/]")
        self._update_model_note()

    def _update_model_note(self) -> None:
        picked = self._picked()
        model, dataset = self._selected("model"), str(picked["dataset"])
        self._show_data_path(dataset)
        if not model or not dataset:
            return
        self._build_arg_fields(model)
        note, layers = self._part("model-note"), self._part("model-layers")
        values = {**self._read_values()[0], "model": model}
        if applies("model_source", values):
            self._show_model_file(values, note, layers)
            return
        layers.display = False
        note.set_class(False, "error")
        if dataset not in DATASETS or 0 in DATASETS.entry(dataset).image_shape:
            note.update(plain(f"{MODELS.entry(model).summary}. Parameters counted once your data is read."))
            return
        hidden = self.config.hidden if self.config else self.initial.hidden
        count = parameter_count(model, dataset, hidden)
        note.update(plain(f"{MODELS.entry(model).summary}. {count:,} parameters for {DATASETS.entry(dataset).title}."))

    def _show_data_path(self, dataset: str) -> None:
        own = self._selected("dataset") == OWN_DATA
        self._part("row-data-path").display = own
        note = self._part("dataset-note")
        if not own:
            if note.has_class("own"):
                note.set_classes("note")
                note.update("")
            return
        note.add_class("own")
        if not dataset:
            status = "give a folder of images, a .npz or a .csv (Tab completes)"
        elif dataset not in DATASETS:
            status = "not a dataset path: a folder, a .npz or a .csv"
        else:
            try:
                status = self.app.dataset_status(dataset)
            except (KeyError, OSError, ValueError) as exc:
                status = str(exc)
        note.set_class(status in ("not found",) or status.startswith("not a"), "error")
        note.update(plain(f"{dataset or 'your data'}: {status}"))

    # -- a model from a file: its check, layers and argument fields ---------------------------------------
    def _look_key(self, values: dict[str, object]) -> tuple:
        args = json.dumps(values.get("model_args") or {}, sort_keys=True, default=str)
        return (values["model"], values["dataset"], args, tuple(values.get("image_shape") or ()))

    def _look_shape(self, values: dict[str, object]) -> tuple[tuple[int, int, int], int] | None:
        dataset = str(values["dataset"])
        if dataset not in DATASETS:
            return None
        entry = DATASETS.entry(dataset)
        if 0 in entry.image_shape or not entry.classes:
            return None  # your data: its shape and classes are known once it is read
        return tuple(entry.image_shape), len(entry.classes)

    def _show_model_file(self, values: dict[str, object], note: Static, layers: Static) -> None:
        model = str(values["model"])
        if why := model_refused(model, self._folders()):
            note.set_class(True, "error")
            note.update(plain(why))
            layers.display = False
            return
        key, shape = self._look_key(values), self._look_shape(values)
        look = self._looks.get(key)
        if shape is None:
            note.set_class(False, "error")
            note.update(plain(f"Your model {model}: checked and counted once your data is read."))
            layers.display = False
            return
        if look is None:
            note.set_class(False, "error")
            note.update(plain(f"Checking {model}…"))
            layers.display = False
            if key not in self._looking:
                self._looking.add(key)
                try:
                    config = TrainConfig.from_dict({**self._form_as_far_as_valid().to_dict(), "model": model,
                                                    "model_source": "", "dataset": values["dataset"],
                                                    "model_args": values.get("model_args") or {}})
                except ConfigError as exc:
                    self._looking.discard(key)
                    note.update(plain(str(exc)))
                    return
                self._look(key, config, *shape)
            return
        sha = f"sha256 {look.sha256[:12]}" if look.sha256 else ""
        if look.error:
            note.set_class(True, "error")
            note.update(plain(f"{look.error}" + (f" ({sha})" if sha else "")))
            layers.display = False
            return
        note.set_class(False, "error")
        title = DATASETS.entry(str(values["dataset"])).title
        note.update(plain(f"{model.rpartition(':')[0]} {sha}. {look.parameters:,} parameters for {title}."))
        layers.update(plain(layer_table(look, width=max(30, self._part("choices").size.width - 4))))
        layers.display = True

    @work(thread=True, exit_on_error=False, group="model-look")
    def _look(self, key: tuple, config: TrainConfig, image_shape: tuple[int, int, int], classes: int) -> None:
        self.post_message(ModelLooked(key, inspect_model(config, image_shape, classes)))

    def on_model_looked(self, message: ModelLooked) -> None:
        self._looking.discard(message.key)
        self._looks[message.key] = message.look
        self.validate()

    def _checking(self) -> bool:
        values = self._read_values()[0]
        return applies("model_source", values) and self._look_shape(values) is not None \
            and not model_refused(str(values["model"]), self._folders()) and self._look_key(values) not in self._looks

    def _build_arg_fields(self, model: str) -> None:
        """A field per keyword argument of the chosen model file (typed from its annotation or default)."""
        if model == self._args_for:
            return
        self._args_for = model
        self._arg_errors.clear()
        box = self._part("model-arg-fields")
        box.remove_children()
        rows = []
        for arg in self._model_args_of(model) if is_model_reference(model) else ():
            control = WordedSwitch(value=bool(arg.default), id=f"arg-{arg.name}", classes="model-arg") \
                if arg.kind == "bool" else Input(_arg_text(arg, arg.default), id=f"arg-{arg.name}", compact=True,
                                                 classes="model-arg", placeholder=arg.kind)
            rows.append(Horizontal(Label(f"  {arg.name}", classes="field-label"), control, classes="field-row",
                                   id=f"arg-row-{arg.name}"))
            rows.append(Static("", classes="field-error", id=f"arg-error-{arg.name}"))
        box.display = bool(rows)
        if rows:
            box.mount_all(rows)
            self.call_after_refresh(self._fill_arg_fields)

    def _arg_specs(self) -> dict[str, ModelArg]:
        return {a.name: a for a in self._model_args_of(self._args_for)} if self._args_for and \
            is_model_reference(self._args_for) else {}

    def _typed_args(self) -> dict[str, object] | None:
        try:
            return parse_model_args(self._part("field-model_args").value)
        except ConfigError:
            return None

    def _fill_arg_fields(self) -> None:
        """Each argument field as the Model args field gives it (or its default)."""
        args = self._typed_args()
        if args is None:
            return
        for name, arg in self._arg_specs().items():
            for widget in self.query(f"#arg-{name}"):
                value = args.get(name, arg.default)
                if isinstance(widget, Switch):
                    widget.value = bool(value)
                elif self._arg_read(arg, widget.value) != value:
                    widget.value = _arg_text(arg, value)

    @staticmethod
    def _arg_read(arg: ModelArg, text: str) -> object:
        try:
            return _arg_value(arg, text)
        except ValueError:
            return None

    def _arg_changed(self, widget: Widget) -> None:
        """An argument field written into Model args: the values that differ from the file's defaults."""
        name = (widget.id or "").removeprefix("arg-")
        arg = self._arg_specs().get(name)
        args = self._typed_args()
        if arg is None or args is None:
            return
        try:
            value = widget.value if isinstance(widget, Switch) else _arg_value(arg, widget.value)
        except ValueError as exc:
            self._arg_errors[name] = f"model_args: {exc}"
        else:
            self._arg_errors.pop(name, None)
            if value == arg.default:
                args.pop(name, None)
            else:
                args[name] = value
            text = to_text(args)
            if text != self._part("field-model_args").value:
                self._part("field-model_args").value = text
        for error in self.query(f"#arg-error-{name}"):
            error.update(plain(self._arg_errors.get(name, "")))
            error.display = name in self._arg_errors
        widget.set_class(name in self._arg_errors, "invalid")
        self.validate()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _field_changed(self, event: Message) -> None:
        control = getattr(event, "control", None)
        if control is not None and control.has_class("model-arg"):
            self._arg_changed(control)
            return
        self.validate()
        if control is not None and control.id == "field-model_args":
            self._fill_arg_fields()

    @on(RadioSet.Changed)
    def _choice_changed(self, event: RadioSet.Changed) -> None:
        self.validate()
        if event.radio_set.id == "device":
            self._follow_gpu()
        if event.radio_set.id == "dataset" and not self._loading:
            name = event.pressed.name
            if name == OWN_DATA:
                self.call_after_refresh(self._part("data-path").focus)
            elif self.app.dataset_status(name).startswith("needs download"):
                self.download(name)

    # -- downloads ---------------------------------------------------------
    def download(self, name: str) -> None:
        if self._downloading:
            return
        self._downloading = name
        bar = self.query_one("#download-bar", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#dataset-note", Static).update(plain(f"Downloading {name}…"))
        self._download(name, self.config.data_dir if self.config else None)

    @work(thread=True, exit_on_error=False, group="download")
    def _download(self, name: str, data_dir: str | None) -> None:
        def progress(done: int, total: int | None, label: str) -> None:
            self.post_message(DownloadProgress(name, done, total, label))

        try:
            load_raw(name, data_dir, progress)
        except DatasetUnavailable as exc:
            self.post_message(DownloadFinished(name, str(exc)))
        except Exception as exc:  # anything else still reaches the user as one line
            self.post_message(DownloadFinished(name, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(DownloadFinished(name))

    def on_download_progress(self, message: DownloadProgress) -> None:
        bar = self.query_one("#download-bar", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.query_one("#dataset-note", Static).update(plain(message.label))

    def on_download_finished(self, message: DownloadFinished) -> None:
        self._downloading = None
        self.query_one("#download-bar").display = False
        note = self.query_one("#dataset-note", Static)
        note.set_class(bool(message.error), "error")
        note.update(plain(message.error or f"{message.dataset} is ready."))
        for button in self.query_one("#dataset", RadioSet).query(RadioButton):
            if button.name != OWN_DATA:
                button.label = self._dataset_label(button.name)

    # -- actions -----------------------------------------------------------
    def _ready(self, doing: str, swept: frozenset[str] = frozenset()) -> TrainConfig | None:
        """The form's config for Start, Queue or Sweep; None, with the reason shown, while it cannot be.
        A field in `swept` may be refused: the sweep gives it its values."""
        self.validate()
        if self._downloading:
            self.notify(f"Wait for the {self._downloading} download to finish.", severity="warning")
            return None
        if self._checking():
            self.notify("The model file is being checked: a moment.", severity="warning")
            return None
        errors = {name: message for name, message in self.errors.items() if name not in swept}
        if errors:
            first = next(iter(errors))
            self.notify(errors[first], title=f"{doing} refused: fix the marked fields", severity="error",
                        markup=False)
            widget = self.query(f"#field-{first}")
            if widget:
                widget.first().focus()
            return None
        config = self.config or self._form_as_far_as_valid()
        look = self._looks.get(self._look_key(config.to_dict() | {"model_args": config.model_args}))
        if applies("model_source", config) and not config.model_source and look and look.source:
            config = config.replace(model_source=look.source)  # the code checked and shown (its sha256) is the run's
        return config

    def action_start(self) -> None:
        if self._allowed("Start") and (config := self._ready("Start")) is not None:
            if self.fork:
                self._start_fork(config)
            else:
                self.app.start_training(config)

    # -- a fork: the parent's config, changed, continued from its checkpoint ----------
    def _show_fork(self) -> None:
        parent, at = self.fork
        where = f"its checkpoint {at}.pt" if isinstance(at, str) else f"epoch {at}" if at else "its last checkpoint"
        fixed = ", ".join(FORK_FIXED)
        self._mode_note(f"Fork of run {parent} from {where}: F5 starts it, training to Epochs; Esc goes back. "
                        f"The checkpoint fixes {fixed}.")
        for name in FORK_FIXED:
            for control in self.query(f"#field-{name}, #{name}"):
                control.disabled = True

    def _fork_changes(self, config: TrainConfig) -> dict[str, object]:
        """The settings the form changed from the parent's, and the epochs (the fork trains to them)."""
        changes = {name: getattr(config, name) for name in SETTINGS
                   if getattr(config, name) != getattr(self.initial, name)}
        changes["epochs"] = config.epochs
        return changes

    def _start_fork(self, config: TrainConfig) -> None:
        """Start the fork through the launcher's fork (runs/fork.py: it records its parent and epoch), and view it."""
        parent, epoch = self.fork
        launcher = self.app.launcher()
        if launcher is None:
            return
        if not hasattr(launcher, "fork"):
            self.notify("This app's launcher cannot fork runs.", severity="error")
            return
        try:
            handle = launcher.fork(parent, epoch, self._fork_changes(config))
        except ConfigError as exc:
            message = "; ".join(exc.errors.values())
        except (ValueError, LookupError, OSError, StoreError, SpawnError, CheckpointError) as exc:
            message = str(exc)  # ForkRefused is a ValueError, RunNotFound a LookupError: one line each
        else:
            self.app.last_config = config
            self.app.view(handle)
            return
        self.notify(message, title="Fork refused", severity="error", timeout=10, markup=False)

    def _show_extend(self) -> None:
        sweep_id, name = self.extend
        self._mode_note(f"Extending sweep {sweep_id}" + (f" ({name})" if name else "") + ": F4 adds values or seeds "
                        "to a field; F7 queues the runs the sweep lacks, under its id; Esc goes back.")

    def _mode_note(self, text: str) -> None:
        note = self.query_one("#mode-note", Static)
        note.update(plain(text))
        note.display = True

    # what each mode's form is not for, by action: its keys leave the footer (the mode's note says what the form does)
    _NOT_IN_FORK = ("queue", "sweep_field", "queue_sweep")
    _NOT_IN_EXTEND = ("start", "queue")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave":
            return self.fork is not None or self.extend is not None
        if self.fork is not None and action in self._NOT_IN_FORK:
            return False
        return not (self.extend is not None and action in self._NOT_IN_EXTEND)

    def action_leave(self) -> None:
        if self.fork is not None or self.extend is not None:
            self.dismiss(None)

    def _allowed(self, doing: str) -> bool:
        """False, with the reason, for what this setup is not for: a fork's starts from its parent's checkpoint
        (F5 alone); a sweep's extension marks fields (Mark) and queues what the sweep lacks (Sweep)."""
        if self.fork is not None and doing != "Start":
            self.notify(f"{doing}: a fork starts from run {self.fork[0]}'s checkpoint; F5 starts it (Esc: back).",
                        severity="warning", markup=False)
            return False
        if self.extend is not None and doing not in ("Mark", "Sweep"):
            self.notify(f"{doing}: this form extends sweep {self.extend[0]}; F4 adds values or seeds, F7 queues "
                        f"the runs it lacks (Esc: back).", severity="warning", markup=False)
            return False
        return True

    def action_queue(self) -> None:
        """Add the form's config to the queue; it trains in the background when a device is free."""
        if not self._allowed("Queue"):
            return
        config = self._ready("Queue")
        if config is None:
            return
        queued = self.app.queue_runs([config])
        if queued is None:
            return
        self.app.last_config = config
        position = queued.positions[0]
        where = "next" if position == 1 else f"at position {position}"
        self.notify(f"Queued run {queued.ids[0]} {where}. {queued.runner_line} F3 shows the queue.",
                    title="Queued", timeout=8, markup=False)

    # -- sweeps --------------------------------------------------------------
    def _focused_field(self) -> str | None:
        """The setting of the focused control: a field of the form, or the dataset or model radios."""
        node = self.focused
        while node is not None and node is not self:
            node_id = node.id or ""
            if node_id.startswith(("field-", "row-")):
                return node_id.split("-", 1)[1]
            if isinstance(node, RadioSet) and node_id in SETTINGS:
                return node_id
            node = node.parent
        return None

    def action_sweep_field(self) -> None:
        if not self._allowed("Mark"):
            return
        field = self._focused_field()
        if field is None:
            self.notify("Move to a field with Tab, then F4 marks it to sweep.", severity="warning")
            return
        label = SETTINGS[field].label
        if field == "seed":
            question = "Seeds: each config of the sweep runs once per seed,\ne.g. 0, 1, 2. Empty unmarks."
        else:
            question = (f"Sweep {label.lower()} over a list, or a range and a count:\n"
                        f"0.001, 0.01 · log 1e-4 1e-1 4 · lin 0.1 0.5 5. Empty unmarks.")
        axis = self.axes.get(field)
        start = axis.text() if axis else self._field_text(field)

        def check(text: str) -> str | None:
            if not text.strip():
                return None
            try:
                axis = parse_axis(field, text)
            except SweepError as exc:
                return str(exc)
            if axis.is_range and axis.count is None:
                return f"sweep.{field}: give the range a count ({axis.scale} LO HI COUNT); the app sweeps a grid"
            return None

        def done(text: str | None) -> None:
            if text is None:
                return  # cancelled: the mark stays as it was
            if text.strip():
                self.axes[field] = parse_axis(field, text)
            else:
                self.axes.pop(field, None)
            if self.extend is None:  # a new run's setup (n on the training screen) keeps them
                self.app.sweep_axes = dict(self.axes)
            self._show_axes()

        self.app.push_screen(PromptScreen(question, start, check), done)

    def _field_text(self, field: str) -> str:
        """The field's value as the form shows it, to start the sweep's values from."""
        if field in RADIOS:
            return self._selected(field) or ""
        widget = self.query_one(f"#field-{field}")
        return widget.value if isinstance(widget, Input) else to_text(widget.value)

    def _sweep_axes(self) -> list[Axis]:
        """The marked fields in the form's order (the last varies fastest), seeds last."""
        return [self.axes[name] for name in SETTINGS if name in self.axes]

    def sweep_size(self) -> tuple[str, int]:
        """The sweep as the summary says it ("4 × 2 seeds") and how many runs it makes."""
        configs = [a.size() for a in self._sweep_axes() if a.field != "seed"]
        seeds = self.axes["seed"].size() if "seed" in self.axes else 0
        said = " × ".join(map(str, configs)) if len(configs) > 1 or (configs and seeds) else \
            f"{math.prod(configs)} config{'s' if math.prod(configs) != 1 else ''}"
        if seeds:
            said += f" × {seeds} seed{'s' if seeds != 1 else ''}"
        return said, math.prod(configs) * max(seeds, 1)

    def _show_axes(self) -> None:
        """Each marked field shows the values it takes; the summary line says how many runs they make."""
        by_id = self._parts()
        for name in SETTINGS:
            marker = by_id.get(f"sweep-{name}")
            if marker is None:
                continue  # device: never swept
            axis = self.axes.get(name)
            marker.update(plain(f"⟳ {axis_label(axis)}") if axis else "")
            marker.display = axis is not None
            for key in (f"field-{name}", name, f"row-{name}"):
                if key in by_id:
                    by_id[key].set_class(axis is not None, "swept")
        summary = self.query_one("#sweep-summary", Static)
        summary.display = bool(self.axes)
        if self.axes:
            said, runs = self.sweep_size()
            fields = ", ".join(a.field for a in self._sweep_axes())
            tail = f"more than {MAX_RUNS}: narrow it" if runs > MAX_RUNS else \
                "F7 queues the new ones" if self.extend else "F7 queues them"
            summary.update(plain(f"sweep: {said} = {runs} run{'s' if runs != 1 else ''} ({fields}) · {tail}"))

    def action_queue_sweep(self) -> None:
        """Expand the marked fields into runs and queue them all under one sweep id and name (extending a sweep:
        those it lacks, under its id and name)."""
        if not self._allowed("Sweep"):
            return
        if not self.axes:
            self.notify("No field is marked to sweep: move to one (Tab) and press F4 to give its values.",
                        severity="warning", timeout=8)
            return
        base = self._ready("Sweep", frozenset(self.axes))
        if base is None:
            return
        axes = self._sweep_axes()
        if self.extend is not None:
            self._extend_sweep(base, axes)
            return
        try:
            expand(base, axes)
        except SweepTooLarge as exc:
            self.notify(f"{exc}; the app queues at most {MAX_RUNS:,}: fewer values, or `scratch-tui sweep FILE "
                        f"--yes`.", title="Sweep refused", severity="error", timeout=10, markup=False)
            return
        except SweepError as exc:
            self.notify(str(exc), title="Sweep refused", severity="error", timeout=10, markup=False)
            return
        expanded: list[TrainConfig] = []

        def check(name: str) -> str | None:
            try:
                expanded[:] = expand(base, axes, name=name.strip())
            except SweepError as exc:
                return str(exc)
            return None

        def done(name: str | None) -> None:
            if name is None or not expanded:
                return
            queued = self.app.queue_runs(expanded, sweep_id=new_sweep_id(), sweep_name=name.strip())
            if queued is None:
                return
            self.app.last_config = base
            said, runs = self.sweep_size()
            first, last = min(queued.positions), max(queued.positions)
            self.notify(f"Queued sweep {queued.sweep_id} ({name.strip() or 'no name'}): {runs} runs ({said}) at "
                        f"positions {first}–{last}. {queued.runner_line} F3 shows the queue; F2 lists the runs.",
                        title="Sweep queued", timeout=10, markup=False)

        varied = [a.field for a in axes if a.field != "seed"]
        default = "sweep-" + "-".join(varied) if varied else "seeds"
        said, runs = self.sweep_size()
        self.app.push_screen(PromptScreen(f"Name the sweep of {runs} runs ({said});\nthe name starts each run's name:",
                                          default, check), done)

    def _extend_sweep(self, base: TrainConfig, axes: list[Axis]) -> None:
        """Queue the runs of the marked fields that the sweep lacks, as `sweep extend` does, and go back to it."""
        sweep_id, name = self.extend
        try:
            spec = axes_spec(base, axes, name=name)
        except SweepError as exc:
            self.notify(str(exc), title="Extension refused", severity="error", timeout=10, markup=False)
            return
        queued = self.app.extend_sweep(sweep_id, spec)
        if queued is None:
            return
        first, last = min(queued.positions), max(queued.positions)
        self.notify(f"Queued {counted(len(queued.ids), 'more run')} in sweep {sweep_id} at positions {first}–{last}. "
                    f"{queued.runner_line}", title="Sweep extended", timeout=10, markup=False)
        self.dismiss(queued)

    def _form_as_far_as_valid(self) -> TrainConfig:
        """The form as a config, a field it refuses read as the value the form opened with."""
        if self.config:
            return self.config
        values = {**self.initial.to_dict(), **self._read_values()[0]}
        try:
            return TrainConfig.from_dict(values)
        except ConfigError as exc:  # a rule across fields (nesterov needs momentum): those go back as well
            try:
                return TrainConfig.from_dict({**values, **{k: getattr(self.initial, k) for k in exc.errors}})
            except ConfigError:
                return self.initial

    def action_preset(self, name: str) -> None:
        # The CLI's own rule, from the same function: `--config FILE --preset NAME` is preset(NAME, FILE), and
        # here the form is the file. A preset sets the fields it names and keeps the rest (tutorial names the
        # model, since its randn init and hidden sizes are an MLP's; recommended names the training knobs, not
        # what to train on or with).
        base, refused = self._form_as_far_as_valid(), set(self.errors)
        config = preset(name, base)
        self.apply_config(config)
        changed = [f"{s.label.lower()} {to_text(getattr(config, s.name)) or 'default'}" for s in SETTINGS.values()
                   if getattr(config, s.name) != getattr(base, s.name) or s.name in refused]
        self.notify(f"Set {', '.join(changed)}." if changed else "The form already matches it.",
                    title=f"Preset {name!r}", timeout=8, markup=False)

    def action_save_config(self) -> None:
        if not self.config:
            self.notify("Fix the marked fields before saving.", severity="error")
            return
        config = self.config

        def check(path: str) -> str | None:
            try:  # typed by whoever holds the keyboard: under `serve`, someone remote
                target = inside(Path.cwd(), path, "config path")
            except ValueError as exc:
                return str(exc)
            try:
                config.save(target)
            except OSError as exc:
                return f"cannot write {path}: {exc.strerror}"
            return None

        def saved(path: str | None) -> None:
            if path:
                self.notify(f"Saved {path}", markup=False)

        self.app.push_screen(PromptScreen("Save config to TOML file (inside the working directory):",
                                          "scratch-tui.toml", check), saved)

    # -- the LR finder -------------------------------------------------------
    def action_lr_find(self) -> None:
        """The form's config in a short lr range test (a screen of its own); `a` there applies the suggestion."""
        config = self._ready("LR finder")
        if config is None:
            return
        start, end, steps = self.lr_find_range
        self.app.push_screen(LrFindScreen(config, start, end, steps), self._apply_lr)

    def _apply_lr(self, lr: float | None) -> None:
        if lr is None:
            return
        self.query_one("#field-lr", Input).value = lr_text(lr)
        self.validate()
        self.notify(f"Learning rate set to {lr_text(lr)}, the LR finder's suggestion.", markup=False)

    def action_load_config(self) -> None:
        loaded: list[TrainConfig] = []

        def check(path: str) -> str | None:
            try:
                loaded.append(TrainConfig.load(Path(path).expanduser()))
            except ConfigError as exc:
                return str(exc)
            return None

        def done(path: str | None) -> None:
            if path and loaded:
                missing = self.apply_config(loaded[-1])
                self.notify(f"Loaded {path}", markup=False)
                for set_id, value in missing:
                    self.notify(f"The file asks for {set_id} {value!r}, which this machine does not offer; "
                                f"kept {self._selected(set_id)!r}.", severity="warning", timeout=10, markup=False)

        self.app.push_screen(PromptScreen("Load config from TOML file:", "scratch-tui.toml", check), done)


def axis_label(axis: Axis) -> str:
    """An axis as its marked field shows it: "log 0.0001…0.1 ×4", "0, 1 ×2"."""
    if axis.is_range:
        return f"{axis.scale} {axis.low:.6g}…{axis.high:.6g} ×{axis.count}"
    return f"{axis.text()} ×{axis.size()}"
