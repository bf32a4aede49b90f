"""A sweep as an Optuna study: one search that every box draws trials from, each trial an ordinary local run.

    link = open_link(store, spec, data, storage, name)   # create the study (or join it: its space must match)
    link = join_link(store, storage, name)               # join a study someone made, its sweep read from it
    draw_trials(store, has_slot, pack)                   # the queue runner, each poll: trials for a free slot
    reporter = trial_reporter(store, run_id)             # (trial_report.py) the run's worker: reported, pruned, told
    trial_rows(load(link)), trial_results(...)          # every box's trials, as `sweep show` lists them

Optuna keeps the search (samplers: TPE, random, QMC; the grid is sweep.py's own, enqueued in order), the pruners
(ASHA, Hyperband, median) and the storage many processes share: a journal file (on a shared filesystem) or an
RDB URL (PostgreSQL, MySQL; SQLite only for one box). The run store stays local: a trial is queued in the run
store of the box that draws it, trained by that box's queue runner like any run (attach, pause, lr, fork), and
its epochs are reported to the trial by the run's own process, which also tells the study its end.

Seeds stay repeats of a config: a trial is one run with one seed, and a fresh config's other seeds are enqueued
as trials of the same params, so the sweep table groups them into mean ± std as before.

A trial whose run dies (kill -9, a lost box) stops beating. Whoever draws next fails it once it is stale, and
Optuna's RetryFailedTrialCallback enqueues it again, once, for any box. Both the box's runner (while the run
waits or lives) and the run itself beat, so losing either alone loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ..engine.config import SETTINGS, TrainConfig, to_text
from .store import RunStore
from .study_storage import (STALE_BEATS, StudyError, is_sqlite, no_study, open_storage, require_optuna,
                            storage_place, stored_file)
from .sweep import SweepError, SweepSpec, _number

if TYPE_CHECKING:
    import optuna

LINK = "study.link."  # + a sweep id: the study this store's sweep draws from (a setting of the run store)
TRIAL = "study.trial."  # + a run id: the trial that run trains
SPEC_ATTR = "scratch_tui.sweep"  # the study's sweep file (as a dict): a joining box builds its runs from it
SPACE_ATTR = "scratch_tui.space"  # what a joining file must match: the search space, seeds, base config, search
HOSTS_ATTR = "scratch_tui.hosts"


# -- the search space ------------------------------------------------------------------------------------------
def _choice(value: Any) -> Any:
    """A listed value as an Optuna category: numbers, text and booleans as they are, lists as their text."""
    return value if isinstance(value, (bool, int, float, str)) or value is None else to_text(value)


def distributions(spec: SweepSpec) -> dict[str, Any]:
    """The Optuna distribution of each axis: a range as float or int (log when it is), a list (or a grid's
    points) as categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for axis in spec.axes:
        if axis.is_range and spec.search != "grid":
            if SETTINGS[axis.field.partition(".")[0]].type is int:
                found[axis.field] = IntDistribution(int(axis.low), int(axis.high), log=axis.scale == "log")
            else:
                found[axis.field] = FloatDistribution(axis.low, axis.high, log=axis.scale == "log")
        else:
            found[axis.field] = CategoricalDistribution([_choice(v) for v in axis.grid()])
    return found


