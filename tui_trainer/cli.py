"""Command line: `scratch-tui` opens the app; `scratch-tui train` runs the same engine headless."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any, Sequence, TextIO

from .engine.config import (AUGMENT_NAMES, DATASET_NAMES, INIT_NAMES, MODEL_NAMES, OPTIMIZER_NAMES, PRESETS,
                            SCHEDULE_NAMES, ConfigError, TrainConfig, parse_hidden, preset)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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

    sub.add_parser("devices", help="list the devices torch can train on")
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
    if args.command == "devices":
        return _devices(sys.stdout)
    return _open_app()


def _open_app() -> int:
    if not sys.stdout.isatty():
        print("scratch-tui: the app needs a terminal; for scripts and pipes use `scratch-tui train`",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        from .ui.app import run_app
    except ImportError:
        print("scratch-tui: the terminal app is not built yet; use `scratch-tui train`", file=sys.stderr)
        return EXIT_USAGE
    return run_app()


def _devices(out: TextIO) -> int:
    from .engine.devices import list_devices, runtime_versions

    versions = runtime_versions()
    print(f"torch {versions['torch']}, CUDA {versions['cuda'] or 'none'}, cuDNN {versions['cudnn'] or 'none'}, "
          f"CPU threads {versions['cpu_threads']}", file=out)
    rows = [("DEVICE", "NAME", "MEMORY", "COMPUTE")]
    for d in list_devices():
        memory = f"{d.memory_bytes / 2**30:.1f} GiB" if d.memory_bytes else "-"
        rows.append((d.name, d.label, memory, d.compute_capability or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)
    return 0


def _train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return _usage_error(_name_flags(exc))
    if args.save_config:
        config.save(args.save_config)
        print(f"wrote {args.save_config}")
        return 0

    from .engine.control import TrainingControl
    from .engine.data import DatasetUnavailable
    from .engine.devices import DeviceError
    from .engine.loop import TrainingRun
    from .train_printer import JsonLinesPrinter, TerminalPrinter

    printer = JsonLinesPrinter(sys.stdout) if args.jsonl else TerminalPrinter(sys.stdout, sys.stderr)
    control = TrainingControl()
    run = TrainingRun(config, control, download_progress=printer.download_progress)
    try:
        run.setup()
    except DeviceError as exc:
        return _usage_error(str(exc).replace("device:", "--device:", 1))
    except DatasetUnavailable as exc:
        print(f"scratch-tui train: error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    interrupted = []

    def request_stop(signum: int, frame: Any) -> None:
        if interrupted:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        interrupted.append(signum)
        control.stop()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        final = None
        for event in run.events():
            printer.handle(event)
            final = event
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    name = final.event_name if final else ""
    if name == "run_failed":
        return EXIT_FAILED
    if name == "run_stopped" and interrupted:
        return EXIT_INTERRUPTED
    return 0


def _name_flags(exc: ConfigError) -> str:
    """Config messages name fields; on the command line, name the flag the user typed."""
    flags = {field_name: flag for flag, (field_name, _) in TRAIN_FLAGS.items()}
    return "; ".join(
        msg.replace(f"{name}:", f"{flags[name]}:", 1) if name in flags else msg for name, msg in exc.errors.items()
    )


def _usage_error(message: str) -> int:
    print(f"scratch-tui train: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
