"""The run worker: the one way a stored run becomes a training process.

    run = build_run(store, run_id)             # new, resumed, forked or replayed: its record and log say which
    ended = train(store, run_id, printer)      # built, taken, set up, then recorded and printed to its end

    python -m tui_trainer.runs.worker RUN_ID --store PATH [--to-epoch N]   # the process runs/spawn.py starts

How a run starts is one switch, read from its record and log (nanoGPT's `init_from`):

    resume    it has started before (a RunStarted in its log): from its own last checkpoint, or the previous
              good one where that does not load; `epochs` may extend it
    fork      made as a fork (ForkedFrom) and never started: from its parent's checkpoint at the fork point,
              with the fork's changes (runs/fork.py)
    scratch   anything else (new, queued, never got as far as training): its stored config, initialised afresh

and a run that replays another's lr changes (ReplayPlanned) goes on with what is left of that plan. Under
torchrun every rank builds the run the same way; rank 0 alone takes it, records, checkpoints and prints.

One process at a time trains a run, the one the store names. Whoever starts a worker hands it its run
(runs/spawn.py: a new run is its creator's, a queued one the queue runner's, and a stopped one is claimed
there, once, so that no second resume starts meanwhile and a viewer sees it starting at once). A worker never
claims a run handed to it; a run nobody handed it (`train --resume` in the foreground trains in its own
process) it claims itself, once it is built, so a refused request leaves the run as it was. A run that is this
process's and cannot start (its checkpoint, the epochs asked, the device, the data) ends with RunFailed saying
why: `prepare` writes it, nowhere else does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TextIO

from ..engine.config import ConfigError, TrainConfig
from ..engine.events import EpochEnded, Event, RunFailed, RunStarted, RunState, RunStopped
from ..format import format_epoch, format_started
from .advice import still_running
from .store import RunRecord, RunStore, StoreError
from .view import RunView

if TYPE_CHECKING:
    from ..engine.checkpoints import Checkpoint
    from ..engine.loop import TrainingRun

MODULE = "tui_trainer.runs.worker"  # the module `python -m` runs: spawn starts it, alone or under torchrun
EXIT_INTERRUPTED = 130  # 128 + SIGINT: stopped at once, by a second signal


class Printer(Protocol):
    """Where a driven run's events go as they happen: the CLI's printers, LogLines for a background worker."""

    def handle(self, event: Event) -> None: ...

    def download_progress(self, done: int, total: int | None, label: str) -> None: ...


# -- the switch --------------------------------------------------------------------------------------------------
def init_from(record: RunRecord, from_start: bool = False) -> str:
    """'resume', 'fork' or 'scratch': how the run starts (the module docstring says when each); `from_start`: as it
    first started, whatever it trained since."""
    if record.segment > 0 and not from_start:
        return "resume"
    return "fork" if record.parent_id else "scratch"


def build_run(store: RunStore, run_id: str, epochs: int | None = None, control: Any = None, *, main: bool = True,
              warn: Callable[[str], None] | None = None, from_start: bool = False, **kwargs: Any) -> "TrainingRun":
    """The stored run `run_id` (an id or a unique prefix) as a TrainingRun under its own id, started the way
    `init_from` says. `epochs` trains a resumed run further (to that many in all). kwargs go to TrainingRun
    (`data=`, `progress_seconds=`, `download_progress=`). `main` is false for a rank other than 0: it warns of
    nothing and moves no file.

    Nothing is claimed or recorded; the weights, optimizer and data come with the run's `setup()`. Where the
    last checkpoint does not load, the run resumes from the previous good one, with a warning (`warn`; stderr by
    default), and the bad file is moved aside. Raises RunNotFound, ConfigError (the epochs asked),
    CheckpointError (nothing to resume from) or LookupError (a fork's parent checkpoint is gone).

    `from_start` builds it as it first started (`runs verify` trains it again): from scratch or its fork point,
    with the thread count it was pinned to and every lr change its log shows made at the step it was made.
    """
    from ..engine.loop import TrainingRun
    from .replay import ReplayControl, replay_control

    record = store.get_run(run_id)
    start = init_from(record, from_start)
    if start == "resume":
        if warn is None:
            from .recording import warn_on_stderr as warn
        checkpoint = resume_checkpoint(store, record, warn if main else None)
        if epochs is None and checkpoint.epoch >= checkpoint.config.epochs and not checkpoint.mid_epoch \
                and _evaluated(record):
            raise _all_trained(record.id, checkpoint.epoch)
        run = TrainingRun.from_checkpoint(checkpoint, control, epochs=epochs, **kwargs)
        if main:
            _set_aside(checkpoint, store.checkpoint_dir(record.id))
    elif epochs is not None:
        raise ConfigError({"epochs": f"epochs: run {record.id} has not started yet, so it trains the "
                                     f"{record.epochs} epochs it was made with; resume it later to train it further"})
    elif start == "fork":
        from .fork import build_fork

        run = build_fork(store, record.id, control, config=first_config(store, record) if from_start else None,
                         **kwargs)
    else:
        run = TrainingRun(first_config(store, record) if from_start else record.train_config(), control, **kwargs)
    run.run_id = record.id
    if from_start:
        replaying = ReplayControl(store.view(record.id).lr_changes(), lambda: run.step)
    else:  # a run that replays another's lr changes goes on with those still ahead of where it starts
        replaying = replay_control(store, record.id, lambda: run.step, run.step)
    if replaying is not None:
        run.control = replaying
    return run


def first_config(store: RunStore, record: RunRecord) -> "TrainConfig":
    """The config the run first started with, its thread count as pinned then: a resume may since have asked for
    more epochs, which moves a schedule's every step."""
    from ..engine.events import event_from_dict

    for data in store.logged(record.id, "run_started"):
        first = event_from_dict(data)
        return first.config.replace(threads=first.config.threads or first.threads)
    return record.train_config()


def check_epochs(record: RunRecord, epochs: int | None) -> None:
    """What the record alone says against resuming the run with `epochs` (None: as many as it has), before any
    process starts for it: ConfigError when it trained all its epochs and was evaluated, and no more are asked.
    The rest (its checkpoint, an epochs count below it) is for the worker to find out."""
    if epochs is None and record.epochs_done >= record.epochs and _evaluated(record):
        raise _all_trained(record.id, record.epochs_done)


def _evaluated(record: RunRecord) -> bool:
    return record.state == RunState.FINISHED or record.test_acc is not None


def _all_trained(run_id: str, epochs: int) -> ConfigError:
    return ConfigError({"epochs": f"epochs: run {run_id} has already trained all {epochs} epochs; ask for more "
                                  f"epochs to train it further"})


DAMAGED = "last.damaged.pt"  # a last checkpoint that failed to load, kept for a look but never resumed again


def resume_checkpoint(store: RunStore, record: RunRecord, warn: Callable[[str], None] | None) -> "Checkpoint":
    """The run's last checkpoint, or where that does not load the newest earlier one that does (said to `warn`)."""
    from ..engine.checkpoint_files import BEST, LAST, PREVIOUS, remove_stale_temporaries
    from ..engine.checkpoints import CheckpointDamaged, CheckpointError, CheckpointForeign, load_checkpoint

    folder = store.checkpoint_dir(record.id)
    remove_stale_temporaries(folder)  # what the process that ended without finishing left mid-write
    path = Path(record.last_checkpoint or folder / LAST)
    owner = {"run_id": record.id, "config": record.train_config()}
    try:
        return load_checkpoint(path, **owner)
    except CheckpointForeign:  # put there by hand, not torn by a crash: said, never quietly worked around
        raise
    except CheckpointError as exc:
        failure = exc
    # the one before the last, then the best: each a whole file of its own (written, then renamed)
    for earlier in (folder / PREVIOUS, Path(record.best_checkpoint or folder / BEST)):
        if earlier == path or not earlier.is_file():
            continue
        try:
            checkpoint = load_checkpoint(earlier, **owner)
        except CheckpointError:
            continue
        if warn is not None:
            why = "is damaged" if isinstance(failure, CheckpointDamaged) else "cannot be used"
            warn(f"{path} {why}, so run {record.id} resumes from the previous good checkpoint, {earlier.name} "
                 f"(epoch {checkpoint.epoch}, step {checkpoint.step})")
        return checkpoint
    raise CheckpointError(f"run {record.id} cannot be resumed: {failure}") from None


def _set_aside(used: "Checkpoint", folder: Path) -> None:
    """Resumed from an earlier checkpoint: move the last one, which did not load, out of the way, so the
    next save does not keep it as the previous good one."""
    from ..engine.checkpoint_files import LAST

    last = folder / LAST
    if used.path != last and last.is_file():
        try:
            os.replace(last, folder / DAMAGED)
        except OSError:
            pass  # kept where it is: the next save replaces it anyway


# -- who trains it -----------------------------------------------------------------------------------------------
def claim(store: RunStore, run_id: str) -> RunRecord:
    """Make this process the one that trains the run, in one statement; the run as it was before. StoreError
    while another live process trains it, or while it waits in the queue (its runner starts it)."""
    store.mark_interrupted()
    record = store.get_run(run_id)
    if not store.claim(record.id, os.getpid()):
        raise StoreError(still_running(store.get_run(record.id), store.host))
    return record


def handed_here(record: RunRecord) -> bool:
    """Whether the run is this process's to train already: the store names this process, or the one that
    started it (which made, took or claimed the run for it, and hands it over as it starts)."""
    return record.state.active and record.pid in (os.getpid(), os.getppid())


def fail(store: RunStore, run_id: str, message: str) -> None:
    """End a run that could not start with RunFailed saying why, keeping the epochs and training time it had."""
    record = store.get_run(run_id)
    store.end_run(record.id, RunFailed(message=message, epochs_done=record.epochs_done, seconds=record.duration_s))


def prepare(store: RunStore, run_id: str, *, epochs: int | None = None, rank: int = 0,
            **kwargs: Any) -> "TrainingRun":
    """Everything before a run's first event: built (`build_run`), made this process's (rank 0: handed to it, or
    claimed now), and set up (device, data, model, the state it resumes from).

    A run of this process's that fails any of it ends with RunFailed saying why, and the error is raised. A run
    that is not (still running elsewhere: StoreError; or refused before it was claimed) is left as it was.
    Raises what `build_run` and `TrainingRun.setup` raise (DeviceError, DatasetUnavailable), or StoreError."""
    record = store.get_run(run_id)
    ours = rank == 0 and handed_here(record)
    try:
        run = build_run(store, record.id, epochs, main=rank == 0, **kwargs)
        if rank == 0 and not ours:
            claim(store, record.id)
            ours = True
            store.set_process(record.id, os.getpid(), resuming=record.segment > 0)  # viewers see it starting
        run.setup()
    except Exception as exc:
        if ours:
            try:
                fail(store, record.id, str(exc) or type(exc).__name__)
            except (StoreError, LookupError):
                pass  # the error that got us here says more
        raise
    return run


# -- the loop driver ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ended:
    """How a driven run ended: its last event, and the signal that stopped it (SIGPIPE: its reader went away)."""

    final: Event | None
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        """The process's exit status for it: 1 failed, 128 + the signal that stopped it, else 0."""
        if isinstance(self.final, RunFailed):
            return 1
        if isinstance(self.final, RunStopped) and self.signal is not None:
            return 128 + self.signal
        return 0


def drive(run: "TrainingRun", store: RunStore | None, printer: Printer | None = None, *, hangup: bool = True,
          rank: int = 0, observer: Callable[[Event], None] | None = None) -> Ended:
    """Train `run` to its end, recorded in `store` (None records nothing), each event handed to `printer`.

    Ctrl-C, SIGTERM and SIGHUP (the SSH session dropped) stop it cleanly, with a checkpoint; a second signal
    stops it at once, raising KeyboardInterrupt (the log says RunInterrupted). `hangup=False` (a background
    worker, which no terminal owns) ignores SIGHUP. A printer whose reader went away (`| head`) stops it as a
    signal would, with stdout sent to /dev/null. A rank other than 0 trains in step with rank 0, silently,
    deaf to Ctrl-C: rank 0 hears it and tells every rank at the next agreed step. `observer` sees each event once
    it is recorded (a study's trial: runs/study.py). Call it from the main thread.
    """
    if rank > 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        final = None
        for final in run.events():
            pass
        return Ended(final)
    from .recording import recorded

    control = run.control
    interrupted: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        if interrupted:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        interrupted.append(signum)
        control.stop()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, request_stop if hangup else signal.SIG_IGN)
    final = None
    reader_gone: list[int] = []
    try:
        for event in recorded(run, store) if store is not None else run.events():
            final = event
            if observer is not None:
                observer(event)
            if reader_gone or printer is None:
                continue
            try:
                printer.handle(event)
            except BrokenPipeError:
                # whoever read the output went away: stop as for a signal, recorded and checkpointed, with
                # nothing more to say on that stdout
                reader_gone.append(signal.SIGPIPE)
                _quiet_stdout()
                control.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return Ended(final, (interrupted or reader_gone or [None])[0])