def _values(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's params as the settings they stand for (a categorical's text back to its value)."""
    values: dict[str, Any] = {}
    for axis in spec.axes:
        value = params[axis.field]
        if not axis.is_range or spec.search == "grid":
            value = next(v for v in axis.grid() if _choice(v) == value)
        else:  # a sampled point at the 3 significant digits a range's points have (sweep.py)
            value = _number(axis.field, value)
        values[axis.field] = value
    return values


def trial_config(spec: SweepSpec, params: Mapping[str, Any], seed: int) -> TrainConfig:
    return spec._config({**_values(spec, params), "seed": seed})


def _space(spec: SweepSpec) -> str:
    """What two boxes must agree on to share a study, as one canonical text."""
    from optuna.distributions import distribution_to_json

    return json.dumps({"params": {f: json.loads(distribution_to_json(d)) for f, d in distributions(spec).items()},
                       "seeds": list(spec.seeds_or_base), "base": spec.base.replace(name="").to_dict(),
                       "search": spec.search, "samples": spec.samples}, sort_keys=True, default=str)


def _sampler(spec: SweepSpec) -> Any:
    optuna = require_optuna()
    seed = spec.sample_seed
    if spec.search == "tpe":  # trials drawn while others train (other boxes, a pack's members) are told apart
        with warnings.catch_warnings():  # constant_liar is marked experimental
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if spec.search == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # random; a grid's trials are all enqueued


def pruner(spec: SweepSpec) -> Any:
    optuna = require_optuna()
    epochs = spec.base.epochs
    if spec.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.halving, reduction_factor=2)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.halving, max_resource=max(epochs, 1),
                                              reduction_factor=2)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.halving - 1)
    return optuna.pruners.NopPruner()


def direction(spec: SweepSpec) -> str:
    return "minimize" if spec.base.monitor == "val_loss" else "maximize"


def sweep_id_of(storage: str, name: str) -> str:
    """The sweep id every box gives a study's runs: the same on each, made from where the study lives."""
    return hashlib.sha1(f"{storage}\n{name}".encode()).hexdigest()[:8]


# -- the link between a run store and a study ------------------------------------------------------------------
@dataclass(frozen=True)
class StudyLink:
    storage: str  # a journal file's absolute path, or an RDB URL
    name: str

    @property
    def sweep_id(self) -> str:
        return sweep_id_of(self.storage, self.name)

    def to_json(self) -> str:
        return json.dumps({"storage": self.storage, "study": self.name})

    @classmethod
    def from_json(cls, text: str) -> "StudyLink":
        data = json.loads(text)
        return cls(data["storage"], data["study"])


@dataclass
class OpenStudy:
    link: StudyLink
    study: Any  # optuna.Study
    spec: SweepSpec

    @property
    def trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)


_OPEN: dict[StudyLink, OpenStudy] = {}  # a long-lived runner reads each study's journal incrementally


def load(link: StudyLink) -> OpenStudy:
    """The study a link names, with its sweep read back from it (cached for this process)."""
    if link in _OPEN:
        return _OPEN[link]
    optuna = require_optuna()
    file = stored_file(link.storage)
    if file is not None and not file.exists():  # opening it would make an empty one
        raise no_study(link.name, link.storage, [])
    storage = open_storage(link.storage, 1.0)
    try:
        summary = optuna.load_study(study_name=link.name, storage=storage)
    except KeyError:
        raise no_study(link.name, link.storage, [s.study_name for s in storage.get_all_studies()]) from None
    data = summary.user_attrs.get(SPEC_ATTR)
    if data is None:
        raise StudyError(f"study: study {link.name!r} in {link.storage} was not made by scratch-tui (it has no "
                         f"sweep); give another --study name")
    spec = SweepSpec.from_dict(data)
    storage.heartbeat_s = spec.heartbeat  # type: ignore[attr-defined]  (a journal's; RDB's set below)
    if hasattr(storage, "heartbeat_interval"):
        storage.heartbeat_interval = max(1, math.ceil(spec.heartbeat))
        storage.grace_period = max(1, math.ceil(spec.heartbeat * STALE_BEATS))
    study = optuna.load_study(study_name=link.name, storage=storage, sampler=_sampler(spec), pruner=pruner(spec))
    _OPEN[link] = OpenStudy(link, study, spec)
    return _OPEN[link]


