"""A study's workers on a cluster, through submitit: each task of a job array joins the study on its node and
works as `scratch-tui worker` does (its node's queue runner draws trials into its node's local run store).

    cluster, job_ids = submit(link, runs_dir, SlurmRequest(array=4, partition="gpu", gpus_per_task=1), folder)

Preemption and timeouts: submitit signals the task and calls `SlurmWorker.checkpoint`, which requeues the same
worker; the requeued task resumes, from its last checkpoint (as `train --resume` does), the runs of the study that
were cut short on its node, then draws trials again. Without Slurm (no `sbatch`), submitit's local executor runs
the same workers as processes of this box: how the tests run it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import RunStore
from .study import StudyError, StudyLink, is_sqlite

SLURM_EXTRA = "pip install 'scratch-tui[slurm]'"


def require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise StudyError(f"Slurm workers need submitit, which is not installed; install the slurm extra: {SLURM_EXTRA}") \
            from None
    return submitit


@dataclass(frozen=True)
class SlurmRequest:
    array: int = 1  # workers, one task each
    partition: str | None = None
    gpus_per_task: int | None = None
    time: str | None = None  # Slurm's: minutes, MM:SS, HH:MM:SS or D-HH:MM:SS
    extra: dict[str, str] = field(default_factory=dict)  # --slurm-arg KEY=VALUE, as sbatch's --KEY=VALUE

    def minutes(self) -> int | None:
        """The time limit in whole minutes (at least 1), as submitit takes it; StudyError for a malformed one."""
        if self.time is None:
            return None
        match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", self.time.strip())
        if not match:
            raise StudyError(f"time: got {self.time!r}; give minutes, HH:MM:SS or D-HH:MM:SS as Slurm reads them")
        days, a, b, c = (int(x) if x else None for x in match.groups())
        if days is not None:  # D-HH[:MM[:SS]]
            total = days * 1440 + a * 60 + (b or 0) + (c or 0) / 60
        elif c is not None:  # HH:MM:SS
            total = a * 60 + b + c / 60
        elif b is not None:  # MM:SS
            total = a + b / 60
        else:
            total = a
        return max(1, round(total))


@dataclass
class SlurmWorker:
    """What each task of the array runs (pickled by submitit): join the study, resume what was cut short here,
    and draw trials until the study has none left."""

    storage: str
    study: str
    runs_dir: str | None = None

    def __call__(self) -> int:
        from .queue import run_queue
        from .study import join_link

        with RunStore(self.runs_dir) as store:
            join_link(store, self.storage, self.study)
            resume_cut_short(store)
            return run_queue(store)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on preemption or timeout: the same worker, requeued."""
        submitit = require_submitit()
        return submitit.helpers.DelayedSubmission(SlurmWorker(self.storage, self.study, self.runs_dir))


def resume_cut_short(store: RunStore) -> list[str]:
    """Resume from its last checkpoint each run of a study on this store that was interrupted or stopped by a
    signal (not pruned) while its trial still runs; their ids."""
    from .spawn import SpawnError, resume_in_background
    from .study import load, local_trials

    store.mark_interrupted()
    resumed = []
    for run_id, link, number in local_trials(store):
        try:
            record = store.get_run(run_id)
        except LookupError:
            continue
        if record.status not in ("interrupted", "stopped") or record.message.startswith("pruned by"):
            continue
        trial = load(link).study.get_trials(deepcopy=False)[number]
        if trial.state.name != "RUNNING":
            continue
        try:
            resume_in_background(store, run_id)
        except (SpawnError, LookupError, ValueError) as exc:
            print(f"run {run_id} could not resume: {exc}", flush=True)
            continue
        resumed.append(run_id)
    return resumed


def submit(link: StudyLink, runs_dir: str | None, request: SlurmRequest, folder: Path,
           cluster: str | None = None) -> tuple[str, list[str]]:
    """Submit `request.array` workers of the study as one job array; the executor used ("slurm", or "local"
    without Slurm) and the job ids."""
    submitit = require_submitit()
    if is_sqlite(link.storage):
        raise StudyError(f"storage: SQLite ({link.storage}) cannot be shared by Slurm's workers on several nodes; "
                         f"use a journal file on a shared filesystem or a PostgreSQL URL")
    if request.array < 1:
        raise StudyError(f"array: got {request.array}; must be a number of workers, 1 or more")
    minutes = request.minutes()
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = {"name": f"scratch-tui-{link.name}"[:64]}
    if minutes is not None:
        params["timeout_min"] = minutes
    if executor.cluster == "slurm":
        params["slurm_array_parallelism"] = request.array
        if request.partition:
            params["slurm_partition"] = request.partition
        if request.gpus_per_task is not None:
            params["slurm_gpus_per_task"] = request.gpus_per_task
        if request.extra:
            params["slurm_additional_parameters"] = dict(request.extra)
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(SlurmWorker(link.storage, link.name, runs_dir)) for _ in range(request.array)]
    return executor.cluster, [str(job.job_id) for job in jobs]