def _quiet_stdout() -> None:
    """Send what is left of stdout to /dev/null, so Python's flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def train(store: RunStore, run_id: str, printer: Printer | None = None, *, epochs: int | None = None,
          rank: int = 0, hangup: bool = True) -> Ended:
    """The worker: the stored run prepared (see `prepare`) and driven to its end (see `drive`) in this process.
    A run that trains a study's trial reports to it as it goes (runs/study.py)."""
    from .trial_report import trial_reporter

    reporter = trial_reporter(store, store.resolve(run_id)) if rank == 0 else None
    if reporter is None:
        run = prepare(store, run_id, epochs=epochs, rank=rank,
                      download_progress=printer.download_progress if printer is not None else None)
        return drive(run, store if rank == 0 else None, printer, hangup=hangup, rank=rank)
    reporter.beat()
    try:  # a run that cannot start stops beating: its trial goes stale, and another box retries it
        run = prepare(store, run_id, epochs=epochs, rank=rank,
                      download_progress=printer.download_progress if printer is not None else None)
        reporter.attach(run)
        return drive(run, store, printer, hangup=hangup, rank=rank, observer=reporter)
    finally:
        reporter.close()


# -- a pack: several runs of one shape in this process ------------------------------------------------------------
PACK_COMMAND_POLL_S = 0.1  # each member polls the store for its commands: K pollers, so less often than alone


