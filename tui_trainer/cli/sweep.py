"""`scratch-tui sweep FILE.toml`: queue a sweep, wait for it, print its table; `sweep show ID`, `sweep ls`.

The sweep's runs are ordinary queued runs (runs/queue.py trains them); waiting only watches the store,
so Ctrl-C here stops the watching, never the runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from ..engine.events import RunState
from ..engine.user_text import printable
from ..engine.user_text import shown as quoted
from ..format import percent
from ..engine.wording import counted
from .common import (EXIT_FAILED, EXIT_INTERRUPTED, RUNS_DIR_HELP, Parser, error, no_store, reader_gone, table,
                     terminal_width, unicode_out, usage_error, when)
from .study import add_study_flags, print_study, run_study_sweep

if TYPE_CHECKING:
    from ..runs.store import RunStore
    from ..runs.sweep import SweepTable

ACTIONS = ("run", "show", "ls", "extend", "retry", "continue")  # `sweep FILE.toml` is `sweep run FILE.toml`
POLL_S = 0.5
RUNNER_CHECK_S = 5.0  # how often waiting makes sure the queue's runner lives
ENDED = tuple(state for state in RunState if not state.active and state != RunState.QUEUED)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="queue a sweep from a file and print its table; show or list sweeps",
                           description="`scratch-tui sweep FILE.toml` queues one run per config and seed of a sweep "
                                       "file (a `train --config` file plus a [sweep] table), waits for them and "
                                       "prints the sweep's table. `sweep show ID` prints a sweep's table again; "
                                       "`sweep ls` lists the sweeps.")
    actions = sweep.add_subparsers(dest="sweep_command", parser_class=Parser, metavar="FILE.toml | ACTION",
                                   required=True)

    run = actions.add_parser("run", help="queue the sweep of FILE.toml and wait for it (`sweep FILE.toml` says the "
                                         "same)")
    run.add_argument("file", metavar="FILE.toml")
    run.add_argument("--parallel", type=int, metavar="N",
                     help="train up to N runs at a time on each device (the queue's runs-per-device setting, kept "
                          "for what it starts later too; 1 unless set)")
    run.add_argument("--pack", type=int, metavar="N",
                     help="train up to N queued runs of one shape together, as one pack in one process, each still "
                          "its own run (the queue's pack setting, kept; 8 unless set); 1 trains each alone")
    run.add_argument("--detach", action="store_true", help="queue the runs, print the sweep id and return")
    run.add_argument("--yes", "-y", action="store_true",
                     help="queue a sweep of more runs than the usual maximum (1,000)")
    run.add_argument("--halving", type=int, metavar="EPOCH",
                     help="asynchronous successive halving (Optuna's pruner asha, its first rung at EPOCH): a run "
                          "whose val metric is in the bottom half of those that reached the same rung (EPOCH, then "
                          "2x, 4x, ...) is stopped there, so its device frees at once. A sweep without `search` "
                          "becomes a study of this box (needs the sweep extra); not with --parallel")
    run.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    add_study_flags(run)

    show = actions.add_parser("show", help="a sweep's table: one row per config, mean ± std over seeds, best first")
    show.add_argument("sweep_id", metavar="SWEEP_ID", help="a sweep id or a unique prefix")
    export = show.add_mutually_exclusive_group()
    export.add_argument("--csv", action="store_true", help="print the table as CSV")
    export.add_argument("--json", action="store_true", help="print the table as JSON")
    show.add_argument("--top", type=int, metavar="K", help="only the K best configs")
    show.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    ls = actions.add_parser("ls", help="one line per sweep: id, name, runs done, best test accuracy")
    ls.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)

    extend = actions.add_parser("extend", help="queue the configs and seeds of FILE.toml that a sweep lacks, under "
                                               "its id")
    extend.add_argument("sweep_id", metavar="SWEEP_ID", help="a sweep id or a unique prefix")
    extend.add_argument("file", metavar="FILE.toml")
    extend.add_argument("--yes", "-y", action="store_true", help="queue more runs than the usual maximum (1,000)")
    extend.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    retry = actions.add_parser("retry", help="queue a sweep's failed or interrupted runs again (a study: its failed "
                                             "trials, for any box)")
    retry.add_argument("sweep_id", metavar="SWEEP_ID", help="a sweep id or a unique prefix")
    retry.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)
    more = actions.add_parser("continue", help="fork the best runs of a sweep's top K configs to train on to E "
                                               "epochs, in the sweep")
    more.add_argument("sweep_id", metavar="SWEEP_ID", help="a sweep id or a unique prefix")
    more.add_argument("--top", type=int, required=True, metavar="K", help="how many of the best configs")
    more.add_argument("--epochs", type=int, required=True, metavar="E", help="the epochs each fork trains in all")
    more.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)


def with_default_action(argv: Sequence[str]) -> list[str]:
    """`sweep FILE.toml ...` as `sweep run FILE.toml ...`: the file is the usual case, the actions the rest."""
    argv = list(argv)
    if len(argv) > 1 and argv[0] == "sweep" and argv[1] not in (*ACTIONS, "-h", "--help"):
        argv.insert(1, "run")
    return argv


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..engine.config import ConfigError
    from ..runs.queue import QueueError
    from ..runs.spawn import SpawnError
    from ..runs.store import RunNotFound, StoreError
    from ..runs.study import StudyError
    from ..runs.sweep import SweepError, SweepTooLarge

    command = "sweep" if args.sweep_command == "run" else f"sweep {args.sweep_command}"
    if args.sweep_command != "run" and no_store(args.runs_dir) is not None:  # reading creates nothing
        if args.sweep_command == "ls":
            print("No sweeps yet; `scratch-tui sweep FILE.toml` queues one.")
            return 0
        return usage_error(f"no sweep {quoted(args.sweep_id)}; `scratch-tui sweep ls` lists them", command)
    try:
        code = _ACTIONS[args.sweep_command](args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return reader_gone()
    except SweepTooLarge as exc:
        return usage_error(f"{exc}; pass --yes to queue them all", command)
    except (SweepError, ConfigError, QueueError, RunNotFound, StudyError) as exc:
        return usage_error(str(exc), command)
    except (StoreError, SpawnError, OSError) as exc:
        return error(str(exc), command)


# -- sweep FILE.toml ---------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from ..engine.fits import check_fits
    from ..engine.model_file import ready_all
    from ..runs.queue import (MOST_PER_DEVICE, QueueError, enqueue, ensure_runner, new_sweep_id, check_pack_size,
                              set_pack_size, set_per_device)
    from ..runs.store import RunStore
    from ..runs.sweep import SweepSpec
    from .queue import say_runner

    # every check before anything is queued: bad input leaves the store as it was
    spec = SweepSpec.load(args.file)
    if args.pack is not None:
        try:
            check_pack_size(args.pack)
        except QueueError as exc:  # the runs layer names no flag: the flag is said here
            raise QueueError(f"--{exc}") from None
    if spec.is_study or args.storage is not None or args.study is not None or args.halving is not None:
        # a study's trials are drawn a slot's worth at a time: how many slots is the queue's setting, not its
        if args.parallel is not None:
            raise QueueError("--parallel: not with a study (nor with --halving, which makes one); `scratch-tui "
                             "queue add --per-device N` sets how many trials train at a time on each device")
        if not spec.is_study and not args.slurm:  # this box trains the file's own configs: checked as below
            if not spec.axes and args.halving is not None:
                raise QueueError("--halving: this sweep varies only the seed, so no config is weaker than another; "
                                 "list values or a range of a setting under [sweep]")
            check_fits(ready_all(spec.configs(allow_large=args.yes)))
        return run_study_sweep(args, args.runs_dir)
    configs = spec.configs(allow_large=args.yes)
    configs = ready_all(configs)  # a model from a file: read once, kept by every run, checked before any is queued
    check_fits(configs)  # a device, GPUs or memory this machine lacks: a ConfigError before anything is queued
    if args.parallel is not None and not 1 <= args.parallel <= MOST_PER_DEVICE:
        raise QueueError(f"--parallel: got {args.parallel}; must be a whole number of runs from 1 to "
                         f"{MOST_PER_DEVICE}")
    name = spec.name or Path(args.file).stem

    with RunStore(args.runs_dir) as store:
        if args.parallel is not None:
            set_per_device(store, args.parallel)
            # the setting is the queue's, not the sweep's: it outlives the sweep, so say so
            print(f"The queue now trains up to {counted(args.parallel, 'run')} at a time per "
                  f"device, for this sweep and for what it starts later; `scratch-tui queue start --per-device 1` "
                  f"sets it back.")
        if args.pack is not None:
            set_pack_size(store, args.pack)
        sweep_id = new_sweep_id()
        ids = enqueue(store, configs, sweep_id, name, [c.name for c in configs])
        seeds = len(spec.seeds_or_base)
        print(f"Queued sweep {sweep_id} ({printable(name)}): {len(ids)} runs, {counted(len(ids) // seeds, 'config')} x "
              f"{counted(seeds, 'seed')}")
        runner = ensure_runner(store)
        say_runner(store, runner)
        if args.detach:
            print(f"Watch it with `scratch-tui sweep show {sweep_id}` (its table) and `scratch-tui queue ls` "
                  f"(the queue).")
            return 0
        try:
            ended = _wait(store, sweep_id, ids, sys.stdout, runner)
        except KeyboardInterrupt:
            print(f"\nStopped waiting; the sweep's runs go on in the background. `scratch-tui sweep show {sweep_id}` "
                  f"prints its table, `scratch-tui queue ls` the queue.", file=sys.stderr)
            return EXIT_INTERRUPTED
        _print_table(store, sweep_id)
        return 0 if all(status == RunState.FINISHED for status in ended.values()) else EXIT_FAILED


def _wait(store: "RunStore", sweep_id: str, ids: list[str], out: TextIO, runner: int | None = None) -> dict[str, str]:
    """Until every run has ended: a line per run as it ends, and on a terminal a live count. Each run's
    status at its end ("removed" for one taken off the queue meanwhile). A queue runner that dies while the
    sweep's runs wait is started again, and said so (`runner`: the one this command started)."""
    from ..runs.queue import revive_runner

    live = out.isatty()
    ended: dict[str, str] = {}
    shown = ""  # the live line on screen now
    restarts, checked = 0, time.monotonic()
    while True:
        now = {r.id: r for r in store.list_runs(sweep=sweep_id)}
        lines = []
        if time.monotonic() - checked >= RUNNER_CHECK_S and any(r.status == RunState.QUEUED for r in now.values()):
            checked = time.monotonic()
            revived = revive_runner(store, runner, restarts)  # SpawnError once it keeps dying
            if revived is not None:
                runner, restarts = revived, restarts + 1
                lines.append(f"The queue's runner had gone with runs of the sweep still queued; started it again "
                             f"(pid {revived})")
        for run_id in ids:
            run = now.get(run_id)
            if run_id in ended or (run is not None and run.state not in ENDED):
                continue
            ended[run_id] = run.status if run else "removed"
            if run is None:
                outcome = "removed from the queue"
            elif run.test_acc is not None:
                outcome = f"{run.status}, test accuracy {percent(run.test_acc)}"
            else:
                outcome = f"{run.status}: {store.get_run(run_id).message or 'no test accuracy'}"
            lines.append(printable(f"[{len(ended)}/{len(ids)}] run {run_id} {run.name if run else ''}: {outcome}"))
        training = sum(r.state.active for r in now.values() if r.id in ids)
        status = "" if len(ended) == len(ids) or not live else \
            f"{len(ended)}/{len(ids)} done, {training} training, {len(ids) - len(ended) - training} queued"
        if lines or status != shown:  # redrawn only when it changed
            out.write(("\r\033[K" if shown else "") + "".join(line + "\n" for line in lines) + status)
            shown = status
            out.flush()
        if len(ended) == len(ids):
            return ended
        time.sleep(POLL_S)


