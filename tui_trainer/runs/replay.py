"""Replaying a run's lr changes: `train --replay RUN_ID` sets the same lr at the same steps as that run did.

The plan, (step, lr) pairs read from the source run's log (its changes made through the control: set,
halved, doubled; not its plateau cuts, which the config repeats by itself), is written as the new run's
first event, ReplayPlanned. A `ReplayControl` then raises the loop's `pending` flag when the run reaches a
planned step, and hands the lr over through `take_lr`, the path a set lr from the keyboard takes. So the
change happens at the step it happened at before, is logged as LearningRateChanged, and is checkpointed
like any other; a resumed (or detached) run reads what is left of its plan from its log.
"""

from __future__ import annotations

from typing import Callable

from ..command_line import command_line
from ..engine.config import TrainConfig
from ..engine.control import TrainingControl
from ..engine.events import ReplayPlanned
from .store import RunRecord, RunStore


class ReplayControl(TrainingControl):
    """A TrainingControl that also asks for each planned lr once the run's step reaches it."""

    def __init__(self, plan: list[tuple[int, float]], step: Callable[[], int]):
        self._plan = sorted(plan)
        self._step = step
        self._asked = False
        super().__init__()

    # The loop reads `pending` before each batch; a planned step due makes it true, as a request would.
    @property
    def pending(self) -> bool:  # type: ignore[override]
        return self._asked or bool(self._plan) and self._step() >= self._plan[0][0]

    @pending.setter
    def pending(self, value: bool) -> None:
        self._asked = value

    def take_lr(self) -> float | None:
        requested = super().take_lr()
        planned = None
        while self._plan and self._step() >= self._plan[0][0]:
            planned = self._plan.pop(0)[1]  # the last due wins, as two quick set-lrs do
        return requested if requested is not None else planned



def lr_plan(store: RunStore, source_id: str) -> list[tuple[int, float]]:
    """The (step, lr) changes of `source_id` that a replay applies."""
    return store.view(source_id).lr_changes()


def plan_replay(store: RunStore, run_id: str, source_id: str) -> list[tuple[int, float]]:
    """Write the plan as the run's ReplayPlanned (before it starts); returns it."""
    source_id = store.resolve(source_id)
    plan = lr_plan(store, source_id)
    store.append(run_id, ReplayPlanned(source_id, [[step, lr] for step, lr in plan]))
    return plan


def replay_control(store: RunStore, run_id: str, step: Callable[[], int], start_step: int) -> ReplayControl | None:
    """The control that carries on the run's plan from `start_step` (0, or where a resume starts), leaving out
    changes its log shows applied already; None when the run replays nothing."""
    view = store.view(run_id)
    if view.replay is None:
        return None
    # what came after start_step in the log is trained again, so only changes up to it count as done
    applied = {(c.step, c.value) for c in view.changes if c.what == "lr" and c.step <= start_step}
    left = [(int(s), float(lr)) for s, lr in view.replay.lr_changes
            if s >= start_step and (int(s), float(lr)) not in applied]
    return ReplayControl(left, step)


def repeat_line(store: RunStore, record: RunRecord) -> str:
    """The command line that repeats the run: its settings, its fork point and its mid-run lr changes. `runs show`,
    export and the app show this one line."""
    base, fork = None, ""
    if record.parent_id:
        forked = store.view(record.id, only=("forked_from",)).forked
        fork = f"{record.parent_id}@{forked.point() if forked else record.parent_epoch}"
        try:
            base = as_trained(store.get_run(record.parent_id))
        except LookupError:  # the parent was deleted: its settings are unknown, so every setting is given
            base = None
    replay = record.id if store.view(record.id).lr_changes() else ""
    return command_line(as_trained(record), base=base, fork=fork, replay=replay)


def as_trained(record: RunRecord) -> TrainConfig:
    """The run's config with its thread count as it was pinned when it started (auto, 0, repeats the same sums only
    where the cores are the same)."""
    config = record.train_config()
    threads = (record.started or {}).get("threads")
    return config.replace(threads=threads) if not config.threads and threads else config