def open_link(store: RunStore, spec: SweepSpec, data: Mapping[str, Any], storage: str | None, name: str, *,
              slurm: bool = False) -> StudyLink:
    """Make the study of `spec` (the sweep file's `data`), or join the one of that name whose space is the same;
    the link is kept in the store, so its queue runner draws trials from it."""
    optuna = require_optuna()
    place = storage_place(storage, store)
    if is_sqlite(place) and slurm:
        raise StudyError(f"storage: SQLite ({place}) cannot be shared by Slurm's workers on several nodes; use a "
                         f"journal file on a shared filesystem or a PostgreSQL URL")
    link = StudyLink(place, name)
    backend = open_storage(place, spec.heartbeat)
    study = optuna.create_study(study_name=name, storage=backend, sampler=_sampler(spec), pruner=pruner(spec),
                                direction=direction(spec), load_if_exists=True)
    space = _space(spec)
    attrs = study.user_attrs
    if SPACE_ATTR in attrs:
        if attrs[SPACE_ATTR] != space:
            raise StudyError(f"study: study {name!r} in {place} has another search space than this file "
                             f"({_difference(attrs[SPACE_ATTR], space)}); give another --study name, or join it "
                             f"with `scratch-tui worker --storage {place} --study {name}`")
    else:
        study.set_user_attr(SPEC_ATTR, _jsonable(data))
        study.set_user_attr(SPACE_ATTR, space)
        if spec.search == "grid":  # the grid as sweep.py orders it: seeds outermost, the last axis fastest
            for config_index, values in enumerate(spec._grid() * len(spec.seeds_or_base)):
                seed = spec.seeds_or_base[config_index // max(len(spec._grid()), 1)]
                study.enqueue_trial({f: _choice(v) for f, v in values.items()},
                                    user_attrs={"seed": seed, "planned": True})
    _check_boxes(study, place, store.host)
    store.set_setting(LINK + link.sweep_id, link.to_json())
    return link


def join_link(store: RunStore, storage: str, name: str) -> StudyLink:
    """Join a study made elsewhere (`scratch-tui worker`): its sweep comes from the study itself."""
    place = storage_place(storage, store)
    link = StudyLink(place, name)
    opened = load(link)
    _check_boxes(opened.study, place, store.host)
    store.set_setting(LINK + link.sweep_id, link.to_json())
    return link


def _check_boxes(study: Any, place: str, host: str) -> None:
    hosts = list(study.user_attrs.get(HOSTS_ATTR, []))
    if is_sqlite(place) and any(h != host for h in hosts):
        raise StudyError(f"storage: SQLite ({place}) cannot be shared between boxes ({hosts[0]} uses it already); "
                         f"use a journal file on a shared filesystem or a PostgreSQL URL")
    if host not in hosts:
        study.set_user_attr(HOSTS_ATTR, hosts + [host])


def _difference(theirs: str, ours: str) -> str:
    a, b = json.loads(theirs), json.loads(ours)
    for key in ("params", "seeds", "search", "samples", "base"):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                names = sorted(k for k in {*a[key], *b[key]} if a[key].get(k) != b[key].get(k))
                return f"{key}: {', '.join(names)} differ"
            return f"{key} differ"
    return "it differs"


def _jsonable(data: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(data, default=str))


def links(store: RunStore) -> list[StudyLink]:
    found = []
    for _, value in store.settings_under(LINK):
        try:
            found.append(StudyLink.from_json(value))
        except (ValueError, KeyError):
            continue  # written by hand: nothing to draw from
    return found


def study_link(store: RunStore, sweep_id: str) -> StudyLink | None:
    """The study of a sweep (its id or a unique prefix) that this store draws from; None for a sweep of the store
    alone."""
    found = [link for link in links(store) if link.sweep_id.startswith(sweep_id.strip().lower())]
    return found[0] if len(found) == 1 and sweep_id.strip() else None


def local_trials(store: RunStore, run_id: str | None = None) -> Iterator[tuple[str, StudyLink, int]]:
    """The runs of this store that train a study's trial (or `run_id` alone, where it does): each run's id, its
    study and the trial's number, as `_queue_trial` kept them."""
    found = [(run_id, store.setting(TRIAL + run_id))] if run_id else store.settings_under(TRIAL)
    for key, value in found:
        if value:
            data = json.loads(value)
            yield key.removeprefix(TRIAL), StudyLink(data["storage"], data["study"]), data["trial"]


# -- drawing trials (the queue runner) -------------------------------------------------------------------------
def _fresh(trial: Any) -> bool:
    """A trial the sampler chose (not a planned grid point or seed repeat, a retry or a surplus draw)."""
    return not ("failed_trial" in trial.system_attrs or trial.user_attrs.get("planned")
                or trial.user_attrs.get("surplus"))


def trials_left(opened: OpenStudy) -> bool:
    from optuna.trial import TrialState

    trials = opened.trials
    samples = 0 if opened.spec.search == "grid" else opened.spec.samples
    return any(t.state == TrialState.WAITING for t in trials) or sum(map(_fresh, trials)) < samples


def still_open(opened: OpenStudy) -> bool:
    """Trials to draw, or trials training somewhere that may die and come back as retries."""
    from optuna.trial import TrialState

    return trials_left(opened) or any(t.state == TrialState.RUNNING for t in opened.trials)


def _ask(opened: OpenStudy) -> Any | None:
    """A trial to train, its seed set; None when the study has none left (another box took the last)."""
    if not trials_left(opened):
        return None
    study, spec = opened.study, opened.spec
    with warnings.catch_warnings():  # Optuna's heartbeat warns outside Study.optimize: this ask/tell loop beats
        warnings.simplefilter("ignore")
        trial = study.ask(distributions(spec))
    if "seed" in trial.user_attrs:
        return trial
    samples = 0 if spec.search == "grid" else spec.samples
    fresh_before = sum(1 for t in opened.trials if t.number < trial.number and _fresh(t))
    if fresh_before >= samples:  # two boxes drew the last config at once: this one is left out
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=require_optuna().trial.TrialState.FAIL)
        return None
    seeds = spec.seeds_or_base
    trial.set_user_attr("seed", seeds[0])
    for seed in seeds[1:]:
        study.enqueue_trial(trial.params, user_attrs={"seed": seed, "planned": True})
    return trial