# -- sweep show / ls ---------------------------------------------------------------------------------------------
def _sweep_table(store: "RunStore", sweep_id: str) -> "SweepTable":
    from ..runs.queue import sweep_results
    from ..runs.sweep import sweep_table

    return sweep_table(sweep_results(store, sweep_id))


def _print_table(store: "RunStore", sweep_id: str, top: int | None = None) -> None:
    from ..runs.queue import list_sweeps, resolve_sweep, sweep_records
    from ..runs.sweep import SweepTable

    full = resolve_sweep(store, sweep_id)
    summary = next(s for s in list_sweeps(store) if s.id == full)
    swept = _sweep_table(store, full)
    shown = SweepTable(swept.fields, swept.rows[:top]) if top else swept
    metric = "test acc" if swept.sort_metric == "test_acc" else "best val"
    pm = "±" if unicode_out() else "+-"
    print(f"Sweep {full} ({printable(summary.name)}): {summary.done}/{summary.total} runs finished; "
          f"{counted(len(swept.rows), 'config')}, best first by {metric}, mean {pm} std over seeds")
    for line in shown.render(terminal_width(), ascii_only=not unicode_out()):
        print(printable(line))
    if shown.rows and shown.rows[0].best_run_id:
        best = shown.rows[0].best_run_id
        print(f"Best run: {best} (`scratch-tui runs show {best}`, `scratch-tui eval {best}`)")
    for record in sweep_records(store, full):
        if record.unreadable:  # another version's run: no config to group it by
            print(printable(f"Left out run {record.id}: {record.unreadable}."))