def prepare_pack(store: RunStore, run_ids: list[str], **kwargs: Any) -> list["TrainingRun"]:
    """The stored runs `run_ids`, each prepared as `prepare` prepares one (a run that cannot start ends failed,
    saying why, and is left out), on data loaded once and split once per seed. Packs are formed from runs that
    have not started (a resumed member trains alone, from its own checkpoint)."""
    from ..engine.pack import shared_data

    records = [store.get_run(run_id) for run_id in run_ids]
    configs = [r.train_config() for r in records]
    data = shared_data(configs, kwargs.pop("download_progress", None))
    runs = []
    for record, split in zip(records, data):
        try:
            runs.append(prepare(store, record.id, data=split, **kwargs))
        except Exception as exc:  # it ended failed, saying why (prepare); the pack goes on without it
            print(f"run {record.id} could not start: {exc}", file=sys.stderr, flush=True)
    return runs


def drive_pack(runs: list["TrainingRun"], store: RunStore, printers: dict[str, Printer] | None = None,
               name: str = "") -> list[Event]:
    """Train `runs` as one pack (engine/pack.py), each recorded in `store` as it would be alone: its own log,
    checkpoints and commands, a study's trial reporting to its study. A stop signal stops every member, with a
    checkpoint each. Returns each run's last event, in the order of `runs`."""
    from ..engine.events import TERMINAL_EVENTS
    from ..engine.pack import Pack
    from .recording import Recording
    from .trial_report import trial_reporter

    pack = Pack(runs, name=name)
    recordings = {id(run): Recording(run, store, command_poll_s=PACK_COMMAND_POLL_S) for run in runs}
    # a member that trains a study's trial reports to it as a lone run does (train)
    reporters = {}
    for run in runs:
        if (reporter := trial_reporter(store, run.run_id)) is not None:
            reporter.beat()
            reporter.attach(run)
            reporters[id(run)] = reporter
    printers = printers or {}
    final: dict[int, Event] = {}
    interrupted: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)
        for run in runs:
            run.control.stop()

    def hand_on(run: "TrainingRun", event: Event) -> None:
        final[id(run)] = event
        reporter = reporters.get(id(run))
        if reporter is not None:
            reporter(event)
            if isinstance(event, EpochEnded):  # its pruner's stop, if it sent one, acts before the next step
                recordings[id(run)].take_commands()
        printer = printers.get(run.run_id)
        if printer is not None:
            printer.handle(event)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # each event is recorded as it happens, while the pack waits: a checkpoint holds what the event said
        for run, event in pack.events():
            recording = recordings[id(run)]
            if isinstance(event, TERMINAL_EVENTS):
                for recorded_event in recording:  # its ending, and what the recording adds before it
                    hand_on(run, recorded_event)
            else:
                while pack.waiting(run):
                    hand_on(run, next(recording))
    except KeyboardInterrupt:  # a second signal: every member not ended yet says it was interrupted
        for run in runs:
            if not isinstance(final.get(id(run)), TERMINAL_EVENTS):
                try:
                    recordings[id(run)]._events.throw(KeyboardInterrupt)
                except (KeyboardInterrupt, StopIteration):
                    pass
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for reporter in reporters.values():
            reporter.close()
    return [final.get(id(run)) for run in runs]


