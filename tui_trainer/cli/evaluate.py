"""`scratch-tui eval`: a recorded run's checkpoint on the test set."""

from __future__ import annotations

import argparse

from ..engine.config import ConfigError
from ..engine.user_text import printable
from .common import error, usage_error
from .flags import name_flags
from .train import printer_for

# -- scratch-tui eval ----------------------------------------------------------------------------------------
def run_eval(args: argparse.Namespace) -> int:
    from ..runs.store import RunNotFound, RunStore, StoreError

    try:
        with RunStore(args.runs_dir) as store:
            r = store.get_run(args.run_id)
    except RunNotFound as exc:
        return usage_error(str(exc), "eval")
    except StoreError as exc:
        return error(str(exc), "eval")
    if r.unreadable:  # made by another version: its checkpoints hold a model this one cannot build
        return error(f"run {r.id} cannot be opened: {r.unreadable}", "eval")
    from ..engine.checkpoints import CheckpointError, CheckpointForeign
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..runs.evaluation import NoCheckpoint, evaluate_checkpoint

    printer = printer_for(args)
    try:
        done = evaluate_checkpoint(r, args.checkpoint, args.device, printer.download_progress)
    except ConfigError as exc:
        return usage_error(name_flags(exc), "eval")
    except DeviceError as exc:
        return usage_error(str(exc).replace("device:", "--device:", 1), "eval")
    except CheckpointForeign as exc:  # another run's file where this run's should be
        return usage_error(str(exc), "eval")
    except (NoCheckpoint, CheckpointError, DatasetUnavailable) as exc:
        return error(str(exc), "eval")
    if not args.jsonl:
        print(printable(f"Evaluating {done.describe(r.id)} on the {done.dataset_title} test set, device {done.device}"))
    printer.handle(done.result)
    return 0
