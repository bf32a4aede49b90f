"""`scratch-tui runs`: list, show, export, delete and steer recorded runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.wording import arrow, counted
from ..format import duration, percent
from ..engine.user_text import printable, shown_text
from .common import EXIT_FAILED, error, no_store, reader_gone, table, terminal_width, usage_error, when

if TYPE_CHECKING:
    from ..runs.store import RunStore



# -- scratch-tui runs ----------------------------------------------------------------------------------------
def run_runs(args: argparse.Namespace) -> int:
    from ..runs.store import RunNotFound, RunStore, StoreError

    action = args.runs_command or "list"
    command = "runs" if action == "list" else f"runs {action}"
    if (empty := no_store(args.runs_dir)) is not None:  # reading creates nothing
        if action != "list":
            asked = getattr(args, "run_id", None) or " ".join(getattr(args, "run_ids", None) or ())
            what = f"no run {shown_text(asked)}" if asked else "no runs"
            return usage_error(f"{what}; nothing is recorded in {empty} yet", command)
        print(f"No runs recorded in {printable(str(empty))} yet; start one with `scratch-tui train`.")
        return 0
    try:
        with RunStore(args.runs_dir) as store:
            if store.read_only and action in ("list", "show", "export"):
                print(f"scratch-tui {command}: note: {store.root} is read-only; the runs are shown as recorded and "
                      f"nothing is changed", file=sys.stderr)
            code = _RUNS_ACTIONS[action](store, args)
            sys.stdout.flush()  # a reader that went away shows here, not in Python's own flush at exit
            return code
    except BrokenPipeError:  # `scratch-tui runs | head -1`: nothing wrong, nobody left to tell
        return reader_gone()
    except RunNotFound as exc:
        return usage_error(str(exc), command)
    except ValueError as exc:  # a bad control value
        return usage_error(str(exc), command)
    except (StoreError, OSError) as exc:
        return error(str(exc), command)


def _runs_list(store: "RunStore", args: argparse.Namespace) -> int:
    sweep = getattr(args, "sweep", None)
    runs = store.list_runs(sweep=sweep)
    if not runs and sweep:
        print(f"No runs in a sweep {shown_text(sweep)}; `scratch-tui runs` lists every run.")
        return 0
    if not runs:
        print(f"No runs recorded in {store.root} yet; start one with `scratch-tui train`.")
        return 0
    rows = [("ID", "NAME", "MODEL", "DATASET", "STATUS", "EPOCHS", "BEST VAL", "TEST", "DURATION", "STARTED")]
    for r in runs:
        status = r.status_text
        rows.append((r.id, r.name or "-", r.model, r.dataset, status, f"{r.epochs_done}/{r.epochs}",
                     percent(r.best_val_acc), percent(r.test_acc), duration(r.duration_s), when(r.started_at)))
    # On a terminal the table fits its width: names, models and datasets are cut short, then duration,
    # started, dataset, model and name go; id, status, epochs and the accuracies always stay. Into a
    # pipe or a file it is whole.
    for line in table(rows, terminal_width(), squeeze=(1, 2, 3), drop=(8, 9, 3, 2, 1)):
        print(line)
    for r in runs:
        if r.damaged:
            print(f"scratch-tui runs: note: run {r.id} is {r.damaged}; it is left alone (`scratch-tui runs delete "
                  f"{r.id}` removes it)", file=sys.stderr)
    return 0


def _runs_show(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.replay import repeat_line

    r = store.get_run(args.run_id)
    why = r.unreadable
    view = store.view(r.id)
    if getattr(args, "layers", False):
        return _layers(view, r.id, args.epoch)
    if getattr(args, "diff", None):
        return _diff(store, r, store.get_run(args.diff))
    out: list[str] = [f"Run {r.id}" + (f" ({r.name})" if r.name else "") + f": {r.state}"]
    if why:
        out.append(f"  cannot be opened: {why}")
    if r.message:
        out.append(f"  {r.message}")
    out.append(f"  {r.model} on {r.dataset}, {r.epochs_done}/{r.epochs} epochs, {duration(r.duration_s)} of training")
    out += _model_file(r.config)
    if view.pack:
        out.append(f"  {view.pack}")
    out.append(f"  started {when(r.started_at)}" + (f", ended {when(r.ended_at)}" if r.ended_at else "")
               + (f", device {r.device} ({r.device_name})" if r.device else "")
               + (f", torch {r.torch_version}" if r.torch_version else "")
               + (f", pid {r.pid} on {r.host}" if r.pid else ""))
    for label, path in (("last", r.last_checkpoint), ("best", r.best_checkpoint)):
        if path:
            out.append(f"  {label} checkpoint: {path}")
    out += _parent(store, r)
    if why:  # its settings as recorded; its command line needs them read
        out += ["", "Settings (as recorded):"] + [f"  {key} = {json.dumps(value)}" for key, value in r.config.items()
                                                  if value is not None and key != "model_source"]
    else:
        out += ["", "Repeat it with:", f"  {repeat_line(store, r)}", "", "Settings:"]
        # the model file's source is said above, by its hash: the settings name the file
        out += [f"  {line}" for line in r.train_config().replace(model_source="").to_toml().splitlines()]
    if view.started is not None:  # what it trained with besides its settings; `--diff` compares these
        out += ["", "Receipt:"] + [f"  {key} = {_text(value)}" for key, value in view.started.receipt().items()]
    if view.changes:
        out += ["", "Changes:"] + [f"  {c.describe()}" for c in view.changes]
    out += _checkpoints(store, r.id)
    if view.epochs:
        rows = [("EPOCH", "TRAIN LOSS", "TRAIN ACC", "VAL LOSS", "VAL ACC", "LR", "SECONDS")]
        for e in view.epochs:
            rows.append((str(e.epoch), f"{e.train_loss:.4f}", percent(e.train_acc),
                         "-" if e.val_loss is None else f"{e.val_loss:.4f}", percent(e.val_acc), f"{e.lr:.3g}",
                         f"{e.seconds:.1f}"))
        out += ["", "Epochs:"] + [f"  {line}" for line in table(rows)]
    result = view.evaluation
    if result:
        out += ["", "Evaluation:", f"  {result.describe()}"]
        out += [f"  {name:<12} {acc:6.2f}%" for name, acc in zip(result.classes, result.per_class_acc)]
    print("\n".join(printable(line) for line in out))  # names and messages are the user's: escapes shown
    return 0


def _diff(store: "RunStore", r, other) -> int:
    """`runs show ID --diff OTHER`: every setting and every item of the receipt (versions, machine, device, threads,
    data, model source) that differs between the two runs, one a line."""
    from ..engine.events import event_from_dict
    from ..runs.fork import config_diff
    from ..runs.replay import as_trained

    mine, theirs = as_trained(r).to_dict(), as_trained(other).to_dict()
    lines = [f"  {key}: {_text(old)} {arrow()} {_text(new)}" for key, old, new in config_diff(mine, theirs)
             if key != "model_source"]  # a model file's source differs as its hash, below
    started = [event_from_dict(x.started).receipt() if x.started else {} for x in (r, other)]
    for key in dict.fromkeys([*started[0], *started[1]]):
        old, new = started[0].get(key), started[1].get(key)
        if old != new:
            lines.append(f"  {key}: {_text(old)} {arrow()} {_text(new)}")
    if not started[0] or not started[1]:
        lines.append(f"  (run {(r if not started[0] else other).id} never started: it has no receipt)")
    head = f"Run {r.id} {arrow()} run {other.id}:"
    print("\n".join([head, *lines]) if lines else f"{head} the same settings and receipt")
    return 0


def _model_file(config: dict) -> list[str]:
    """A model from a file: the file, and the sha256 of its source as kept with the run (what it builds from)."""
    source = config.get("model_source")
    if not isinstance(source, str) or not source:
        return []
    import hashlib

    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    lines = source.count("\n") + (not source.endswith("\n"))
    return [f"  model file: {config.get('model')}, sha256 {digest} ({lines} lines kept with the run; "
            f"every rebuild uses them, not the file as it is now)"]


def _layers(view, run_id: str, epoch: int | None) -> int:
    """`runs show ID --layers [--epoch N]`: the probe's layer table at the last probe of that epoch (or the last)."""
    from .inspect import layer_rows

    probes = [s for s in view.layer_stats if epoch is None or s.epoch == epoch]
    if not probes:
        if epoch is not None:  # an epoch it never probed is a bad --epoch
            return usage_error(f"--epoch: run {run_id} has no layer statistics in epoch {epoch}", "runs show")
        return error(f"run {run_id} has no layer statistics (it ran with --probe-every 0, or before the probe "
                     f"existed)", "runs show")
    print("\n".join(layer_rows(probes[-1])))
    for diagnosis in view.diagnoses:
        print(diagnosis.describe())
    return 0