def _show(args: argparse.Namespace) -> int:
    from ..runs.queue import QueueError
    from ..runs.store import RunStore
    from ..runs.sweep import SweepTable

    if args.top is not None and args.top < 1:
        raise QueueError(f"--top: got {args.top}; must be a number of configs, 1 or more")
    with RunStore(args.runs_dir) as store:
        from ..runs.study import load, study_link, trial_results
        from ..runs.sweep import sweep_table

        link = study_link(store, args.sweep_id)  # a study: every box's trials, read from it
        if link is not None and not (args.csv or args.json):
            print_study(store, load(link))
            return 0
        if not (args.csv or args.json):
            _print_table(store, args.sweep_id, args.top)
            return 0
        swept = sweep_table(trial_results(load(link))) if link else _sweep_table(store, args.sweep_id)
        if args.top:
            swept = SweepTable(swept.fields, swept.rows[:args.top])
        sys.stdout.write(swept.to_csv() if args.csv else swept.to_json())
    return 0


def _ls(args: argparse.Namespace) -> int:
    from ..runs.queue import list_sweeps
    from ..runs.store import RunStore

    with RunStore(args.runs_dir) as store:
        sweeps = list_sweeps(store)
    if not sweeps:
        print("No sweeps yet; `scratch-tui sweep FILE.toml` queues one.")
        return 0
    rows = [("ID", "NAME", "DONE", "ACTIVE", "BEST TEST", "CREATED")]
    for s in sweeps:
        rows.append((s.id, s.name or "-", f"{s.done}/{s.total}", str(s.active), percent(s.best_test_acc),
                     when(s.created_at)))
    for line in table(rows, terminal_width(), squeeze=(1,), drop=(5, 3)):
        print(line)
    return 0


