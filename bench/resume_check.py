"""Durability on a device: stop part-way, resume from the checkpoint, compare with an uninterrupted run.

    python bench/resume_check.py --device cuda

Prints, per model, whether epochs and weights match bit for bit (and how far apart they are
if not), plus what a checkpoint costs. On CUDA the CNN is not reproducible even without a
resume (cuDNN's default kernels are not deterministic); --deterministic asks torch for
deterministic kernels, and then the resumed CNN matches bit for bit too.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tui_trainer.engine.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from tui_trainer.engine.config import TrainConfig  # noqa: E402
from tui_trainer.engine.events import BatchProgress, CheckpointSaved, EpochEnded  # noqa: E402
from tui_trainer.engine.loop import TrainingRun  # noqa: E402
from tui_trainer.runs.recording import recorded  # noqa: E402
from tui_trainer.runs.store import RunStore  # noqa: E402
from tui_trainer.runs.worker import build_run  # noqa: E402


def epochs_of(events):
    return [(e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr, e.step)
            for e in events if isinstance(e, EpochEnded)]


def check(config: TrainConfig, root: Path) -> None:
    straight = TrainingRun(config, progress_seconds=0)
    expected = epochs_of(straight.events())

    store = RunStore(root)
    first = TrainingRun(config, progress_seconds=0)
    before = []
    for event in recorded(first, store):
        before.append(event)
        if isinstance(event, BatchProgress) and event.epoch == 2:
            first.control.stop()  # part-way through epoch 2
    second = build_run(store, first.run_id)
    got = epochs_of(before) + epochs_of(recorded(second, store))

    a, b = straight.model.state_dict(), second.model.state_dict()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    exact = got == expected and worst == 0.0
    loss_gap = max(abs(x[1] - y[1]) for x, y in zip(got, expected))
    stop = [e for e in before if isinstance(e, CheckpointSaved)][-1]
    print(f"{config.model:<14} {config.device}: stopped at step {stop.step} ({stop.reason}), resumed to the end: "
          f"exact={exact}, max |weight diff| {worst:.3g}, max |train loss diff| {loss_gap:.3g}")

    record = store.get_run(first.run_id)
    started = time.perf_counter()
    for _ in range(5):
        save_checkpoint(root / "timing.pt", second)
    if second.device.type == "cuda":
        torch.cuda.synchronize()
    took = (time.perf_counter() - started) / 5
    size = (root / "timing.pt").stat().st_size
    loaded = load_checkpoint(record.last_checkpoint)
    print(f"{'':<14} checkpoint {size / 1e6:.2f} MB, {1000 * took:.1f} ms to write; status {record.status}, "
          f"segment {record.segment}, last saved at epoch {loaded.epoch} step {loaded.step}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-train-samples", type=int, default=5000, help="at least 2,000, so epoch 2 reports")
    parser.add_argument("--models", default="scratch-mlp,cnn")
    parser.add_argument("--deterministic", action="store_true", help="deterministic cuDNN and cuBLAS kernels")
    args = parser.parse_args()
    if args.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses otherwise
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    root = Path(tempfile.mkdtemp(prefix="resume-check-"))
    try:
        for model in args.models.split(","):
            config = TrainConfig(model=model, epochs=3, device=args.device, max_train_samples=args.max_train_samples,
                                 augment="flip")
            check(config, root / model)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