def _parent(store: "RunStore", r) -> list[str]:
    """A fork's parent and the settings it changed, only those."""
    if not r.parent_id:
        return []
    from ..runs.fork import config_diff
    from ..runs.store import RunNotFound

    forked = store.view(r.id, only=("forked_from",)).forked
    line = f"  forked from run {r.parent_id} at {forked.where() if forked else f'epoch {r.parent_epoch}'}"
    try:
        parent = store.get_run(r.parent_id).config
    except RunNotFound:
        return [line + " (since deleted)"]
    diff = config_diff(parent, r.config)
    changed = ", ".join(f"{key} {_text(old)} {arrow()} {_text(new)}" for key, old, new in diff)
    return [line + (f"; changed: {changed}" if changed else "; no setting changed")]


def _text(value) -> str:
    from ..engine.config import to_text

    return to_text(tuple(value) if isinstance(value, list) else value) or "-"


def _checkpoints(store: "RunStore", run_id: str) -> list[str]:
    from ..runs.retention import disk_use, kept_checkpoints

    kept = kept_checkpoints(store, run_id)
    out = ["", f"Disk: {size(disk_use(store, run_id))} (checkpoints and log; hard-linked files counted once)"]
    if kept:
        rows = [("CHECKPOINT", "EPOCH", "STEP", "SIZE", "FORK WITH")]
        rows += [(k.name, _epoch_cell(k), "-" if k.step is None else str(k.step), size(k.bytes),
                  "-" if k.fork_at is None else f"--fork {run_id}{k.fork_at}") for k in kept]
        out += [f"  {line}" for line in table(rows)]
    return out


