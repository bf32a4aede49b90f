"""Training in a child process: `scratch-tui train --jsonl` read back as events, steered over stdin.

The app runs its training this way so the loop has an interpreter (and a GIL) of its
own: the UI stays responsive and the run keeps its full speed.

    run = ChildRun.start(config)
    for event in run:          # blocks between lines; iterate off the UI thread
        ...
    run.pause(); run.set_lr(0.01); run.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from ..engine.config import TrainConfig
from ..engine.control import check_lr
from ..engine.events import TERMINAL_EVENTS, Event, RunFailed, RunPaused, RunResumed, event_from_dict


class ChildRun:
    def __init__(self, args: list[str], cleanup: Path | None = None) -> None:
        self._cleanup = cleanup
        self._stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child can never block on it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui_trainer", "train", "--jsonl", "--control-stdin", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._paused = False

    @classmethod
    def start(cls, config: TrainConfig, runs_dir: str | Path | None = None) -> "ChildRun":
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
            fh.write(config.to_toml())
        return cls(["--config", fh.name, *_runs_dir(runs_dir)], cleanup=Path(fh.name))

    @classmethod
    def start_resumed(cls, run_id: str, epochs: int | None = None,
                      runs_dir: str | Path | None = None) -> "ChildRun":
        return cls(["--resume", run_id, *(["--epochs", str(epochs)] if epochs else []), *_runs_dir(runs_dir)])

    def __iter__(self) -> Iterator[Event]:
        last: Event | None = None
        try:
            for line in self.process.stdout:
                try:
                    event = event_from_dict(json.loads(line))
                except ValueError:
                    continue  # not an event line
                if isinstance(event, (RunPaused, RunResumed)):
                    self._paused = isinstance(event, RunPaused)
                last = event
                yield event
            code = self.process.wait()
        finally:
            if self._cleanup:
                self._cleanup.unlink(missing_ok=True)
        if not isinstance(last, TERMINAL_EVENTS):
            self._stderr.seek(0)
            lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
            message = lines[-1] if lines else f"the training process ended with exit code {code}"
            yield RunFailed(message=message.removeprefix("scratch-tui train: error: "))

    # -- the control interface the app uses for every run -----------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            pass  # the child has ended; its last events say how

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def toggle_pause(self) -> None:
        self._send("resume" if self._paused else "pause")

    def stop(self) -> None:
        self._send("stop")

    def set_lr(self, lr: float) -> None:
        self._send(f"set_lr {check_lr(lr)!r}")

    def request_checkpoint(self) -> None:
        self._send("checkpoint")

    def close(self) -> None:
        """Leaving: closing stdin makes the child stop cleanly, with a checkpoint."""
        try:
            self.process.stdin.close()
        except OSError:
            pass


def _runs_dir(runs_dir: str | Path | None) -> list[str]:
    return ["--runs-dir", str(runs_dir)] if runs_dir else []
