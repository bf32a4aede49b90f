"""Command line: `scratch-tui` opens the app; `scratch-tui train` runs the same engine headless.

Every run is recorded in the run store (`scratch-tui runs` lists them) unless --no-record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from .engine.command import command_line  # noqa: F401  (the app and `runs show` print the same line)
from .engine.config import (AUGMENT_NAMES, DATASET_NAMES, INIT_NAMES, MODEL_NAMES, OPTIMIZER_NAMES, PRESETS,
                            SCHEDULE_NAMES, ConfigError, TrainConfig, parse_hidden, preset)
from .train_printer import duration, percent

if TYPE_CHECKING:
    from .engine.loop import TrainingRun
    from .engine.store import RunStore

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT; a SIGTERM or SIGHUP stop exits 128 + its number
CONTROL_CHOICES = ("pause", "resume", "stop", "set-lr", "checkpoint")
RUNS_DIR_HELP = "where runs are recorded (default: $SCRATCH_TUI_HOME or the user data dir)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming it (and where to look), never a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# flag -> (TrainConfig field, argparse kwargs)
TRAIN_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--dataset": ("dataset", dict(choices=DATASET_NAMES, help="images to train on (default: the bundled fashion-mnist-mini)")),
    "--data-dir": ("data_dir", dict(metavar="DIR", help="where full datasets live (default: $SCRATCH_TUI_DATA or the user cache)")),
    "--model": ("model", dict(choices=MODEL_NAMES)),
    "--hidden": ("hidden", dict(metavar="SIZES", help="MLP hidden layer sizes, e.g. 128,64")),
    "--init": ("init", dict(choices=INIT_NAMES, help="MLP weight init: kaiming (scaled) or randn (unscaled N(0,1))")),
    "--epochs": ("epochs", dict(type=int)),
    "--batch-size": ("batch_size", dict(type=int)),
    "--lr": ("lr", dict(type=float, help="learning rate (peak rate for onecycle)")),
    "--optimizer": ("optimizer", dict(choices=OPTIMIZER_NAMES)),
    "--momentum": ("momentum", dict(type=float, help="SGD momentum")),
    "--nesterov": ("nesterov", dict(action=argparse.BooleanOptionalAction, help="Nesterov momentum for SGD")),
    "--weight-decay": ("weight_decay", dict(type=float)),
    "--schedule": ("schedule", dict(choices=SCHEDULE_NAMES)),
    "--label-smoothing": ("label_smoothing", dict(type=float)),
    "--augment": ("augment", dict(choices=AUGMENT_NAMES, help="flip: mirror training images at random "
                                                               "(for clothes and CIFAR-10, not digits)")),
    "--val-split": ("val_split", dict(type=float, help="fraction of train held out for validation (0 allowed)")),
    "--seed": ("seed", dict(type=int)),
    "--device": ("device", dict(help="auto, cpu, cuda, cuda:N or mps (default auto)")),
    "--max-train-samples": ("max_train_samples", dict(type=int, metavar="N", help="train on at most N images (0: all)")),
    "--name": ("name", dict(help="a name for this run")),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scratch-tui", description="Train PyTorch networks built from scratch, live in the terminal. "
                     "With no command, opens the app.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="train headless and print one line per epoch (or JSON lines)",
                           description="Train headless. Flags override --config, which overrides --preset.")
    train.add_argument("--preset", choices=tuple(PRESETS), help="start from a named recipe")
    train.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    for flag, (_, kwargs) in TRAIN_FLAGS.items():
        train.add_argument(flag, default=None, **kwargs)
    train.add_argument("--jsonl", action="store_true", help="print one JSON object per event per line")
    train.add_argument("--save-config", metavar="FILE.toml", help="write the resolved settings to a TOML file and exit")
    train.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    train.add_argument("--no-record", action="store_true", help="do not record the run: no run id, no checkpoints")
    train.add_argument("--resume", metavar="RUN_ID", help="continue a recorded run from its last checkpoint "
                                                          "(only --epochs may change, to train it further)")
    train.add_argument("--detach", action="store_true", help="train in a background process that outlives the "
                                                             "terminal; print the run id and return")
    # A detached child trains the run its parent created (config read from the store).
    train.add_argument("--run-id", help=argparse.SUPPRESS)
    train.add_argument("--no-hangup", action="store_true", help=argparse.SUPPRESS)
    # The app trains in a child process (its own GIL) and steers it with lines on stdin.
    train.add_argument("--control-stdin", action="store_true", help=argparse.SUPPRESS)

    runs = sub.add_parser("runs", help="list recorded runs; show, export, delete or steer one",
                          description="With no action, list the recorded runs, newest first. "
                                      "A run id may be shortened to any unique prefix.")
    runs.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    actions = runs.add_subparsers(dest="runs_command", parser_class=_Parser, metavar="ACTION")

    def run_action(name: str, help: str) -> argparse.ArgumentParser:
        action = actions.add_parser(name, help=help)
        action.add_argument("run_id", metavar="RUN_ID")
        action.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS, help=RUNS_DIR_HELP)
        return action

    run_action("show", "a run's settings, epochs, evaluation and the command that repeats it")
    export = run_action("export", "write a run's metrics as CSV (epochs) or JSON (everything)")
    export.add_argument("--format", choices=("csv", "json"), default="json")
    export.add_argument("--output", metavar="FILE", help="write here instead of to stdout")
    rm = run_action("rm", "delete a run and its checkpoints")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--force", action="store_true", help="delete it even while it is running")
    control = run_action("control", "pause, resume, stop, set-lr or checkpoint a running run (also one in "
                                    "another process)")
    control.add_argument("action", choices=CONTROL_CHOICES)
    control.add_argument("value", nargs="?", type=float, help="the new learning rate, for set-lr")

    evaluate = sub.add_parser("eval", help="evaluate a recorded run's best checkpoint on the test set")
    evaluate.add_argument("run_id", metavar="RUN_ID")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument("--device", help="where to evaluate (default: the run's own --device)")
    evaluate.add_argument("--jsonl", action="store_true", help="print the evaluation as one JSON object")
    evaluate.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    sub.add_parser("devices", help="list the devices torch can train on")

    attach = sub.add_parser("attach", help="open the app on a running run (default: the latest), live")
    attach.add_argument("run_id", nargs="?", metavar="RUN_ID")
    attach.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    serve = sub.add_parser("serve", help="serve the app to a web browser (textual-serve)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.preset:
        config = preset(args.preset, config)
    overrides: dict[str, Any] = {}
    for flag, (field_name, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            overrides[field_name] = parse_hidden(value) if field_name == "hidden" else value
    return config.replace(**overrides) if overrides else config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "runs":
        return _runs(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "devices":
        return _devices(sys.stdout)
    if args.command == "attach":
        return _attach(args)
    if args.command == "serve":
        return _serve(args)
    return _open_app()


def _open_app(attach: str | None = None) -> int:
    # `serve` runs the app with stdout piped to textual-serve, naming its driver in TEXTUAL_DRIVER
    if not sys.stdout.isatty() and not os.environ.get("TEXTUAL_DRIVER"):
        print("scratch-tui: the app needs a terminal; for scripts and pipes use `scratch-tui train`",
              file=sys.stderr)
        return EXIT_USAGE
    from .ui.app import run_app

    return run_app(attach=attach)


def _attach(args: argparse.Namespace) -> int:
    from .engine.store import RunNotFound, RunStore, StoreError

    if args.runs_dir:
        os.environ["SCRATCH_TUI_HOME"] = args.runs_dir  # the app opens the same store
    try:
        with RunStore(args.runs_dir) as store:
            run_id = store.resolve(args.run_id) if args.run_id else store.latest_running()
    except (StoreError, RunNotFound) as exc:
        return _error(str(exc), "attach", EXIT_USAGE)
    if run_id is None:
        return _error("no run is running; `scratch-tui runs` lists them, `scratch-tui train --detach` starts one",
                      "attach", EXIT_USAGE)
    return _open_app(attach=run_id)


def _serve(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        return _error("textual-serve is not installed; pip install textual-serve", "serve")
    print(f"Serving scratch-tui at http://{args.host}:{args.port} (Ctrl-C stops)")
    Server(f"{shlex.quote(sys.executable)} -m tui_trainer", host=args.host, port=args.port,
           title="scratch-tui").serve()
    return 0


def _devices(out: TextIO) -> int:
    from .engine.devices import list_devices, runtime_versions

    versions = runtime_versions()
    print(f"torch {versions['torch']}, CUDA {versions['cuda'] or 'none'}, cuDNN {versions['cudnn'] or 'none'}, "
          f"CPU threads {versions['cpu_threads']}", file=out)
    rows = [("DEVICE", "NAME", "MEMORY", "COMPUTE")]
    for d in list_devices():
        memory = f"{d.memory_bytes / 2**30:.1f} GiB" if d.memory_bytes else "-"
        rows.append((d.name, d.label, memory, d.compute_capability or "-"))
    for line in _table(rows):
        print(line, file=out)
    return 0


def _table(rows: list[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _train(args: argparse.Namespace) -> int:
    if args.run_id is not None:
        return _train_detached_child(args)
    if args.resume is not None:
        return _resume(args)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return _usage_error(_name_flags(exc))
    if args.save_config:
        config.save(args.save_config)
        print(f"wrote {args.save_config}")
        return 0
    if args.no_record and args.detach:
        return _usage_error("--detach records the run so you can follow it; drop --no-record")

    from .engine.control import TrainingControl
    from .engine.loop import TrainingRun
    from .engine.store import RunStore, StoreError

    if args.detach:
        return _detach_new(args, config)
    printer = _printer(args)
    run = TrainingRun(config, TrainingControl(), download_progress=printer.download_progress)
    if args.no_record:
        return _train_in_foreground(run, None, printer, control_stdin=args.control_stdin)
    try:
        store = RunStore(args.runs_dir)
    except StoreError as exc:
        return _error(f"{exc} (or train with --no-record)")
    with store:
        return _train_in_foreground(run, store, printer, control_stdin=args.control_stdin)


def _printer(args: argparse.Namespace) -> Any:
    from .train_printer import JsonLinesPrinter, TerminalPrinter

    if args.jsonl:
        return JsonLinesPrinter(sys.stdout, images=getattr(args, "control_stdin", False))
    return TerminalPrinter(sys.stdout, sys.stderr)


def _train_in_foreground(run: "TrainingRun", store: "RunStore | None", printer: Any, hangup: bool = True,
                         detached_child: bool = False, control_stdin: bool = False) -> int:
    """Set up (a usage error leaves no run behind), then train, record and print until the run ends.

    Ctrl-C, SIGTERM and SIGHUP (the SSH session dropped) stop it cleanly, with a checkpoint;
    a second signal stops it at once. A detached child passes hangup=False and ignores SIGHUP.
    """
    from .engine.checkpoints import CheckpointError
    from .engine.data import DatasetUnavailable
    from .engine.devices import DeviceError
    from .engine.recording import recorded
    from .engine.store import RunNotFound, StoreError

    try:
        run.setup()
    except (DeviceError, DatasetUnavailable, CheckpointError) as exc:
        if detached_child:  # its row exists (the parent made it) and must not stay "running"
            store.set_status(run.run_id, "failed", str(exc))
        if isinstance(exc, DeviceError):
            return _usage_error(str(exc).replace("device:", "--device:", 1))
        return _error(str(exc))

    control = run.control
    interrupted: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        if interrupted:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        interrupted.append(signum)
        control.stop()

    stop_signals = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, request_stop) for s in stop_signals}
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, request_stop if hangup else signal.SIG_IGN)
    final = None
    reader_gone: list[int] = []
    try:
        events = recorded(run, store) if store is not None else run.events()
        if control_stdin:
            threading.Thread(target=_obey_stdin, args=(control, events), daemon=True).start()
        for event in events:
            final = event
            if reader_gone:
                continue
            try:
                printer.handle(event)
            except BrokenPipeError:
                # whoever read the output went away (`| head`): stop as for a signal, recorded and
                # checkpointed, with nothing more to say on that stdout
                reader_gone.append(signal.SIGPIPE)
                _quiet_stdout()
                control.stop()
    except KeyboardInterrupt:
        print("scratch-tui train: stopped at once; the last checkpoint is from the last epoch end", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (StoreError, RunNotFound, CheckpointError, OSError) as exc:
        return _error(f"recording the run failed: {exc}")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    name = final.event_name if final else ""
    if name == "run_failed":
        return EXIT_FAILED
    if name == "run_stopped" and (interrupted or reader_gone):
        return 128 + (interrupted or reader_gone)[0]
    return 0


def _quiet_stdout() -> None:
    """Send what is left of stdout to /dev/null, so Python's flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _obey_stdin(control: Any, events: Any) -> None:
    """Apply `pause`, `resume`, `stop`, `set_lr VALUE` and `checkpoint` lines from stdin; EOF means stop."""
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        try:
            if command == "set_lr":
                control.set_lr(float(value))
            elif command == "checkpoint":
                getattr(events, "request_checkpoint", lambda: None)()
            elif command in ("pause", "resume", "stop"):
                getattr(control, command)()
        except ValueError:
            continue  # the app validated the value; a bad line must not kill the run
    control.stop()  # the app is gone: a child of the app does not outlive it