def draw_trials(store: RunStore, has_slot: Callable[[TrainConfig], bool], pack: int = 1) -> list[str]:
    """For each study this store draws from: fail its stale trials (their retries enqueued), and while a slot
    is free for its runs, ask a trial and queue it as a run of this store; then, up to `pack` in all, more trials
    of the same shape, which the queue trains together as one pack in the slot (a trial of another shape ends the
    draw, queued for the next slot). The queued run ids."""
    from optuna.storages import fail_stale_trials

    from ..engine.pack_shape import pack_key

    queued: list[str] = []
    for link in links(store):
        try:
            opened = load(link)
        except StudyError as exc:
            print(f"study {link.name}: {exc}", flush=True)
            continue
        with warnings.catch_warnings():  # marked experimental since Optuna 2.9
            warnings.simplefilter("ignore")
            fail_stale_trials(opened.study)
        if not has_slot(opened.spec.base):
            continue
        shapes = set()
        for _ in range(pack):
            trial = _ask(opened)
            if trial is None:
                break
            config = trial_config(opened.spec, trial.params, trial.user_attrs["seed"])
            queued.append(_queue_trial(store, link, opened, trial, config))
            shapes.add(pack_key(config))
            if None in shapes or len(shapes) > 1:  # one that trains alone, or of another shape: the draw ends
                break
    return queued


def _queue_trial(store: RunStore, link: StudyLink, opened: OpenStudy, trial: Any, config: TrainConfig) -> str:
    [run_id] = store.create_queued([(config, config.name)], link.sweep_id, opened.spec.name or link.name)
    store.set_setting(TRIAL + run_id, json.dumps({**json.loads(link.to_json()), "trial": trial.number}))
    for key, value in (("run_id", run_id), ("host", store.host)):
        trial.set_user_attr(key, value)
    print(f"study {link.name}: trial {trial.number} queued as run {run_id}", flush=True)
    return run_id


_BEATEN: dict[str, float] = {}  # run id -> when this runner last beat for its trial


