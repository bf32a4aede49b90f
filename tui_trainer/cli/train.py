"""`scratch-tui train`: in the foreground, resumed, or detached into a process of its own."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from ..engine.config import ConfigError, TrainConfig
from .common import EXIT_FAILED, EXIT_INTERRUPTED, error, usage_error
from .flags import config_from_args, given_train_flags, name_flags

if TYPE_CHECKING:
    from ..engine.loop import TrainingRun
    from ..runs.store import RunStore

def run_train(args: argparse.Namespace) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        code = _train_as_another_rank(args) if int(os.environ.get("RANK", "0")) > 0 else _train(args)
        # A rank leaves at once, its output flushed and its store closed: tearing down gloo's threads in
        # the interpreter's shutdown can abort one rank ("terminate called without an active exception")
        # after the run has ended well on both.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ..engine.threads import fit_cpu_threads

    fit_cpu_threads()  # per process, before any tensor work: a busy machine gets fewer threads
    if args.run_id is not None:
        return _train_detached_child(args)
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
        config.save(args.save_config)
        print(f"wrote {args.save_config}")
        return 0
    if args.no_record and args.detach:
        return usage_error("--detach records the run so you can follow it; drop --no-record")

    from ..engine.control import TrainingControl
    from ..engine.distributed import launched_by_torchrun
    from ..engine.loop import TrainingRun
    from ..runs.store import RunStore, StoreError

    if args.detach:
        return _detach_new(args, config)  # on several GPUs too: the spawn starts the ranks
    if config.gpus > 1 and not launched_by_torchrun():
        return _launch_ranks(args, config.gpus, config=config)
    printer = printer_for(args)
    run = TrainingRun(config, TrainingControl(), download_progress=printer.download_progress)
    if args.no_record:
        return _train_in_foreground(run, None, printer)
    try:
        store = RunStore(args.runs_dir)
    except StoreError as exc:
        return error(f"{exc} (or train with --no-record)")
    with store:
        return _train_in_foreground(run, store, printer)


def printer_for(args: argparse.Namespace) -> Any:
    from .printer import JsonLinesPrinter, TerminalPrinter

    if args.jsonl:
        return JsonLinesPrinter(sys.stdout)
    return TerminalPrinter(sys.stdout, sys.stderr)


def _train_in_foreground(run: "TrainingRun", store: "RunStore | None", printer: Any, hangup: bool = True,
                         detached_child: bool = False) -> int:
    """Set up (a usage error leaves no run behind), then train, record and print until the run ends.

    Ctrl-C, SIGTERM and SIGHUP (the SSH session dropped) stop it cleanly, with a checkpoint;
    a second signal stops it at once. A detached child passes hangup=False and ignores SIGHUP.
    """
    from ..engine.checkpoints import CheckpointError
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..engine.events import RunFailed
    from ..runs.recording import recorded
    from ..runs.store import RunNotFound, StoreError

    try:
        run.setup()
    except (DeviceError, DatasetUnavailable, CheckpointError) as exc:
        if detached_child:  # its row exists (the parent made it) and must not stay "running"
            store.end_run(run.run_id, RunFailed(message=str(exc), epochs_done=run.epoch, seconds=run.elapsed()))
        if isinstance(exc, DeviceError):
            return usage_error(str(exc).replace("device:", "--device:", 1))
        return error(str(exc))

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
        advice = store.resume_advice(run.run_id) if store is not None and run.run_id else "nothing was recorded"
        print(f"scratch-tui train: stopped at once; {advice}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CheckpointError as exc:  # a full disk or read-only folder: the message names it and how to go on
        return error(str(exc))
    except (StoreError, RunNotFound, OSError) as exc:
        return error(f"recording the run failed: {exc}")
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


def _resume(args: argparse.Namespace) -> int:
    refused = [flag for flag in given_train_flags(args) if flag != "--epochs"]
    if refused:
        return usage_error(f"--resume continues run {args.resume} with its own settings; drop {', '.join(refused)} "
                            f"(only --epochs may change, to train it further)")
    from ..engine.checkpoints import CheckpointError
    from ..engine.control import TrainingControl
    from ..engine.distributed import launched_by_torchrun
    from ..runs.recording import resume_run
    from ..runs.store import RunNotFound, RunStore, StoreError

    from ..engine.events import RunFailed

    printer = printer_for(args)
    store = None
    try:
        store = RunStore(args.runs_dir)
        run_id = store.resolve(args.resume)
        gpus = store.get_run(run_id).train_config().gpus
        if gpus > 1 and not args.detach and not launched_by_torchrun():  # again on as many GPUs, one rank each
            store.close()
            return _launch_ranks(args, gpus, ["--resume", run_id, *_epochs_flag(args)])
        # --detach only checks here: the background process it starts is the one that claims the run
        run = resume_run(store, run_id, args.epochs, TrainingControl(), claim=not args.detach,
                         download_progress=printer.download_progress)
    except (RunNotFound, ConfigError, StoreError, CheckpointError) as exc:
        if args.no_hangup and store is not None:
            # a background resume: the run shows as starting until this says why it cannot
            try:
                record = store.get_run(args.resume)
                store.end_run(record.id, RunFailed(message=str(exc), epochs_done=record.epochs_done,
                                                   seconds=record.duration_s))
            except (RunNotFound, StoreError):
                pass
        if isinstance(exc, RunNotFound):
            return usage_error(f"--resume: {exc}")
        if isinstance(exc, ConfigError):
            return usage_error(name_flags(exc))
        return error(str(exc))
    with store:
        if args.detach:
            from ..runs.spawn import SpawnError, resume_in_background

            try:
                return _say_detached(resume_in_background(store, run_id, args.epochs), args.jsonl)
            except (SpawnError, StoreError) as exc:
                return error(str(exc))
        return _train_in_foreground(run, store, printer, hangup=not args.no_hangup, detached_child=args.no_hangup)


def _detach_new(args: argparse.Namespace, config: TrainConfig) -> int:
    from ..engine.devices import DeviceError, resolve_device
    from ..runs.spawn import SpawnError, start_run
    from ..runs.store import RunStore, StoreError

    try:
        resolve_device(config.device)  # a usage error now, not in a log nobody reads
    except DeviceError as exc:
        return usage_error(str(exc).replace("device:", "--device:", 1))
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


def _train_detached_child(args: argparse.Namespace) -> int:
    from ..engine.control import TrainingControl
    from ..engine.loop import TrainingRun
    from ..runs.store import RunNotFound, RunStore, StoreError

    from ..engine.checkpoints import CheckpointError
    from ..runs.fork import resume_fork
    from ..runs.replay import replay_control

    printer = printer_for(args)
    try:
        store = RunStore(args.runs_dir)
        config = store.get_run(args.run_id).train_config()
        # a fork starts from its parent's checkpoint, written into its log by whoever created it
        run = resume_fork(store, args.run_id, TrainingControl(), download_progress=printer.download_progress)
    except (StoreError, RunNotFound, ConfigError, CheckpointError, LookupError) as exc:
        return error(str(exc))
    if run is None:
        run = TrainingRun(config, TrainingControl(), download_progress=printer.download_progress)
    run.run_id = args.run_id
    replaying = replay_control(store, run.run_id, lambda: run.step, run.step)
    if replaying is not None:
        run.control = replaying
    with store:
        return _train_in_foreground(run, store, printer, hangup=not args.no_hangup, detached_child=True)


def _launch_ranks(args: argparse.Namespace, gpus: int, train_args: tuple[str, ...] | list[str] = (),
                  config: TrainConfig | None = None) -> int:
    """The same `train` as `gpus` processes, one per GPU, started by torch.distributed.run, here in the
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
        return subprocess.call(ranks_command(gpus, [*train_args, *common]))