def _given_train_flags(args: argparse.Namespace) -> list[str]:
    """Settings flags typed on the command line (those a resumed run cannot take)."""
    given = [flag for flag in ("--preset", "--config", "--save-config") if getattr(args, flag[2:].replace("-", "_"))]
    given += [flag for flag in TRAIN_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    return given + (["--no-record"] if args.no_record else [])


def _resume(args: argparse.Namespace) -> int:
    refused = [flag for flag in _given_train_flags(args) if flag != "--epochs"]
    if refused:
        return _usage_error(f"--resume continues run {args.resume} with its own settings; drop {', '.join(refused)} "
                            f"(only --epochs may change, to train it further)")
    from .engine.checkpoints import CheckpointError
    from .engine.control import TrainingControl
    from .engine.recording import resume_run
    from .engine.store import RunNotFound, RunStore, StoreError

    printer = _printer(args)
    try:
        store = RunStore(args.runs_dir)
        run_id = store.resolve(args.resume)
        run = resume_run(store, run_id, args.epochs, TrainingControl(), download_progress=printer.download_progress)
    except RunNotFound as exc:
        return _usage_error(f"--resume: {exc}")
    except ConfigError as exc:
        return _usage_error(_name_flags(exc))
    except (StoreError, CheckpointError) as exc:
        return _error(str(exc))
    with store:
        if args.detach:
            child = ["--resume", run_id] + (["--epochs", str(args.epochs)] if args.epochs is not None else [])
            return _spawn(store, run_id, child, args.jsonl, new_run=False)
        return _train_in_foreground(run, store, printer, control_stdin=args.control_stdin)


def _detach_new(args: argparse.Namespace, config: TrainConfig) -> int:
    from .engine.devices import DeviceError, resolve_device
    from .engine.store import RunStore, StoreError

    try:
        resolve_device(config.device)  # a usage error now, not in a log nobody reads
    except DeviceError as exc:
        return _usage_error(str(exc).replace("device:", "--device:", 1))
    try:
        store = RunStore(args.runs_dir)
    except StoreError as exc:
        return _error(str(exc))
    with store:
        run_id = store.create_run(config)
        return _spawn(store, run_id, ["--run-id", run_id], args.jsonl, new_run=True)


def _spawn(store: "RunStore", run_id: str, child_args: list[str], jsonl: bool, new_run: bool) -> int:
    """Start `scratch-tui train` for the run in its own session (no terminal, so no SIGHUP), logging to a file."""
    log = store.log_path(run_id)
    command = [sys.executable, "-m", "tui_trainer", "train", "--runs-dir", str(store.root.resolve()),
               *child_args, "--no-hangup", *(["--jsonl"] if jsonl else [])]
    # An ignored signal stays ignored across exec: the child is immune from its first instruction,
    # not only once it has imported torch and reached the training loop.
    hangup = getattr(signal, "SIGHUP", None)
    previous = signal.signal(hangup, signal.SIG_IGN) if hangup else None
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError as exc:
        if new_run:
            store.set_status(run_id, "failed", f"the background process did not start: {exc}")
        return _error(f"cannot start the background process ({exc})")
    finally:
        if hangup:
            signal.signal(hangup, previous)
    if new_run:
        store.set_process(run_id, child.pid)  # from now on the child's life is the run's
    if jsonl:
        print(json.dumps({"event": "run_detached", "run_id": run_id, "pid": child.pid, "log": str(log)}))
    else:
        print(f"Started run {run_id} in the background (pid {child.pid}); its output goes to {log}")
        print(f"Watch it with `scratch-tui runs show {run_id}`, stop it with `scratch-tui runs control {run_id} stop`.")
    return 0


def _train_detached_child(args: argparse.Namespace) -> int:
    from .engine.control import TrainingControl
    from .engine.loop import TrainingRun
    from .engine.store import RunNotFound, RunStore, StoreError

    printer = _printer(args)
    try:
        store = RunStore(args.runs_dir)
        config = store.get_run(args.run_id).train_config()
    except (StoreError, RunNotFound, ConfigError) as exc:
        return _error(str(exc))
    run = TrainingRun(config, TrainingControl(), download_progress=printer.download_progress)
    run.run_id = args.run_id
    with store:
        return _train_in_foreground(run, store, printer, hangup=not args.no_hangup, detached_child=True)


# -- scratch-tui runs ----------------------------------------------------------------------------------------
def _runs(args: argparse.Namespace) -> int:
    from .engine.store import RunNotFound, RunStore, StoreError

    action = args.runs_command or "list"
    command = "runs" if action == "list" else f"runs {action}"
    try:
        with RunStore(args.runs_dir) as store:
            return _RUNS_ACTIONS[action](store, args)
    except RunNotFound as exc:
        return _usage_error(str(exc), command)
    except ValueError as exc:  # a bad control value
        return _usage_error(str(exc), command)
    except (StoreError, OSError) as exc:
        return _error(str(exc), command)


def _runs_list(store: "RunStore", args: argparse.Namespace) -> int:
    runs = store.list_runs()
    if not runs:
        print(f"No runs recorded in {store.root} yet; start one with `scratch-tui train`.")
        return 0
    rows = [("ID", "NAME", "MODEL", "DATASET", "STATUS", "EPOCHS", "BEST VAL", "TEST", "DURATION", "STARTED")]
    for r in runs:
        status = "paused" if r.paused and r.status == "running" else r.status
        rows.append((r.id, r.name or "-", r.model, r.dataset, status, f"{r.epochs_done}/{r.epochs}",
                     percent(r.best_val_acc), percent(r.test_acc), duration(r.duration_s), _when(r.started_at)))
    for line in _table(rows):
        print(line)
    return 0


def _runs_show(store: "RunStore", args: argparse.Namespace) -> int:
    r = store.get_run(args.run_id)
    out: list[str] = [f"Run {r.id}" + (f" ({r.name})" if r.name else "") + f": {r.status}"
                      + (" (paused)" if r.paused and r.status == "running" else "")]
    if r.message:
        out.append(f"  {r.message}")
    out.append(f"  {r.model} on {r.dataset}, {r.epochs_done}/{r.epochs} epochs, {duration(r.duration_s)} of training")
    out.append(f"  started {_when(r.started_at)}" + (f", ended {_when(r.ended_at)}" if r.ended_at else "")
               + (f", device {r.device} ({r.device_name})" if r.device else "")
               + (f", torch {r.torch_version}" if r.torch_version else "")
               + (f", pid {r.pid} on {r.host}" if r.pid else ""))
    for label, path in (("last", r.last_checkpoint), ("best", r.best_checkpoint)):
        if path:
            out.append(f"  {label} checkpoint: {path}")
    out += ["", "Repeat it with:", f"  {command_line(r.train_config())}", "", "Settings:"]
    out += [f"  {line}" for line in r.train_config().to_toml().splitlines()]
    epochs = store.epochs(r.id)
    if epochs:
        rows = [("EPOCH", "TRAIN LOSS", "TRAIN ACC", "VAL LOSS", "VAL ACC", "LR", "SECONDS")]
        for e in epochs:
            rows.append((str(e["epoch"]), f"{e['train_loss']:.4f}", percent(e["train_acc"]),
                         "-" if e["val_loss"] is None else f"{e['val_loss']:.4f}", percent(e["val_acc"]),
                         f"{e['lr']:.3g}", f"{e['seconds']:.1f}"))
        out += ["", "Epochs:"] + [f"  {line}" for line in _table(rows)]
    evaluation = store.evaluation(r.id)
    if evaluation:
        from .engine.events import event_from_dict
        from .train_printer import format_test

        result = event_from_dict(evaluation)
        out += ["", "Evaluation:", f"  {format_test(result)}"]
        out += [f"  {name:<12} {acc:6.2f}%" for name, acc in zip(result.classes, result.per_class_acc)]
    print("\n".join(out))
    return 0


def _runs_export(store: "RunStore", args: argparse.Namespace) -> int:
    from .engine.export import export_run

    text = export_run(store, args.run_id, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _runs_rm(store: "RunStore", args: argparse.Namespace) -> int:
    store.mark_interrupted()
    r = store.get_run(args.run_id)
    if r.status == "running" and not args.force:
        return _usage_error(f"run {r.id} is running (pid {r.pid}); stop it first with `scratch-tui runs control "
                            f"{r.id} stop`, or pass --force", "runs rm")
    if not args.yes:
        if not sys.stdin.isatty():
            return _usage_error(f"not deleting run {r.id} without confirmation; pass --yes", "runs rm")
        answer = input(f"Delete run {r.id}{f' ({r.name})' if r.name else ''}, {r.status}, "
                       f"{r.epochs_done}/{r.epochs} epochs, and its checkpoints? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print(f"Kept run {r.id}.")
            return EXIT_FAILED
    store.delete(r.id)
    print(f"Deleted run {r.id} and its checkpoints.")
    return 0


def _runs_control(store: "RunStore", args: argparse.Namespace) -> int:
    command = "runs control"
    if args.action == "set-lr" and args.value is None:
        return _usage_error(f"set-lr needs the new rate, e.g. `scratch-tui runs control {args.run_id} set-lr 0.001`",
                            command)
    if args.action != "set-lr" and args.value is not None:
        return _usage_error(f"{args.action} takes no value; only set-lr does", command)
    store.mark_interrupted()
    r = store.get_run(args.run_id)
    if r.status != "running":
        return _error(f"run {r.id} is {r.status}; only a running run takes controls"
                      + (f" (continue it with `scratch-tui train --resume {r.id}`)" if r.status != "finished" else ""),
                      command)
    store.send_control(r.id, args.action.replace("-", "_"), args.value)
    what = f"set its learning rate to {args.value:g}" if args.action == "set-lr" else args.action
    print(f"Asked run {r.id} to {what}; it acts on it within a second.")
    return 0


_RUNS_ACTIONS = {"list": _runs_list, "show": _runs_show, "export": _runs_export, "rm": _runs_rm,
                 "control": _runs_control}


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


# -- scratch-tui eval ----------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from .engine.store import RunNotFound, RunStore, StoreError

    try:
        with RunStore(args.runs_dir) as store:
            r = store.get_run(args.run_id)
    except RunNotFound as exc:
        return _usage_error(str(exc), "eval")
    except StoreError as exc:
        return _error(str(exc), "eval")
    path = r.best_checkpoint if args.checkpoint == "best" else r.last_checkpoint
    path = path or r.last_checkpoint
    if not path:
        return _error(f"run {r.id} has no checkpoint to evaluate (it saves one at each epoch end)", "eval")

    from .engine.checkpoints import CheckpointError, load_checkpoint
    from .engine.data import DatasetUnavailable
    from .engine.devices import DeviceError
    from .engine.evaluate import evaluate
    from .engine.loop import TrainingRun

    printer = _printer(args)
    try:
        checkpoint = load_checkpoint(path)
        run = TrainingRun.from_checkpoint(checkpoint, device=args.device, download_progress=printer.download_progress)
        run.setup()
    except ConfigError as exc:
        return _usage_error(_name_flags(exc), "eval")
    except DeviceError as exc:
        return _usage_error(str(exc).replace("device:", "--device:", 1), "eval")
    except (CheckpointError, DatasetUnavailable) as exc:
        return _error(str(exc), "eval")
    data = run.data
    result = evaluate(run.model, data.test_x, data.test_y, data.classes, data.test_images)
    if not args.jsonl:
        where = f"epoch {checkpoint.epoch}" + (f", step {checkpoint.step}" if checkpoint.mid_epoch else "")
        print(f"Evaluating run {r.id} ({Path(path).name}, {where}) on the {data.spec.title} test set, "
              f"device {run.device}")
    printer.handle(result)
    return 0


def _name_flags(exc: ConfigError) -> str:
    """Config messages name fields; on the command line, name the flag the user typed."""
    flags = {field_name: flag for flag, (field_name, _) in TRAIN_FLAGS.items()}
    return "; ".join(
        msg.replace(f"{name}:", f"{flags[name]}:", 1) if name in flags else msg for name, msg in exc.errors.items()
    )


def _usage_error(message: str, command: str = "train") -> int:
    return _error(message, command, EXIT_USAGE)


def _error(message: str, command: str = "train", code: int = EXIT_FAILED) -> int:
    print(f"scratch-tui {command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
