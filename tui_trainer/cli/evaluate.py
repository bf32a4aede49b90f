"""`scratch-tui eval`: a recorded run's checkpoint on the test set."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.config import ConfigError
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
    path = r.best_checkpoint if args.checkpoint == "best" else r.last_checkpoint
    path = path or r.last_checkpoint
    if not path:
        return error(f"run {r.id} has no checkpoint to evaluate (it saves one at each epoch end)", "eval")

    from ..engine.checkpoints import CheckpointError, load_checkpoint
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..engine.evaluate import evaluate
    from ..engine.loop import TrainingRun

    printer = printer_for(args)
    try:
        checkpoint = load_checkpoint(path)
        run = TrainingRun.from_checkpoint(checkpoint, device=args.device, download_progress=printer.download_progress)
        run.setup()
    except ConfigError as exc:
        return usage_error(name_flags(exc), "eval")
    except DeviceError as exc:
        return usage_error(str(exc).replace("device:", "--device:", 1), "eval")
    except (CheckpointError, DatasetUnavailable) as exc:
        return error(str(exc), "eval")
    data = run.data
    result = evaluate(run.model, data.test_x, data.test_y, data.classes, data.test_images)
    if not args.jsonl:
        where = f"epoch {checkpoint.epoch}" + (f", step {checkpoint.step}" if checkpoint.mid_epoch else "")
        print(f"Evaluating run {r.id} ({Path(path).name}, {where}) on the {data.spec.title} test set, "
              f"device {run.device}")
    printer.handle(result)
    return 0
