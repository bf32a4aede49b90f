"""`scratch-tui queue`: add runs to the queue, list, reorder and cancel them, pause and start its runner."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..engine.config import PRESETS, ConfigError, TrainConfig
from ..engine.events import RunState
from ..engine.user_text import printable, shown
from ..engine.wording import counted
from .common import (RUNS_DIR_HELP, EXIT_FAILED, Parser, error, no_store, reader_gone, table, terminal_width,
                     usage_error)
from .flags import TRAIN_FLAGS, config_from_args, name_flags

if TYPE_CHECKING:
    from ..runs.store import RunRecord, RunStore

ACTIVE = tuple(state for state in RunState if state.active)


def add_queue_parser(sub: argparse._SubParsersAction) -> None:
    queue = sub.add_parser("queue", help="queue runs for a background runner: add, ls, rm, move, pause, resume, start",
                           description="A queue of runs kept in the run store. A background runner starts them in "
                                       "order, by default one at a time per GPU and one on the CPU, and outlives the "
                                       "terminal.")
    actions = queue.add_subparsers(dest="queue_command", parser_class=Parser, metavar="ACTION", required=True)

    def action(name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, **kwargs)
        parser.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
        return parser

    add = action("add", "queue a run (the flags of `train`), or one per seed with --seeds",
                 description="Queue a run with the settings of `scratch-tui train` (flags override --preset, which "
                             "sets what it names over --config), and start the runner unless the queue is paused.")
    add.add_argument("--preset", choices=tuple(PRESETS), help="start from a named recipe")
    add.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    for flag, kwargs in TRAIN_FLAGS.items():
        add.add_argument(flag, default=None, **kwargs)
    add.add_argument("--seeds", metavar="S1,S2,...", help="queue one run per seed (e.g. 0,1,2), sharing a sweep id")
    add.add_argument("--no-start", action="store_true", help="only queue; `scratch-tui queue start` starts the runner")
    add.add_argument("--per-device", type=int, metavar="N", help="runs at a time on each device, kept for the queue")
    add.add_argument("--pack", type=int, metavar="N", help="queued runs of one shape trained together as one pack, "
                                                           "at most N (8 unless set; 1: each alone), kept for the queue")

    action("ls", "list the queued runs in order, and the runner's state")
    rm = action("rm", "take queued runs off the queue (they are deleted: they never trained)")
    rm.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    move = action("move", "move a queued run up, down, or to a position")
    move.add_argument("run_id", metavar="RUN_ID")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=int, metavar="N", help="to position N (1 is next to start)")
    where.add_argument("--up", type=int, nargs="?", const=1, metavar="N", help="N places towards the front (1)")
    where.add_argument("--down", type=int, nargs="?", const=1, metavar="N", help="N places towards the back (1)")
    where.add_argument("--top", action="store_true", help="to the front")
    where.add_argument("--bottom", action="store_true", help="to the back")
    action("pause", "start nothing new (runs already training go on)")
    action("resume", "let the queue start runs again, and start its runner")
    start = action("start", "start the runner (after `queue add --no-start`, or a runner that died)")
    start.add_argument("--per-device", type=int, metavar="N", help="runs at a time on each device, kept for the queue")


def run_queue_command(args: argparse.Namespace) -> int:
    from ..runs.queue import QueueError
    from ..runs.spawn import SpawnError
    from ..runs.store import RunNotFound, RunStore, StoreError

    command = f"queue {args.queue_command}"
    if args.queue_command == "ls" and no_store(args.runs_dir) is not None:  # reading creates nothing
        from ..runs.queue import DEFAULT_PER_DEVICE

        print("The queue is empty; add runs with `scratch-tui queue add`.")
        print(f"Runner: not running; {counted(DEFAULT_PER_DEVICE, 'run')} at a time per device")
        return 0
    try:
        with RunStore(args.runs_dir) as store:
            code = _ACTIONS[args.queue_command](store, args)
            sys.stdout.flush()
            return code
    except BrokenPipeError:
        return reader_gone()
    except (QueueError, RunNotFound) as exc:
        return usage_error(str(exc).replace("per-device:", "--per-device:", 1).replace("pack:", "--pack:", 1),
                           command)
    except ConfigError as exc:
        return usage_error(name_flags(exc), command)
    except (StoreError, SpawnError, OSError) as exc:
        return error(str(exc), command)


def _parse_seeds(text: str) -> list[int]:
    from ..runs.queue import QueueError
    from ..runs.sweep import MAX_RUNS

    if text.count(",") >= MAX_RUNS:  # as a sweep without --yes: a slip of the script, not a thousand runs
        raise QueueError(f"--seeds: {text.count(',') + 1:,} seeds, more than the {MAX_RUNS:,} runs one command "
                         f"queues; give fewer")
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise QueueError(f"--seeds: got {shown(text)}; give whole numbers separated by commas, e.g. --seeds 0,1,2") \
            from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise QueueError(f"--seeds: got {shown(text)}; give each seed once, 0 or more, e.g. --seeds 0,1,2")
    return seeds


def seed_configs(config: TrainConfig, seeds_text: str, seed_given: bool) -> list[TrainConfig]:
    """One config per seed of --seeds (checked first: a bad list queues nothing)."""
    from ..runs.queue import QueueError

    if seed_given:
        raise QueueError("--seed and --seeds: give one of them (--seeds 0,1,2 queues one run per seed)")
    return [config.replace(seed=seed) for seed in _parse_seeds(seeds_text)]


def _check_device(config: TrainConfig) -> None:
    """A device, GPUs or memory this machine lacks is bad input now, not a failed run later in a log."""
    from ..engine.fits import check_fits
    from ..runs.queue import QueueError

    try:
        check_fits([config])
    except ConfigError as exc:
        raise QueueError(name_flags(exc)) from None


def _add(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import (check_pack_size, enqueue, ensure_runner, new_sweep_id, queued, set_pack_size,
                              set_per_device)

    config = config_from_args(args)
    base = config.name or config.model  # --name is a train flag: the config's name
    if args.seeds is not None:
        configs = seed_configs(config, args.seeds, args.seed is not None)
        sweep_id, sweep_name = new_sweep_id(), f"seeds of {base}"
        names = [f"{base} seed {c.seed}" for c in configs]
    else:
        configs, sweep_id, sweep_name, names = [config], None, "", [config.name]
    _check_device(config)
    if args.pack is not None:
        check_pack_size(args.pack)  # refused before the per-device setting is written
    if args.per_device is not None:
        set_per_device(store, args.per_device)  # a bad number is refused here, before anything is queued
    if args.pack is not None:
        set_pack_size(store, args.pack)
    ids = enqueue(store, configs, sweep_id, sweep_name, names)
    positions = {q.id: q.position for q in queued(store)}
    for run_id in ids:
        print(f"Queued run {run_id} at position {positions.get(run_id, '-')}")
    if sweep_id:
        print(printable(f"Sweep {sweep_id} ({sweep_name}): `scratch-tui runs --sweep {sweep_id}` lists its runs"))
    say_runner(store, None if args.no_start else ensure_runner(store), args.no_start)
    return 0


def say_runner(store: "RunStore", pid: int | None, not_started: bool = False) -> None:
    from ..runs.queue import runner_status

    status = runner_status(store)
    if pid is not None:
        print(f"Started the queue's runner (pid {pid}); its output goes to {store.root / 'logs'}")
    elif status.paused:
        print("The queue is paused: nothing new starts; `scratch-tui queue resume` resumes it")
    elif not_started:
        print("The runner was not started; `scratch-tui queue start` starts it")
    elif status.running:
        print(f"The queue's runner is working (pid {status.runner_pid})")


def _ls(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import queued, runner_status

    runs = queued(store, include_running=True)
    status = runner_status(store)
    if runs:
        rows = [("POS", "ID", "NAME", "DEVICE", "MODEL", "EPOCHS", "LR", "BATCH", "SEED", "SWEEP", "STATE")]
        for q in runs:
            c = q.config
            if c is None:  # queued by another version: said below the table
                rows.append((str(q.position) if q.position else "-", q.id, q.name or "-", *["-"] * 6,
                             f"{q.sweep_id} {q.sweep_name}" if q.sweep_id else "-", str(q.state)))
                continue
            rows.append((str(q.position) if q.position else "-", q.id, q.name or "-", c.device, c.model,
                         str(c.epochs), f"{c.lr:g}", str(c.batch_size), str(c.seed),
                         f"{q.sweep_id} {q.sweep_name}" if q.sweep_id else "-", str(q.state)))
        for line in table(rows, terminal_width(), squeeze=(2, 9), drop=(9, 7, 4)):
            print(line)
        for q in runs:
            if q.config is None:
                print(printable(f"Run {q.id} cannot be opened: {q.unreadable}."))
    else:
        print("The queue is empty; add runs with `scratch-tui queue add`.")
    runner = f"working (pid {status.runner_pid})" if status.running else "not running"
    gone = not status.running and status.waiting and not status.paused  # it died, or was never started
    print(f"Runner: {runner}; {counted(status.per_device, 'run')} at a time per device"
          + ("; the queue is paused (`scratch-tui queue resume`)" if status.paused else "")
          + (f"; {counted(status.waiting, 'run')} waiting: `scratch-tui queue start` starts it" if gone else ""))
    return 0


def _rm(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import QueueError, cancel, queued

    waiting = {q.id for q in queued(store)}
    ids = [store.resolve(run_id) for run_id in args.run_ids]
    for run_id in ids:  # every id checked before any is removed
        if run_id not in waiting:
            raise QueueError(f"run {run_id} is not queued (it is {store.get_run(run_id).status}); "
                             f"`scratch-tui queue ls` lists the queued runs")
    for run_id in ids:
        cancel(store, run_id)
        print(f"Removed run {run_id} from the queue (deleted: it had not started).")
    return 0


def _move(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import move

    if args.top:
        position = move(store, args.run_id, to=1)
    elif args.bottom:
        position = move(store, args.run_id, by=sys.maxsize)
    elif args.to is not None:
        position = move(store, args.run_id, to=args.to)
    else:
        position = move(store, args.run_id, by=-args.up if args.up is not None else args.down)
    print(f"Run {store.resolve(args.run_id)} is now at position {position}.")
    return 0


def _pause(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import pause_queue

    pause_queue(store)
    print("Paused the queue: nothing new starts; runs already training go on. `scratch-tui queue resume` resumes it.")
    return 0


def _resume(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import unpause_queue

    pid = unpause_queue(store)
    print("Resumed the queue.")
    say_runner(store, pid)
    return 0


def _start(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.queue import ensure_runner, runner_status, set_per_device

    if args.per_device is not None:
        set_per_device(store, args.per_device)
    status = runner_status(store)
    if status.paused:
        print("The queue is paused; `scratch-tui queue resume` resumes it and starts the runner.")
        return EXIT_FAILED
    if not status.waiting:
        print("The queue is empty: nothing to start.")
        return 0
    say_runner(store, ensure_runner(store))
    return 0


SEEDS_POLL_S = 0.5


def train_seeds(args: argparse.Namespace, config: TrainConfig) -> int:
    """`train --seeds 0,1,2`: queue one run per seed (a sweep), start the runner, wait for every run and report
    the mean ± std of their test accuracy. With --detach, queue them and return."""
    import statistics
    import time

    from ..runs.queue import QueueError, enqueue, ensure_runner, new_sweep_id
    from ..runs.spawn import SpawnError
    from ..runs.store import RunStore, StoreError

    refused = [flag for flag, given in (("--no-record", args.no_record), ("--save-config", args.save_config),
                                        ("--jsonl", args.jsonl)) if given]
    if refused:
        return usage_error(f"--seeds queues recorded runs; drop {', '.join(refused)}")
    try:
        configs = seed_configs(config, args.seeds, args.seed is not None)
        _check_device(config)
    except QueueError as exc:
        return usage_error(str(exc))
    base = config.name or config.model
    try:
        with RunStore(args.runs_dir) as store:
            sweep_id = new_sweep_id()
            ids = enqueue(store, configs, sweep_id, f"seeds of {base}", [f"{base} seed {c.seed}" for c in configs])
            print(printable(f"Queued {len(ids)} runs of {base}, seeds {args.seeds} (sweep {sweep_id}): "
                            f"{', '.join(ids)}"))
            say_runner(store, ensure_runner(store))
            if args.detach:
                print(f"Follow them with `scratch-tui queue ls` and `scratch-tui runs --sweep {sweep_id}`.")
                return 0
            ended: dict[str, RunRecord] = {}
            try:
                while len(ended) < len(ids):
                    store.mark_interrupted()
                    for run_id, config_ in zip(ids, configs):
                        record = store.get_run(run_id)
                        if run_id not in ended and record.state not in (RunState.QUEUED, *ACTIVE):
                            ended[run_id] = record
                            test = f"test accuracy {record.test_acc:.2f}%" if record.test_acc is not None else \
                                record.message
                            print(f"Seed {config_.seed}: run {run_id} {record.status}, {test}", flush=True)
                    time.sleep(SEEDS_POLL_S if len(ended) < len(ids) else 0)
            except KeyboardInterrupt:
                print(f"Stopped waiting; the runs go on in the background (`scratch-tui runs --sweep {sweep_id}`).",
                      file=sys.stderr)
                return 130
    except (StoreError, SpawnError) as exc:
        return error(str(exc))
    accs = [r.test_acc for r in ended.values() if r.test_acc is not None]
    if accs:
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"Test accuracy over {counted(len(accs), 'seed')}: {statistics.mean(accs):.2f}% ± {spread:.2f} (mean ± std)")
    finished = sum(r.status == RunState.FINISHED for r in ended.values())
    return 0 if finished == len(ids) else EXIT_FAILED


_ACTIONS = {"add": _add, "ls": _ls, "rm": _rm, "move": _move, "pause": _pause, "resume": _resume, "start": _start}
