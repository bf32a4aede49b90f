"""`scratch-tui train`: in the foreground, resumed, forked, replayed, or detached into a process of its own.

The run is made or claimed through runs/ and trained by the run worker (runs/worker.py): in this process, printed
as it goes, or in the background, where runs/spawn.py starts the worker. Under torchrun (`--gpus N`, or torchrun
by hand) every rank runs this command; rank 0 prints and records, the others train in step, silently.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from ..engine.config import ConfigError, TrainConfig
from ..engine.user_text import printable, shown_path
from .common import EXIT_INTERRUPTED, error, usage_error
from .flags import config_from_args, given_train_flags, name_flags

if TYPE_CHECKING:
    from ..engine.loop import TrainingRun
    from ..runs.store import RunStore


def run_train(args: argparse.Namespace) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ..engine.distributed import exit_rank

        exit_rank(_train(args))
    return _train(args)


def _rank() -> int:
    """This process's rank under torchrun; 0 alone."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def _train(args: argparse.Namespace) -> int:
    if args.keep_steering and args.fork is None:
        return usage_error("--keep-steering carries a parent's early stopping and best epoch into a fork; "
                           "give --fork RUN_ID too, or drop it")
    if args.resume is not None:
        return _resume(args)
    if args.fork is not None or args.replay is not None:
        return _fork_or_replay(args)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return usage_error(name_flags(exc))
    if args.seeds is not None:
        from .queue import train_seeds

        return train_seeds(args, config)
    if args.save_config:
        return _save_config(config, args.save_config)
    if args.no_record and args.detach:
        return usage_error("--detach records the run so you can follow it; drop --no-record")

    from ..engine.distributed import launched_by_torchrun
    from ..runs.store import RunStore, StoreError

    if (refused := _device_refused(config)) is not None:  # a usage error now, leaving no run behind
        return refused
    if args.detach:
        return _detach_new(args, config)  # on several GPUs too: the spawn starts the ranks
    if config.gpus > 1 and not launched_by_torchrun():
        return _launch_ranks(args, config.gpus, config=config)
    if args.no_record or _rank() > 0:  # rank 0 records the run: the others cannot look up an id it has just made
        return _unrecorded(args, config)
    try:
        store = RunStore(args.runs_dir)
    except StoreError as exc:
        return error(f"{exc} (or train with --no-record)")
    with store:
        return _work(store, store.create_run(config), printer_for(args))


def _save_config(config: TrainConfig, path: str) -> int:
    """--save-config: the resolved settings as TOML; a path that cannot take them is one line, nothing written."""
    import errno

    why = {errno.ENOENT: "its folder does not exist; create it first or choose another path",
           errno.EISDIR: "it is a folder; give a file name inside it, e.g. config.toml"}
    try:
        config.replace(model_source="").save(path)  # it names the model's file; a run keeps the source
    except OSError as exc:
        return usage_error(f"--save-config: cannot write {shown_path(path)}: "
                           f"{why.get(exc.errno) or (exc.strerror or str(exc)) + '; choose another path'}")
    except ValueError:  # a NUL in the path
        return usage_error(f"--save-config: cannot write {shown_path(path)}: a path holds no NUL character")
    print(f"wrote {printable(path)}")
    return 0


def printer_for(args: argparse.Namespace) -> Any:
    from .printer import JsonLinesPrinter, TerminalPrinter

    if args.jsonl:
        return JsonLinesPrinter(sys.stdout)
    return TerminalPrinter(sys.stdout, sys.stderr)


def _refused(exc: Exception, flag: str = "", rank: int = 0) -> int:
    """A run that cannot be made, found or set up, as its one line and exit code: usage (2) for what the command
    line asked wrongly (`flag` names the one that gave a run id), else 1."""
    from ..engine.checkpoints import CheckpointForeign
    from ..engine.devices import DeviceError
    from ..runs.fork import ForkRefused
    from ..runs.store import RunNotFound

    if isinstance(exc, RunNotFound):
        return usage_error(f"{flag}: {exc}") if flag else error(str(exc))
    if isinstance(exc, ConfigError):
        return usage_error(name_flags(exc))
    if isinstance(exc, DeviceError):
        return usage_error(str(exc).replace("device:", "--device:", 1))
    if isinstance(exc, (ForkRefused, CheckpointForeign)):  # another run's file given as this run's
        return usage_error(str(exc))
    return error(f"rank {rank}: {exc}" if rank else str(exc))