def _epochs_flag(args: argparse.Namespace) -> list[str]:
    return ["--epochs", str(args.epochs)] if args.epochs is not None else []


def _train_as_another_rank(args: argparse.Namespace) -> int:
    """Ranks other than 0 train in step with it, silently: rank 0 alone prints, records and checkpoints."""
    from ..engine.checkpoints import CheckpointError
    from ..engine.control import TrainingControl
    from ..engine.events import RunFailed
    from ..engine.loop import TrainingRun

    try:
        if args.resume is not None:
            from ..engine.checkpoints import LAST
            from ..runs.store import RunStore

            with RunStore(args.runs_dir) as store:
                record = store.get_run(store.resolve(args.resume))
                path = record.last_checkpoint or str(store.checkpoint_dir(record.id) / LAST)
            run = TrainingRun.from_checkpoint(path, TrainingControl(), epochs=args.epochs)
        elif args.run_id is not None:  # a run started in the background: its config (and a fork's start) stored
            from ..runs.fork import resume_fork
            from ..runs.store import RunStore

            with RunStore(args.runs_dir) as store:
                run = (resume_fork(store, args.run_id, TrainingControl())
                       or TrainingRun(store.get_run(args.run_id).train_config(), TrainingControl()))
        else:
            run = TrainingRun(config_from_args(args), TrainingControl())
    except (ConfigError, CheckpointError, LookupError, RuntimeError) as exc:
        return error(f"rank {os.environ.get('RANK')}: {exc}")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 hears Ctrl-C and tells every rank at the next step
    final = None
    for final in run.events():
        pass
    return EXIT_FAILED if isinstance(final, RunFailed) else 0