def _grow(args: argparse.Namespace) -> int:
    """`sweep extend`, `sweep retry`, `sweep continue`: more runs under the same sweep id, then the runner."""
    from ..runs import sweep_life
    from ..runs.queue import ensure_runner
    from ..runs.store import RunStore
    from ..runs.sweep import SweepSpec
    from .queue import say_runner

    spec = SweepSpec.load(args.file) if args.sweep_command == "extend" else None
    with RunStore(args.runs_dir) as store:
        if args.sweep_command == "extend":
            ids = sweep_life.extend(store, args.sweep_id, spec, allow_large=args.yes)
            said = f"Queued {counted(len(ids), 'more run')} in sweep"
        elif args.sweep_command == "retry":
            ids = sweep_life.retry(store, args.sweep_id)
            said = f"Queued {counted(len(ids), 'run')} (or trials) again in sweep"
        else:
            from ..engine.checkpoints import CheckpointError
            from ..runs.fork import ForkRefused
            from ..runs.queue import QueueError

            try:
                ids = sweep_life.continue_best(store, args.sweep_id, args.top, args.epochs)
            except (ForkRefused, CheckpointError) as exc:
                raise QueueError(f"sweep continue: {exc}") from None
            said = f"Queued {counted(len(ids), 'fork')} to {args.epochs} epochs in sweep"
        if not ids:
            print(f"Nothing to retry in sweep {args.sweep_id}: no run failed or was interrupted.")
            return 0
        print(f"{said} {args.sweep_id}: {' '.join(ids)}")
        say_runner(store, ensure_runner(store, study=True))
        print(f"`scratch-tui sweep show {args.sweep_id}` prints its table.")
    return 0


_ACTIONS = {"run": _run, "show": _show, "ls": _ls, "extend": _grow, "retry": _grow, "continue": _grow}