def _device_refused(config: TrainConfig) -> int | None:
    """A device, GPUs or memory this machine lacks: a usage error now, before anything is recorded."""
    from ..engine.fits import check_fits

    try:
        check_fits([config])
    except ConfigError as exc:
        return usage_error(name_flags(exc))
    return None


def _work(store: "RunStore", run_id: str, printer: Any, epochs: int | None = None, what: str = "") -> int:
    """Train the stored run here, printing it as it goes: the run worker's own code, in this process (on a rank
    other than 0, silently). `what` names the flag that gave the run id, for a run that is not there."""
    from ..engine.checkpoints import CheckpointError
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..runs.store import StoreError
    from ..runs.worker import prepare

    rank = _rank()
    try:
        run = prepare(store, run_id, epochs=epochs, rank=rank,
                      download_progress=printer.download_progress if printer is not None else None)
    except (ConfigError, DeviceError, CheckpointError, DatasetUnavailable, LookupError, StoreError) as exc:
        return _refused(exc, what, rank)
    return _drive(run, store, printer)


def _unrecorded(args: argparse.Namespace, config: TrainConfig) -> int:
    """A run in no store: `--no-record`, or a rank other than 0 of a run that rank 0 records."""
    from ..engine.loop import TrainingRun

    printer = printer_for(args) if _rank() == 0 else None
    run = TrainingRun(config, download_progress=printer.download_progress if printer is not None else None)
    return _drive(run, None, printer)


