"""A sweep's life after it starts: extend it, retry what failed, continue its best configs.

    extend(store, sweep_id, spec) -> list[str]           the file's configs and seeds the sweep lacks, queued in it
    sweep_grid(store, sweep_id) -> SweepGrid             the grid its runs make, for the app's setup to grow and
                                                         hand to extend
    retry(store, sweep_id) -> list[str]                  its failed or interrupted runs queued again (a study: its
                                                         failed trials enqueued again, for any box)
    continue_best(store, sweep_id, top, epochs) -> list[str]   forks of its best `top` configs' best runs, trained
                                                         on to `epochs`, queued in the sweep

Everything stays under the same sweep id, so the sweep's table and `sweep show` grow with it. A retried run is kept
(never deleted: its log says what went wrong) and left out of the table once its retry exists.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..engine.config import TrainConfig
from ..engine.events import RunState
from .queue import RETRIED, QueueError, enqueue, list_sweeps, resolve_sweep, retried, sweep_records, sweep_results
from .store import RunStore
from .sweep import Axis, SweepSpec, config_group, list_axis, sweep_table


def _refuse_study(store: RunStore, sweep_id: str, what: str) -> None:
    from .study import study_link

    if study_link(store, sweep_id) is not None:
        raise QueueError(f"sweep {what}: sweep {sweep_id} is an Optuna study, which grows by its own search; make a "
                         f"new study with more samples, or join boxes with `scratch-tui worker`")


def extend(store: RunStore, sweep_id: str, spec: SweepSpec, allow_large: bool = False) -> list[str]:
    """Queue the configs and seeds of `spec` that the sweep has not got yet, under its id and name."""
    full = resolve_sweep(store, sweep_id)
    _refuse_study(store, full, "extend")
    records = sweep_records(store, full)
    have = {(config_group(r.train_config()), r.train_config().seed) for r in records if not r.unreadable}
    configs = [c for c in spec.configs(allow_large=allow_large) if (config_group(c), c.seed) not in have]
    if not configs:
        raise QueueError(f"sweep extend: nothing new for sweep {full}: it has every config and seed given already; "
                         f"add values or seeds")
    return enqueue(store, configs, full, _name(store, full) or spec.name, [c.name for c in configs])


class SweepGrid(NamedTuple):
    """A sweep as the grid its runs make: its first run's config (named after the sweep) as the base, and each field
    its runs vary as a list of the values they took, in the order they were queued, the seed last."""

    base: TrainConfig
    axes: tuple[Axis, ...]
    name: str


def sweep_grid(store: RunStore, sweep_id: str) -> SweepGrid:
    """The grid of the sweep's runs, for setup to open and grow (a value or seed more), then `extend` to queue what
    it lacks. Forks (`continue`) are left out: they are its runs trained on, not configs of its grid."""
    full = resolve_sweep(store, sweep_id)
    _refuse_study(store, full, "extend")
    configs = [r.train_config() for r in sweep_records(store, full) if not r.unreadable and not r.parent_id]
    if not configs:
        raise QueueError(f"sweep extend: sweep {full} has no run this version can read to start from")
    taken: dict[str, list[Any]] = {}
    for config in configs:
        for field, value in (*config_group(config), ("seed", config.seed)):
            values = taken.setdefault(field, [])
            if value not in values:
                values.append(value)
    name = _name(store, full)
    axes = tuple(list_axis(field, values) for field, values in taken.items() if len(values) > 1)
    return SweepGrid(configs[0].replace(name=name), axes, name)


def retry(store: RunStore, sweep_id: str) -> list[str]:
    """Queue again each failed or interrupted run of the sweep (its config as it was); for a study, enqueue its
    failed trials again. The new run ids (a study: the trial numbers, as text)."""
    from .study import load, retry_failed, study_link

    link = study_link(store, sweep_id)
    if link is not None:
        return [str(n) for n in retry_failed(load(link))]
    full = resolve_sweep(store, sweep_id)
    again = [r for r in sweep_records(store, full)
             if r.state in (RunState.FAILED, RunState.INTERRUPTED) and not r.unreadable and r.id not in retried(store)]
    if not again:
        return []
    configs = [r.train_config() for r in again]
    ids = enqueue(store, configs, full, _name(store, full), [r.name for r in again])
    for old, new in zip(again, ids):
        store.set_setting(RETRIED + old.id, new)
    return ids


def continue_best(store: RunStore, sweep_id: str, top: int, epochs: int) -> list[str]:
    """Fork the best run of each of the sweep's `top` best configs, to train on to `epochs` in all, queued in the
    sweep at the end of the queue, best first (the queue's runner starts them). The forks' run ids."""
    from .fork import fork_run

    if not (isinstance(top, int) and top >= 1):
        raise QueueError(f"top: got {top!r}; must be a number of configs, 1 or more")
    full = resolve_sweep(store, sweep_id)
    _refuse_study(store, full, "continue")
    table = sweep_table(sweep_results(store, full))
    parents = [store.get_run(row.best_run_id) for row in table.rows[:top] if row.best_run_id]
    if not parents:
        raise QueueError(f"sweep continue: sweep {full} has no finished run to continue yet")
    for parent in parents:  # all checked before any fork is made
        if epochs <= parent.epochs_done:
            raise QueueError(f"epochs: got {epochs}; run {parent.id} has trained {parent.epochs_done} epochs "
                             f"already, so ask for more")
    forks: list[str] = []
    try:
        for parent in parents:
            forks.append(fork_run(store, parent.id, None, {"epochs": epochs}).run_id)
    except BaseException:
        for run_id in forks:  # none queued: all or none
            store.delete(run_id)
        raise
    store.queue_created(forks, full, _name(store, full))
    return forks


def _name(store: RunStore, sweep_id: str) -> str:
    return next((s.name for s in list_sweeps(store) if s.id == sweep_id), "")
