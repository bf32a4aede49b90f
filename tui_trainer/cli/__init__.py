"""Command line: `scratch-tui` opens the app; `scratch-tui train` runs the same engine headless.

Every run is recorded in the run store (`scratch-tui runs` lists them) unless --no-record.
"""

from __future__ import annotations

import signal
import sys
import threading


def _interrupted_while_starting(signum: int, frame: object) -> None:
    print("scratch-tui: interrupted", file=sys.stderr)
    raise SystemExit(130)  # 128 + SIGINT, as main's own; SystemExit leaves an import without a traceback


# Ctrl-C while this package's modules import (before main can catch anything) ends with one line; main puts
# Python's own handler back, under which each command stops in its own way
_QUIET_START = threading.current_thread() is threading.main_thread() and \
    signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _QUIET_START:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import argparse  # noqa: E402 (after the handler: the imports are what it covers)
from typing import Sequence  # noqa: E402

from .app import open_app, run_attach, run_devices, run_serve
from .common import EXIT_INTERRUPTED, RUNS_DIR_HELP, Parser, package_version, reader_gone
from .evaluate import run_eval
from .flags import TRAIN_FLAGS
from .inspect import add_inspect_parser, run_inspect
from .lr_find import add_lr_find_parser, run_lr_find
from .queue import add_queue_parser, run_queue_command
from .runs import run_runs
from .study import add_worker_parser, run_worker
from .sweep import add_sweep_parser, run_sweep_command, with_default_action
from .train import run_train
from ..engine.commands import COMMANDS
from ..engine.config import PRESETS
from ..runs.evaluation import CHECKPOINTS