def _drive(run: "TrainingRun", store: "RunStore | None", printer: Any) -> int:
    """Train, record (with a store) and print until the run ends; Ctrl-C, SIGTERM and SIGHUP stop it cleanly
    (runs/worker.py's `drive`); its exit status."""
    from ..engine.checkpoints import CheckpointError
    from ..engine.data import DatasetUnavailable
    from ..runs.advice import resume_advice
    from ..runs.store import RunNotFound, StoreError
    from ..runs.worker import drive

    try:
        return drive(run, store, printer, rank=_rank()).exit_code
    except KeyboardInterrupt:
        advice = resume_advice(run.run_id, store.left_behind(run.run_id)) if store is not None and run.run_id \
            else "nothing was recorded"
        print(f"scratch-tui train: stopped at once; {advice}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CheckpointError, DatasetUnavailable) as exc:  # a full disk or read-only folder: the message says so
        return error(str(exc))
    except (StoreError, RunNotFound, OSError) as exc:
        return error(f"recording the run failed: {exc}")


def _resume(args: argparse.Namespace) -> int:
    refused = [flag for flag in given_train_flags(args) if flag != "--epochs"]
    if refused:
        return usage_error(f"--resume continues run {args.resume} with its own settings; drop {', '.join(refused)} "
                           f"(only --epochs may change, to train it further)")
    from ..engine.distributed import launched_by_torchrun
    from ..runs.store import RunNotFound, RunStore, StoreError
    from ..runs.worker import check_epochs

    try:
        store = RunStore(args.runs_dir)
    except StoreError as exc:
        return error(str(exc))
    with store:
        try:
            record = store.get_run(store.resolve(args.resume))
            gpus = record.train_config().gpus
            if args.detach:
                check_epochs(record, args.epochs)  # the rest is checked by the worker, its failure in its log
        except (RunNotFound, ConfigError, StoreError) as exc:
            return _refused(exc, "--resume")
        if args.detach:
            from ..runs.spawn import SpawnError, resume_in_background

            try:
                return _say_detached(resume_in_background(store, record.id, args.epochs), args.jsonl)
            except (SpawnError, StoreError) as exc:
                return error(str(exc))
        if gpus > 1 and not launched_by_torchrun():  # again on as many GPUs, one rank each
            return _launch_ranks(args, gpus, ["--resume", record.id, *_epochs_flag(args)])
        return _work(store, record.id, printer_for(args) if _rank() == 0 else None, args.epochs, "--resume")


def _detach_new(args: argparse.Namespace, config: TrainConfig) -> int:
    from ..runs.spawn import SpawnError, start_run
    from ..runs.store import RunStore, StoreError

    try:
        with RunStore(args.runs_dir) as store:
            return _say_detached(start_run(store, config), args.jsonl)
    except (StoreError, SpawnError) as exc:
        return error(str(exc))


def _say_detached(spawned: Any, jsonl: bool) -> int:
    run_id = spawned.run_id
    if jsonl:
        print(json.dumps({"event": "run_detached", "run_id": run_id, "pid": spawned.pid, "log": str(spawned.log)}))
    else:
        print(f"Started run {run_id} in the background (pid {spawned.pid}); its output goes to {spawned.log}")
        print(f"Watch it with `scratch-tui attach {run_id}`, stop it with `scratch-tui runs control {run_id} stop`.")
    return 0


def _launch_ranks(args: argparse.Namespace, gpus: int, train_args: tuple[str, ...] | list[str] = (),
                  config: TrainConfig | None = None) -> int:
    """This same `train` as `gpus` processes, one per GPU, started by torch.distributed.run, here in the
    foreground (`--detach` starts them in the background instead): a new run of `config`, or `train_args`."""
    import subprocess
    import tempfile

    from ..engine.distributed import gpus_missing, ranks_command

    if (missing := gpus_missing(gpus)) is not None:
        return usage_error("--" + missing)
    common = [*(["--runs-dir", str(args.runs_dir)] if args.runs_dir else []),
              *(["--no-record"] if args.no_record else []), *(["--jsonl"] if args.jsonl else [])]
    with tempfile.TemporaryDirectory(prefix="scratch-tui-") as folder:
        if config is not None:
            train_args = ["--config", os.path.join(folder, "config.toml")]
            config.save(train_args[1])
        return subprocess.call(ranks_command(gpus, "tui_trainer", ["train", *train_args, *common]))


def _epochs_flag(args: argparse.Namespace) -> list[str]:
    return ["--epochs", str(args.epochs)] if args.epochs is not None else []


def _fork_or_replay(args: argparse.Namespace) -> int:
    """`--fork RUN_ID[@EPOCH|@step-STEP]` and `--replay RUN_ID`: a new recorded run made from another's checkpoint or
    repeating its lr changes (runs/fork.py, runs/replay.py say how)."""
    what = "--fork" if args.fork is not None else "--replay"
    refused = [flag for flag, given in (("--seeds", args.seeds), ("--no-record", args.no_record),
                                        ("--save-config", args.save_config)) if given]
    if args.fork is not None:
        refused += [flag for flag in ("--preset", "--config") if getattr(args, flag[2:])]
    if refused:
        return usage_error(f"{what} records one new run from another; drop {', '.join(refused)}")
    from ..engine.checkpoints import CheckpointError
    from ..engine.config import SETTINGS
    from ..runs.fork import ForkRefused, fork_run, parse_fork
    from ..runs.replay import plan_replay
    from ..runs.store import RunNotFound, RunStore, StoreError

    try:
        flagged = config_from_args(args)  # the defaults and the flags given: only the given ones count for a fork
        changes = {name: getattr(flagged, name) for name in SETTINGS if getattr(args, name, None) is not None}
        store = RunStore(args.runs_dir)
    except ConfigError as exc:
        return usage_error(name_flags(exc))
    except StoreError as exc:
        return error(str(exc))
    if _rank() > 0:  # rank 0 makes the run; the others train in step with it (DDP starts them from its weights)
        store.close()
        return _unrecorded(args, flagged)
    with store:
        try:
            if args.fork is not None:
                parent, epoch = parse_fork(args.fork)
                run_id = fork_run(store, parent, epoch, changes, keep_steering=args.keep_steering).run_id
            else:
                source = store.resolve(args.replay)
                run_id = store.create_run(flagged)
                plan_replay(store, run_id, source)
        except (RunNotFound, ForkRefused, ConfigError, CheckpointError, StoreError) as exc:
            return _refused(exc, what)
        if args.detach:
            from ..runs.spawn import SpawnError, start_created

            try:
                return _say_detached(start_created(store, run_id), args.jsonl)
            except (SpawnError, StoreError) as exc:
                return error(str(exc))
        return _work(store, run_id, printer_for(args))