def _epoch_cell(kept) -> str:
    """The epochs done at an epoch end; the epoch in progress, marked, part-way through one."""
    if kept.epoch is None:
        return "-"
    return f"{kept.epoch + 1} (mid)" if kept.mid_epoch else str(kept.epoch)


def size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _runs_prune(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.retention import disk_use, prune_checkpoints

    run_id = store.resolve(args.run_id)
    before = disk_use(store, run_id)
    deleted = prune_checkpoints(store, run_id, args.keep)  # a running run or a bad --keep: ValueError, exit 2
    freed = before - disk_use(store, run_id)
    names = ", ".join(p.name for p in deleted)
    print(f"Run {run_id}: deleted {counted(len(deleted), 'checkpoint')}{f' ({names})' if names else ''}, freed {size(freed)}; "
          f"kept the newest {counted(args.keep, 'epoch checkpoint')}, the best, the last and the newest {args.keep} written on demand.")
    return 0


def _runs_export(store: "RunStore", args: argparse.Namespace) -> int:
    from ..runs.export import TensorBoardMissing, export_run, export_tensorboard

    run_ids = _chosen_runs(store, args)
    if not run_ids:
        return usage_error("name the runs to export (RUN_ID ...), or pass --all or --sweep SWEEP_ID", "runs export")
    if args.format == "tensorboard":
        if not args.output:
            return usage_error("--format tensorboard writes a folder per run: give the folder with --output DIR",
                               "runs export")
        try:
            folders = export_tensorboard(store, run_ids, Path(args.output))
        except TensorBoardMissing as exc:
            return usage_error(str(exc), "runs export")
        for folder in folders:
            print(f"wrote {folder}", file=sys.stderr)
        print(f"see them with: tensorboard --logdir {args.output}", file=sys.stderr)
        return 0
    if len(run_ids) > 1:
        if not args.output:
            return usage_error(f"{len(run_ids)} runs export as {args.format} to a file each: give the folder with "
                               f"--output DIR", "runs export")
        Path(args.output).mkdir(parents=True, exist_ok=True)
    for run_id in run_ids:
        text = export_run(store, run_id, args.format)
        target = Path(args.output) / f"{store.resolve(run_id)}.{args.format}" if len(run_ids) > 1 else \
            Path(args.output) if args.output else None
        if target is None:
            sys.stdout.write(text)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}", file=sys.stderr)
    return 0


def _chosen_runs(store: "RunStore", args: argparse.Namespace) -> list[str]:
    """The runs named, or every run (--all), or a sweep's (--sweep)."""
    sweep = getattr(args, "sweep", None)
    if args.all or sweep:
        return [r.id for r in store.list_runs(sweep=sweep)] + list(args.run_ids)
    return list(args.run_ids)


def _runs_verify(store: "RunStore", args: argparse.Namespace) -> int:
    from ..engine.checkpoints import CheckpointError
    from ..engine.config import ConfigError
    from ..engine.data import DatasetUnavailable
    from ..engine.devices import DeviceError
    from ..runs.verify import verify_run

    record = store.get_run(args.run_id)  # an unknown id is said as every action says it
    try:
        result = verify_run(store, record.id, args.steps, deterministic=args.deterministic, threads=args.threads)
    except (DeviceError, DatasetUnavailable, ConfigError, CheckpointError, LookupError) as exc:
        return usage_error(f"run {record.id} cannot be trained again here: {exc}", "runs verify")
    for line in verify_lines(result):
        print(line)
    return 0 if result.reproduced else EXIT_FAILED