# -- the process -------------------------------------------------------------------------------------------------
class LogLines:
    """What a background worker writes to its log file: the run's start, a line per epoch, the test result,
    steering and the ending; no live progress line (`scratch-tui attach` shows the run live)."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.view = RunView()  # its sentences are every view's
        self._said = 0

    def download_progress(self, done: int, total: int | None, label: str) -> None:
        if total and done == total:
            self._say(f"{label}: done ({total / 1e6:.1f} MB)")

    def handle(self, event: Event) -> None:
        for line in self.lines(event):
            self._say(line)

    def lines(self, event: Event) -> list[str]:
        """The lines `event` adds: the view's own sentences, with a run's start and its epochs said in full."""
        self.view.apply(event)
        lines, self._said = self.view.log[self._said:], len(self.view.log)
        if isinstance(event, RunStarted):
            return [format_started(event), *lines]
        if isinstance(event, EpochEnded):
            return [format_epoch(event)]  # with its columns named; the app's log has a narrower line
        return lines

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="Train one stored run to its end, recorded in its store: the "
                                                 "process runs/spawn.py starts (alone, or each rank under torchrun).")
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("pack", nargs="*", metavar="RUN_ID", help="more runs of its shape, trained with it as one "
                                                                  "pack (engine/pack.py)")
    parser.add_argument("--store", required=True, metavar="PATH", help="the run store (its folder or database)")
    parser.add_argument("--to-epoch", type=int, metavar="N", help="resume the run to train N epochs in all")
    return parser


def worker_args(store: RunStore, run_id: str, epochs: int | None = None) -> list[str]:
    """The arguments of `python -m tui_trainer.runs.worker` that train `run_id` of `store` (to `epochs`)."""
    return [run_id, "--store", str(store.db_path.resolve()), *(["--to-epoch", str(epochs)] if epochs is not None
                                                                  else [])]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..engine.distributed import exit_rank, launched_by_torchrun

    if args.pack:
        return _work_pack(args.store, [args.run_id, *args.pack])
    if not launched_by_torchrun():
        return _work(args.store, args.run_id, args.to_epoch, rank=0)
    exit_rank(_work(args.store, args.run_id, args.to_epoch, rank=int(os.environ.get("RANK", "0"))))


def _work(store_path: str, run_id: str, epochs: int | None, rank: int) -> int:
    from ..engine.checkpoints import CheckpointError
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError

    try:
        with RunStore(store_path) as store:
            return train(store, run_id, LogLines() if rank == 0 else None, epochs=epochs, rank=rank,
                         hangup=False).exit_code
    except KeyboardInterrupt:  # a second stop signal: the run's log says it was interrupted
        return EXIT_INTERRUPTED
    except (LookupError, ConfigError, CheckpointError, DeviceError, DatasetUnavailable, StoreError, OSError) as exc:
        # the run's own log says so too (RunFailed) when it was this process's to train
        print(f"{MODULE}{f' (rank {rank})' if rank else ''}: {exc}", file=sys.stderr, flush=True)
        return 1


def _work_pack(store_path: str, run_ids: list[str]) -> int:
    """The pack's process: each member's lines go to its own log file, as a lone worker's would."""
    logs = []
    try:
        with RunStore(store_path) as store:
            runs = prepare_pack(store, run_ids)
            if not runs:
                return 1
            logs = [open(store.log_path(run.run_id), "a", encoding="utf-8") for run in runs]
            printers = {run.run_id: LogLines(log) for run, log in zip(runs, logs)}
            ended = drive_pack(runs, store, printers, name=run_ids[0])
            return 1 if all(isinstance(e, RunFailed) for e in ended) else 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (LookupError, ConfigError, StoreError, OSError) as exc:
        print(f"{MODULE}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for log in logs:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