class _Version(argparse.Action):
    """--version: "scratch-tui X.Y.Z", read only when asked (the metadata lookup costs every other command)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        print(f"scratch-tui {package_version()}")
        parser.exit()


MODELS_DIR_HELP = ("a folder whose .py files setup lists as models, besides the working directory's; the app "
                   "imports model files from these two only")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="scratch-tui", description="Train PyTorch networks built from scratch, live in the terminal. "
                     "With no command, opens the app.")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("--models-dir", metavar="DIR", help=MODELS_DIR_HELP)
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="train headless and print one line per epoch (or JSON lines)",
                           description="Train headless. Flags override --preset, which sets what it names over --config.")
    train.add_argument("--preset", choices=tuple(PRESETS), help="start from a named recipe")
    train.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    for flag, kwargs in TRAIN_FLAGS.items():
        train.add_argument(flag, default=None, **kwargs)
    train.add_argument("--jsonl", action="store_true", help="print one JSON object per event per line")
    train.add_argument("--save-config", metavar="FILE.toml", help="write the resolved settings to a TOML file and exit")
    train.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    train.add_argument("--no-record", action="store_true", help="do not record the run: no run id, no checkpoints")
    train.add_argument("--resume", metavar="RUN_ID", help="continue a recorded run from its last checkpoint "
                                                          "(only --epochs may change, to train it further)")
    train.add_argument("--fork", metavar="RUN_ID[@EPOCH|@step-STEP]", help="start a new run from that run's "
                       "checkpoint of EPOCH, or the one written on demand at STEP (default: its last), with its "
                       "settings but for the flags given; early stopping, the plateau count and the best epoch "
                       "start fresh")
    train.add_argument("--keep-steering", action="store_true", help="with --fork: carry on the parent's early-"
                       "stopping patience, plateau count and best epoch (and its weights, for --restore-best) "
                       "instead of starting them fresh")
    train.add_argument("--replay", metavar="RUN_ID", help="set the lr at the same steps as that run's mid-run lr "
                       "changes (`runs show` gives a run's repeat line with it)")
    train.add_argument("--detach", action="store_true", help="train in a background process that outlives the "
                                                             "terminal; print the run id and return")
    train.add_argument("--seeds", metavar="S1,S2,...", help="train once per seed (e.g. 0,1,2) through the queue, then "
                                                           "print the mean and std of the test accuracy")

    runs = sub.add_parser("runs", help="list recorded runs; show, export, delete or steer one",
                          description="With no action, list the recorded runs, newest first. "
                                      "A run id may be shortened to any unique prefix.")
    runs.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    runs.add_argument("--sweep", metavar="SWEEP_ID", help="only the runs of this sweep (an id or a unique prefix)")
    actions = runs.add_subparsers(dest="runs_command", parser_class=Parser, metavar="ACTION")

    def run_action(name: str, help: str) -> argparse.ArgumentParser:
        action = actions.add_parser(name, help=help)
        action.add_argument("run_id", metavar="RUN_ID")
        action.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS, help=RUNS_DIR_HELP)
        return action

    show = run_action("show", "a run's settings, epochs, evaluation and the command that repeats it")
    show.add_argument("--layers", action="store_true", help="print its layer statistics instead (the probe's)")
    show.add_argument("--epoch", type=int, metavar="N", help="with --layers: as probed at the end of epoch N "
                                                              "(default: the last probe)")
    show.add_argument("--diff", metavar="OTHER_ID", help="name every difference between this run's receipt and "
                                                         "settings and another's")
    verify = run_action("verify", "train a run's first steps again and compare the losses with its log "
                                  "(exit 0: reproduced, 1: not)")
    verify.add_argument("--steps", type=int, metavar="N", help="steps to train again (default: one epoch or 200, "
                                                               "whichever is fewer)")
    verify.add_argument("--deterministic", action="store_true", help="use torch's deterministic algorithms: bitwise "
                                                                     "on CUDA too, at some cost in speed")
    verify.add_argument("--threads", type=int, metavar="N", help="compute with N CPU threads, not the recorded count")
    export = actions.add_parser("export", help="write runs' metrics as CSV (epochs), JSON (everything) or "
                                               "TensorBoard event files (one folder per run)")
    export.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    export.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS, help=RUNS_DIR_HELP)
    export.add_argument("--all", action="store_true", help="every recorded run")
    export.add_argument("--sweep", metavar="SWEEP_ID", default=argparse.SUPPRESS, help="every run of this sweep")
    export.add_argument("--format", choices=("csv", "json", "tensorboard"), default="json")
    export.add_argument("--output", metavar="FILE|DIR", help="write here instead of to stdout; for tensorboard, the "
                                                             "folder that gets one folder per run (needed)")
    rm = run_action("rm", "delete a run and its checkpoints")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--force", action="store_true", help="delete it even while it is running")
    prune = run_action("prune", "delete a stopped or finished run's old checkpoints, keeping the best and the last")
    prune.add_argument("--keep", type=int, default=1, metavar="N",
                       help="epoch checkpoints to keep besides the best, and as many written on demand "
                            "(default %(default)s)")
    control = run_action("control", "pause, resume, stop, set-lr or checkpoint a running run (also one in "
                                    "another process)")
    control.add_argument("action", choices=[name.replace("_", "-") for name in COMMANDS])
    control.add_argument("value", nargs="?", type=float, help="the new learning rate, for set-lr")

    add_queue_parser(sub)
    add_sweep_parser(sub)
    add_worker_parser(sub)
    add_lr_find_parser(sub)
    add_inspect_parser(sub)

    evaluate = sub.add_parser("eval", help="evaluate a recorded run's best checkpoint on the test set")
    evaluate.add_argument("run_id", metavar="RUN_ID")
    evaluate.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                          help="which checkpoint (default best; last when the run has no best)")
    evaluate.add_argument("--device", help="where to evaluate (default: the run's own --device)")
    evaluate.add_argument("--jsonl", action="store_true", help="print the evaluation as one JSON object")
    evaluate.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    sub.add_parser("devices", help="list the devices torch can train on",
                   description="Print the torch, CUDA and cuDNN versions, then the devices torch can train on: each "
                               "CUDA GPU with its name, memory and compute capability (and live readings with "
                               "nvidia-ml-py), Apple MPS, and the CPU. `--device` takes the names of the first column.")

    attach = sub.add_parser("attach", help="open the app on a running run (default: the latest), live",
                            description="Open the app on a run, live: its whole history so far, then each step as it "
                                        "trains. With no RUN_ID, the latest run still training. Closing the app leaves "
                                        "the run training; `scratch-tui attach` brings it back.")
    attach.add_argument("run_id", nargs="?", metavar="RUN_ID")
    attach.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    attach.add_argument("--models-dir", metavar="DIR", default=argparse.SUPPRESS, help=MODELS_DIR_HELP)

    serve = sub.add_parser("serve", help="serve the app to a web browser (textual-serve)",
                           description="Serve the app to a web browser, at http://127.0.0.1:8000 by default. It prints "
                                       "the URL to open, with a secret token (/?token=...): every request "
                                       "needs it, so open that whole URL. Through an SSH tunnel "
                                       "(ssh -L 9000:127.0.0.1:8000 host), keep the token and change only "
                                       "the port.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default %(default)s: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default %(default)s)")
    serve.add_argument("--models-dir", metavar="DIR", default=argparse.SUPPRESS, help=MODELS_DIR_HELP)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as the commands take it; a bad one exits 2 with one line naming what is wrong."""
    args, unknown = build_parser().parse_known_args(with_default_action(argv))
    command = [args.command, getattr(args, f"{args.command}_command", None)] if args.command else []
    said_by = Parser(prog=" ".join(["scratch-tui", *filter(None, command)]))  # the line points at its --help
    if unknown:
        said_by.error(f"unrecognized arguments: {' '.join(unknown)}")
    # an empty path is a slip (an unset variable in a script), never "the default": `--config ""` trained the
    # defaults, and `--runs-dir ""` would record in the working directory
    for name in PATH_FLAGS:
        if getattr(args, name, None) == "":
            said_by.error(f"--{name.replace('_', '-')}: got an empty path; give a file or folder, or leave the flag "
                          f"out")
    return args


PATH_FLAGS = ("config", "save_config", "runs_dir", "models_dir", "output")


def main(argv: Sequence[str] | None = None) -> int:
    if _QUIET_START and signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = _run(parse(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, where a reader that went away (`| head`) is caught
        return code
    except BrokenPipeError:
        return reader_gone()
    except KeyboardInterrupt:  # Ctrl-C before a command had its own say (a training run stops cleanly itself)
        print("scratch-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        return run_train(args)
    if args.command == "runs":
        return run_runs(args)
    if args.command == "queue":
        return run_queue_command(args)
    if args.command == "sweep":
        return run_sweep_command(args)
    if args.command == "worker":
        return run_worker(args)
    if args.command == "eval":
        return run_eval(args)
    if args.command == "lr-find":
        return run_lr_find(args)
    if args.command == "inspect":
        return run_inspect(args)
    if args.command == "devices":
        return run_devices(sys.stdout)
    if args.command == "attach":
        return run_attach(args)
    if args.command == "serve":
        return run_serve(args)
    return open_app(models_dir=args.models_dir)


if __name__ == "__main__":
    sys.exit(main())