def verify_lines(result) -> list[str]:
    """What `runs verify` prints: the verdict, what it cost, and what differs from the run's receipt."""
    how = "bit for bit" if result.tolerance == 0 else f"within {result.tolerance:g} relative (CUDA)"
    compared = len(result.compared)
    if result.reproduced:
        out = [f"Run {result.run_id}: reproduced: {compared} loss(es) over {result.steps} steps trained again agree "
               f"{how} (steps {', '.join(map(str, result.compared))})"]
    elif result.mismatch is not None:
        out = [f"Run {result.run_id}: not reproduced: the first difference is at {result.mismatch.describe()}; "
               f"compared {how}"]
    elif result.failure:
        out = [f"Run {result.run_id}: not reproduced: training it again failed: {result.failure}"]
    else:
        out = [f"Run {result.run_id}: not verified: nothing to compare"]
    out += [f"  {note}" for note in result.notes]
    recorded = f"; the record took {result.recorded_seconds:.2f}s" if result.recorded_seconds else ""
    algorithms = "deterministic algorithms on" if result.deterministic else "torch's default algorithms"
    out.append(f"  trained again in {result.seconds:.2f}s with {algorithms}{recorded}")
    if result.differences:
        out.append("  differs from the record:")
        out += [f"    {key}: {_text(old)} then, {_text(new)} now" for key, old, new in result.differences]
    else:
        out.append("  environment: as recorded (versions, device, threads, data, model source)")
    return out


def _runs_rm(store: "RunStore", args: argparse.Namespace) -> int:
    store.mark_interrupted()
    r = store.get_run(args.run_id)
    if r.state.active and not args.force:
        return usage_error(f"run {r.id} is running (pid {r.pid}); stop it first with `scratch-tui runs control "
                            f"{r.id} stop`, or pass --force", "runs rm")
    if not args.yes:
        if not sys.stdin.isatty():
            return usage_error(f"not deleting run {r.id} without confirmation; pass --yes", "runs rm")
        answer = input(f"Delete run {r.id}{f' ({r.name})' if r.name else ''}, {r.status}, "
                       f"{r.epochs_done}/{r.epochs} epochs, and its checkpoints? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print(f"Kept run {r.id}.")
            return EXIT_FAILED
    if r.state.active and not _stop_and_wait(store, r.id):
        return error(f"run {r.id} did not stop within {STOP_WAIT_S:.0f}s (pid {r.pid} on {r.host}); nothing was "
                     f"deleted. Try again once it has stopped", "runs rm")
    store.delete(r.id)
    print(f"Deleted run {r.id} and its checkpoints.")
    return 0


STOP_WAIT_S = 30.0


def _stop_and_wait(store: "RunStore", run_id: str) -> bool:
    """--force on a running run: stop its process first (it checkpoints and ends), so nothing trains on
    into a run that no longer exists."""
    import time

    from ..engine.commands import Command
    from ..runs.handle import RunNotRunning, StoredRun

    try:
        StoredRun(store, run_id).send(Command("stop"))
    except RunNotRunning:
        return True  # it ended meanwhile
    print(f"Stopping run {run_id} first…", file=sys.stderr)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        store.mark_interrupted()
        if not store.get_run(run_id).state.active:
            return True
        time.sleep(0.2)
    return False


def _runs_control(store: "RunStore", args: argparse.Namespace) -> int:
    from ..engine.commands import TAKES_VALUE, Command
    from ..runs.handle import RunNotRunning, StoredRun

    name = args.action.replace("-", "_")
    if name in TAKES_VALUE and args.value is None:
        return usage_error(f"{args.action} needs the new rate, e.g. `scratch-tui runs control {args.run_id} "
                           f"{args.action} 0.001`", "runs control")
    command = Command(name, args.value)  # a bad value is a ValueError: one line, exit 2
    handle = StoredRun(store, args.run_id)
    try:
        handle.send(command)
    except RunNotRunning as exc:  # finished: "has finished; nothing to change"; else how to go on
        return error(str(exc), "runs control")
    print(f"Asked run {handle.run_id} to {command.describe()}; it acts on it at its next step.")
    return 0


_RUNS_ACTIONS = {"list": _runs_list, "show": _runs_show, "export": _runs_export, "verify": _runs_verify,
                 "rm": _runs_rm, "control": _runs_control, "prune": _runs_prune}
