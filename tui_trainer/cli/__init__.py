"""Command line: `scratch-tui` opens the app; `scratch-tui train` runs the same engine headless.

Every run is recorded in the run store (`scratch-tui runs` lists them) unless --no-record.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .app import open_app, run_attach, run_devices, run_serve
from .common import RUNS_DIR_HELP, Parser, package_version
from .evaluate import run_eval
from .flags import TRAIN_FLAGS
from .inspect import add_inspect_parser, run_inspect
from .lr_find import add_lr_find_parser, run_lr_find
from .queue import add_queue_parser, run_queue_command
from .runs import run_runs
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
    export = run_action("export", "write a run's metrics as CSV (epochs) or JSON (everything)")
    export.add_argument("--format", choices=("csv", "json"), default="json")
    export.add_argument("--output", metavar="FILE", help="write here instead of to stdout")
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
    add_lr_find_parser(sub)
    add_inspect_parser(sub)

    evaluate = sub.add_parser("eval", help="evaluate a recorded run's best checkpoint on the test set")
    evaluate.add_argument("run_id", metavar="RUN_ID")
    evaluate.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                          help="which checkpoint (default best; last when the run has no best)")
    evaluate.add_argument("--device", help="where to evaluate (default: the run's own --device)")
    evaluate.add_argument("--jsonl", action="store_true", help="print the evaluation as one JSON object")
    evaluate.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    sub.add_parser("devices", help="list the devices torch can train on")

    attach = sub.add_parser("attach", help="open the app on a running run (default: the latest), live")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(with_default_action(sys.argv[1:] if argv is None else argv))
    if args.command == "train":
        return run_train(args)
    if args.command == "runs":
        return run_runs(args)
    if args.command == "queue":
        return run_queue_command(args)
    if args.command == "sweep":
        return run_sweep_command(args)
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
