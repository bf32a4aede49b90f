"""A sweep as an Optuna study on the command line: `sweep FILE --storage URL --study NAME` (make or join it),
`worker --storage URL --study NAME` (join it from another box), and the study's table for `sweep show`.

The study itself is runs/study.py's; here the flags are read and the trials printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from ..format import percent
from ..engine.wording import counted
from .common import (EXIT_FAILED, EXIT_INTERRUPTED, RUNS_DIR_HELP, error, table, terminal_width, unicode_out,
                     usage_error)

if TYPE_CHECKING:
    from ..runs.store import RunStore
    from ..runs.study import OpenStudy, StudyLink

POLL_S = 0.5
STORAGE_HELP = ("where the Optuna study lives: a journal file path (shared filesystem) or an RDB URL "
                "(postgresql://...); default: a journal file beside the run store")


def add_study_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", metavar="URL", help=STORAGE_HELP)
    parser.add_argument("--study", metavar="NAME", help="the study's name in that storage: the same name on "
                                                        "another box joins it")
    slurm = parser.add_argument_group("Slurm (through submitit; without Slurm, its local executor runs them here)")
    slurm.add_argument("--slurm", action="store_true", help="submit the study's workers as a Slurm job array "
                                                            "instead of training on this box")
    slurm.add_argument("--array", type=int, default=1, metavar="N", help="how many workers (default 1)")
    slurm.add_argument("--partition", metavar="P", help="the Slurm partition")
    slurm.add_argument("--gpus-per-task", type=int, metavar="G", help="GPUs for each worker")
    slurm.add_argument("--time", metavar="T", help="each worker's time limit (minutes or HH:MM:SS); a worker cut "
                                                   "off is requeued and resumes its run")
    slurm.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, as --KEY=VALUE (repeatable)")


def add_worker_parser(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="join this box to a sweep's Optuna study and train its trials here",
                            description="Join this box to an Optuna study made by `scratch-tui sweep FILE --storage "
                                        "URL --study NAME`: this box's queue runner draws trials while a device "
                                        "slot is free, each an ordinary local run, until the study has none left.")
    worker.add_argument("--storage", metavar="URL", required=True, help=STORAGE_HELP)
    worker.add_argument("--study", metavar="NAME", required=True, help="the study's name in that storage")
    worker.add_argument("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)


def run_worker(args: argparse.Namespace) -> int:
    from ..runs.queue import run_queue
    from ..runs.store import RunStore, StoreError, default_runs_dir
    from ..runs.study import join_link, load
    from ..runs.study_storage import StudyError, check_local_store
    from ..runs.sweep import SweepError

    try:
        check_local_store(Path(args.runs_dir) if args.runs_dir else default_runs_dir())
        with RunStore(args.runs_dir) as store:
            link = join_link(store, args.storage, args.study)
            opened = load(link)
            print(f"Joined study {link.name} ({_where(link)}) as sweep {link.sweep_id} on {store.host}; training "
                  f"its trials here", flush=True)
            started = run_queue(store)
            if not started and store.queue_runner():
                print(f"This store's queue runner (pid {store.queue_runner()}) already draws from it; "
                      f"`scratch-tui sweep show {link.sweep_id}` follows it.")
                return 0
            print_study(store, opened)
            return 0 if _all_done(opened) else EXIT_FAILED
    except (StudyError, SweepError) as exc:
        return usage_error(str(exc), "worker")
    except (StoreError, OSError) as exc:
        return error(str(exc), "worker")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def run_study_sweep(args: argparse.Namespace, store_dir: str | None) -> int:
    """`sweep FILE` as a study: made (or joined, where one of that name with the same space exists), drawn from
    by this box's queue runner, watched until it has no trial left, then its table. Raises StudyError."""
    from ..runs.queue import ensure_runner, new_sweep_id
    from ..runs.store import RunStore, default_runs_dir
    from ..runs.study import check_spec, load, open_link
    from ..runs.study_storage import StudyError, check_local_store, require_optuna
    from ..runs.sweep import SweepSpec
    from .queue import say_runner

    require_optuna("--halving" if args.halving is not None and not args.storage and not args.study else "a study")
    if args.slurm:
        from ..runs.slurm import require_submitit

        require_submitit()
    data = tomllib.loads(Path(args.file).read_text(encoding="utf-8"))
    spec = SweepSpec.from_dict(data)
    if not spec.is_study:  # --storage/--study on a file that names no search: its mode says which
        spec = dataclasses.replace(spec, search="grid" if spec.mode == "grid" else "random")
        data.setdefault("sweep", {})["search"] = spec.search
        data["sweep"].pop("mode", None)
    if args.halving is not None:  # asynchronous successive halving, its first rung at that epoch
        if not 1 <= args.halving <= spec.base.epochs:
            raise StudyError(f"--halving: got {args.halving}; must be an epoch the runs reach, from 1 to "
                             f"{spec.base.epochs}")
        data.setdefault("sweep", {}).update(halving=args.halving, pruner="asha" if spec.pruner == "none"
                                            else spec.pruner)
        spec = dataclasses.replace(spec, halving=args.halving, pruner=data["sweep"]["pruner"])
    check_spec(spec)
    if spec.search == "grid":
        spec.configs(allow_large=args.yes)  # the grid's own checks: its size, ranges with a count
    check_local_store(Path(store_dir) if store_dir else default_runs_dir())
    name = args.study or f"{spec.name or Path(args.file).stem}-{new_sweep_id()}"
    with RunStore(store_dir) as store:
        link = open_link(store, spec, data, args.storage, name, slurm=args.slurm)
        opened = load(link)
        print(f"Study {link.name} ({_where(link)}): sweep {link.sweep_id}, {counted(spec.size(), 'trial')}, search "
              f"{spec.search}, {_pruning(spec)}" + ("" if args.slurm else "; this box draws from it"), flush=True)
        if args.slurm:
            return _submit(args, link, store_dir)
        if args.pack is not None:  # checked by `sweep` before anything was made
            from ..runs.queue import set_pack_size

            set_pack_size(store, args.pack)
        say_runner(store, ensure_runner(store, study=True))
        if args.detach:
            print(f"Watch it with `scratch-tui sweep show {link.sweep_id}`; join another box with `scratch-tui worker "
                  f"--storage {link.storage} --study {link.name}`.")
            return 0
        try:
            _wait(opened)
        except KeyboardInterrupt:
            print(f"\nStopped waiting; the study goes on. `scratch-tui sweep show {link.sweep_id}` prints its table.",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        print_study(store, opened)
        return 0 if _all_done(opened) else EXIT_FAILED


def _submit(args: argparse.Namespace, link: "StudyLink", store_dir: str | None) -> int:
    from ..runs.slurm import SlurmRequest, submit
    from ..runs.study_storage import StudyError, is_journal

    extra = {}
    for item in args.slurm_arg:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise StudyError(f"--slurm-arg: got {item!r}; give KEY=VALUE, as sbatch's --KEY=VALUE")
        extra[key.strip().lstrip("-").replace("-", "_")] = value
    request = SlurmRequest(array=args.array, partition=args.partition, gpus_per_task=args.gpus_per_task,
                           time=args.time, extra=extra)
    # submitit's pickles and logs must be readable on every node: beside a shared journal, else here
    folder = (Path(link.storage).parent if is_journal(link.storage) else Path.cwd()) / "scratch-tui-slurm" / "%j"
    cluster, jobs = submit(link, store_dir, request, folder)
    where = "Slurm" if cluster == "slurm" else f"submitit's {cluster} executor (no Slurm here)"
    print(f"Submitted {counted(len(jobs), 'worker')} to {where}: job ids {' '.join(jobs)}; logs in {folder.parent}")
    if cluster == "slurm":
        print(f"Follow them with `squeue -j {','.join(j.split('_')[0] for j in jobs[:1])}`, the study with "
              f"`scratch-tui sweep show {link.sweep_id}`.")
    else:
        print(f"Follow the study with `scratch-tui sweep show {link.sweep_id}`.")
    return 0


def _pruning(spec) -> str:
    """pruner asha from epoch 2: none is pruned before its first rung."""
    return f"pruner {spec.pruner}" + ("" if spec.pruner == "none" else f" from epoch {spec.halving}")


def _where(link: "StudyLink") -> str:
    from ..runs.study_storage import is_journal

    return f"journal {link.storage}" if is_journal(link.storage) else link.storage.split("@")[-1]


def _wait(opened: "OpenStudy") -> None:
    """Until no trial is left to draw or training anywhere: a line per trial as it ends."""
    from ..runs.study import still_open, trial_rows

    said: set[int] = set()
    while True:
        for row in trial_rows(opened):
            if row.number in said or row.state in ("RUNNING", "WAITING"):
                continue
            said.add(row.number)
            print(f"trial {row.number} {row.config} seed={row.seed}: {_outcome(row, opened.spec)} (run "
                  f"{row.run_id or '-'} on {row.host or '-'})", flush=True)
        if not still_open(opened):
            return
        time.sleep(POLL_S)


def _pruned(row, spec) -> str:
    """As the run's record says it (runs/trial_report.py)."""
    return f"pruned by {spec.pruner} at epoch {row.last_epoch}"


def _outcome(row, spec) -> str:
    if row.state == "COMPLETE":
        return "finished" + (f", test accuracy {percent(row.test_acc)}" if row.test_acc is not None else "")
    if row.state == "PRUNED":
        return _pruned(row, spec)
    return "failed" + (f" (a retry of trial {row.retry_of})" if row.retry_of is not None else "")


def _all_done(opened: "OpenStudy") -> bool:
    """Every trial's config trained to its end or pruned (a failed trial retried to the end counts as done)."""
    rows = _rows(opened)
    retried = {r.retry_of for r in rows if r.retry_of is not None and r.state in ("COMPLETE", "PRUNED")}
    return all(r.state in ("COMPLETE", "PRUNED") or r.number in retried for r in rows)


def _rows(opened: "OpenStudy"):
    from ..runs.study import trial_rows

    return trial_rows(opened)


def print_study(store: "RunStore", opened: "OpenStudy") -> None:
    """Every box's trials (host, run), then the sweep table over them (mean ± std per config), then the best."""
    from ..runs.study import trial_results
    from ..runs.sweep import sweep_table

    link, spec = opened.link, opened.spec
    rows = _rows(opened)
    counts = {state: sum(r.state == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING",
                                                                        "WAITING")}
    hosts = sorted({r.host for r in rows if r.host})
    print(f"Study {link.name} ({_where(link)}), sweep {link.sweep_id}: {counted(len(rows), 'trial')}: "
          + ", ".join(f"{n} {state.lower()}" for state, n in counts.items() if n)
          + f"; search {spec.search}, {_pruning(spec)}; boxes: {', '.join(hosts) or 'none yet'}")
    fields = [a.field for a in spec.axes]
    lines = [("TRIAL", "STATE", "HOST", "RUN", "SEED", *(f.upper() for f in fields), spec.base.monitor.upper(),
              "TEST ACC", "NOTE")]
    for r in rows:
        note = _pruned(r, spec) if r.state == "PRUNED" else (
            f"retry of {r.retry_of}" if r.retry_of is not None else "")
        lines.append((str(r.number), r.state.lower(), r.host or "-", r.run_id or "-",
                      "-" if r.seed is None else str(r.seed),
                      *(_cell(r.values.get(f)) for f in fields),
                      "-" if r.value is None else f"{r.value:.4f}", percent(r.test_acc), note))
    for line in table(lines, terminal_width(), squeeze=tuple(range(5, 5 + len(fields))), drop=(len(lines[0]) - 1,)):
        print(line)
    swept = sweep_table(trial_results(opened))
    if swept.rows:
        print("Configs, best first, mean ± std over seeds:")
        for line in swept.render(terminal_width(), ascii_only=not unicode_out()):
            print(line)
        best = swept.rows[0]
        if best.best_run_id:
            trial = next(r for r in rows if r.run_id == best.best_run_id)
            here = trial.host == store.host
            how = f"`scratch-tui runs show {trial.run_id}`" if here else \
                f"`ssh {trial.host} scratch-tui runs show {trial.run_id}`"
            label = " ".join(f"{f}={_cell(v)}" for f, v in best.values.items()) or trial.config
            print(f"Best config: {label}; its best run {trial.run_id} on {trial.host} ({how})")


def _cell(value) -> str:
    from ..runs.sweep import _show

    return "-" if value is None else _show(value)