def _fork_or_replay(args: argparse.Namespace) -> int:
    """`--fork RUN_ID[@EPOCH|@step-STEP]` and `--replay RUN_ID`: a new recorded run made from another's checkpoint or
    repeating its lr changes (runs/fork.py, runs/replay.py say how)."""
    refused = [flag for flag, given in (("--seeds", args.seeds), ("--no-record", args.no_record),
                                        ("--save-config", args.save_config)) if given]
    if args.fork is not None:
        refused += [flag for flag in ("--preset", "--config") if getattr(args, flag[2:])]
    if refused:
        what = "--fork" if args.fork is not None else "--replay"
        return usage_error(f"{what} records one new run from another; drop {', '.join(refused)}")
    from ..engine.checkpoints import CheckpointError
    from ..engine.config import SETTINGS
    from ..engine.control import TrainingControl
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..engine.loop import TrainingRun
    from ..runs.fork import ForkRefused, fork_run, parse_fork
    from ..runs.replay import ReplayControl, plan_replay
    from ..runs.store import RunNotFound, RunStore, StoreError

    printer = printer_for(args)
    try:
        flagged = config_from_args(args)  # the defaults and the flags given: only the given ones count for a fork
        changes = {name: getattr(flagged, name) for name in SETTINGS if getattr(args, name) is not None}
        store = RunStore(args.runs_dir)
    except ConfigError as exc:
        return usage_error(name_flags(exc))
    except StoreError as exc:
        return error(str(exc))
    with store:
        try:
            source = store.resolve(args.replay) if args.replay is not None else None
            if args.fork is not None:
                parent, epoch = parse_fork(args.fork)
                run = fork_run(store, parent, epoch, changes, TrainingControl(), args.keep_steering,
                               download_progress=printer.download_progress)
            else:
                run = TrainingRun(flagged, TrainingControl(), download_progress=printer.download_progress)
                run.run_id = store.create_run(flagged)
        except RunNotFound as exc:
            return usage_error(f"{'--replay' if args.fork is None else '--fork'}: {exc}")
        except ForkRefused as exc:
            return usage_error(str(exc))
        except ConfigError as exc:
            return usage_error(name_flags(exc))
        except (CheckpointError, StoreError) as exc:
            return error(str(exc))
        if source is not None:
            plan = plan_replay(store, run.run_id, source)
            run.control = ReplayControl(plan, lambda: run.step)
        if args.detach:
            from ..runs.handle import start_created
            from ..runs.spawn import SpawnError

            try:
                return _say_detached(start_created(store, run.run_id), args.jsonl)
            except (SpawnError, StoreError) as exc:
                return error(str(exc))
        try:
            run.setup()
        except (DeviceError, DatasetUnavailable, CheckpointError) as exc:
            from ..engine.events import RunFailed

            store.end_run(run.run_id, RunFailed(message=str(exc), epochs_done=run.epoch))
            if isinstance(exc, DeviceError):
                return usage_error(str(exc).replace("device:", "--device:", 1))
            return error(str(exc))
        return _train_in_foreground(run, store, printer)
