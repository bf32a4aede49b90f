"""Evaluating a recorded run from one of its checkpoints: `scratch-tui eval` and the app share this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..engine.events import EvaluationEnded
from .store import RunRecord

CHECKPOINTS = ("best", "last")


class NoCheckpoint(LookupError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class CheckpointEvaluation:
    result: EvaluationEnded
    which: str  # best or last: the one actually used
    where: str  # "epoch 3" or "epoch 3, step 250"
    device: str
    dataset_title: str

    def describe(self, run_id: str) -> str:
        return f"run {run_id}, {self.which} checkpoint ({self.where})"


def checkpoint_path(record: RunRecord, which: str = "best") -> tuple[str, str]:
    """(best or last, path) of the checkpoint to evaluate: best when asked and there is one, else last."""
    if which == "best" and record.best_checkpoint:
        return "best", record.best_checkpoint
    if record.last_checkpoint:
        return "last", record.last_checkpoint
    raise NoCheckpoint(f"run {record.id} has no checkpoint to evaluate (it saves one at each epoch end)")


def evaluate_checkpoint(record: RunRecord, which: str = "best", device: str | None = None,
                        download_progress=None) -> CheckpointEvaluation:
    """Load the checkpoint and evaluate it on the test set. Raises NoCheckpoint, CheckpointError,
    ConfigError, DeviceError or DatasetUnavailable, each with a message that says what to do."""
    from ..engine.checkpoints import load_checkpoint
    from ..engine.evaluate import evaluate
    from ..engine.loop import TrainingRun

    used, path = checkpoint_path(record, which)
    checkpoint = load_checkpoint(path, run_id=record.id, config=record.train_config())
    run = TrainingRun.from_checkpoint(checkpoint, device=device, download_progress=download_progress)
    run.setup()
    data = run.data
    result = evaluate(run.model, data.test_x, data.test_y, data.classes, data.test_images)
    where = f"epoch {checkpoint.epoch}" + (f", step {checkpoint.step}" if checkpoint.mid_epoch else "")
    return CheckpointEvaluation(result, used, f"{where}, {Path(path).name}", str(run.device), data.spec.title)