def beat_trials(store: RunStore) -> None:
    """The runner's heartbeat for its trials whose runs wait or train here (the run beats too, once it trains),
    so a trial of this box stays its own until the run ends or dies."""
    from optuna.trial import TrialState

    now = time.time()
    for run_id, link, number in local_trials(store):
        try:
            status = store.status(run_id)
        except LookupError:
            continue
        if status not in ("queued", "running"):
            continue
        opened = load(link)
        if now - _BEATEN.get(run_id, 0.0) < opened.spec.heartbeat:
            continue
        _BEATEN[run_id] = now
        trial = opened.study.get_trials(deepcopy=False)[number]
        if trial.state == TrialState.RUNNING:
            opened.study._storage.record_heartbeat(trial._trial_id)


def studies_open(store: RunStore) -> bool:
    """Whether a study this store draws from may still give it a trial: the runner waits for it."""
    for link in links(store):
        try:
            if still_open(load(link)):
                return True
        except StudyError:
            continue
    return False


def retry_failed(opened: OpenStudy) -> list[int]:
    """Enqueue again, for any box, each failed trial that has no retry yet (`sweep retry`); their numbers."""
    optuna = require_optuna()
    trials = opened.trials
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    again = []
    for t in trials:
        if t.state.name != "FAIL" or t.user_attrs.get("surplus") or t.number in retried:
            continue
        history = list(t.system_attrs.get("retry_history", [])) + [t.number]
        opened.study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING, params=t.params, distributions=t.distributions,
            user_attrs={"seed": t.user_attrs.get("seed"), "planned": True},
            system_attrs={"failed_trial": t.system_attrs.get("failed_trial", t.number), "retry_history": history}))
        again.append(t.number)
    return again


# -- reading a study (`sweep show`) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # Optuna's: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    host: str
    run_id: str
    seed: int | None
    values: dict[str, Any]
    value: float | None
    test_acc: float | None
    seconds: float | None
    last_epoch: int | None  # the last epoch reported (a pruned trial's epoch)
    retry_of: int | None

    @property
    def config(self) -> str:
        return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={to_text(v)}"
                        for k, v in self.values.items())


def trial_rows(opened: OpenStudy) -> list[TrialRow]:
    """Every trial but surplus draws, in order, with the box and run that trained it."""
    rows = []
    for t in opened.trials:
        if t.user_attrs.get("surplus"):
            continue
        values = _values(opened.spec, t.params) if set(t.params) >= {a.field for a in opened.spec.axes} else {}
        rows.append(TrialRow(
            number=t.number, state=t.state.name, host=t.user_attrs.get("host", ""), run_id=t.user_attrs.get("run_id", "")
            if t.state.name != "WAITING" else "", seed=t.user_attrs.get("seed"), values=values, value=t.value,
            test_acc=t.user_attrs.get("test_acc"), seconds=t.user_attrs.get("seconds"),
            last_epoch=max(t.intermediate_values) if t.intermediate_values else None,
            retry_of=t.system_attrs.get("failed_trial")))
    return rows


def trial_results(opened: OpenStudy) -> list[Any]:
    """The finished trials as the sweep table takes runs (RunResult), so configs get mean ± std over seeds."""
    from ..engine.events import RunState
    from .sweep import RunResult

    states = {"COMPLETE": RunState.FINISHED, "PRUNED": RunState.STOPPED, "FAIL": RunState.FAILED,
              "RUNNING": RunState.RUNNING, "WAITING": RunState.QUEUED}
    results = []
    for row in trial_rows(opened):
        if not row.values or row.seed is None:
            continue
        best_val = row.value if direction(opened.spec) == "maximize" else None
        results.append(RunResult(config=opened.spec._config({**row.values, "seed": row.seed}), best_val_acc=best_val,
                                 test_acc=row.test_acc, seconds=row.seconds or 0.0,
                                 state=states.get(row.state, RunState.FAILED), run_id=row.run_id))
    return results


def check_spec(spec: SweepSpec) -> None:
    """What a study needs of a sweep beyond sweep.py's own checks."""
    if not spec.axes:
        raise SweepError("sweep: a study needs at least one setting to search; list values or a range under [sweep]")


