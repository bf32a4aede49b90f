"""The monitored validation metric across epochs: the best so far, and how long since it improved.

Early stopping, restore_best and the plateau schedule all read one `Monitor`, as Keras's
EarlyStopping and ReduceLROnPlateau each keep their own `best` and `wait`. Its state is plain
numbers, so a checkpoint carries it and a resumed run decides exactly as an uninterrupted one.
Every DDP rank computes the same validation metrics, so every rank decides the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Monitor:
    metric: str  # val_loss (lower is better) or val_acc (higher is better)
    best: float | None = None
    best_epoch: int = 0
    stale: int = 0  # epochs since the best one: early stopping's count
    plateau_wait: int = 0  # epochs since the best one or the last lr cut: the plateau schedule's count

    def update(self, epoch: int, val_loss: float | None, val_acc: float | None) -> bool:
        """Take an epoch's validation metrics; True when it is the best so far (strictly, as Keras's min_delta 0)."""
        value = val_loss if self.metric == "val_loss" else val_acc
        if value is None:  # no validation split: nothing to watch (the config refuses asking for it)
            return False
        better = self.best is None or (value < self.best if self.metric == "val_loss" else value > self.best)
        if better:
            self.best, self.best_epoch, self.stale, self.plateau_wait = value, epoch, 0, 0
        else:
            self.stale += 1
            self.plateau_wait += 1
        return better

    def exhausted(self, patience: int) -> bool:
        """Whether early stopping with this patience (0: off) calls for a stop."""
        return patience > 0 and self.stale >= patience

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, metric: str, state: dict[str, Any] | None) -> "Monitor":
        """A monitor continued from `state()`; a fresh one for a checkpoint written before monitors (or for
        another metric, which a resume cannot change, but a caller might)."""
        if not state or state.get("metric") != metric:
            return cls(metric)
        best = state["best"]
        return cls(metric, None if best is None else float(best), int(state["best_epoch"]), int(state["stale"]),
                   int(state["plateau_wait"]))
