"""How `scratch-tui train` shows engine events: lines for people, JSON lines for scripts."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from ..engine.events import (BatchProgress, EpochEnded, EvaluationEnded, Event, RunFailed, RunFinished,
                             RunInterrupted, RunPaused, RunResumed, RunStarted, RunStopped)
from ..format import clock, describe_steering, format_epoch, format_test

LINE_WIDTH = 79  # the live line stays inside an 80-column terminal (the last column would wrap on some)
BAR_WIDTH = 20


class TerminalPrinter:
    """Epoch lines on stdout; a live progress line on stderr when it is a terminal."""

    def __init__(self, out: TextIO, err: TextIO):
        self.out, self.err = out, err
        self.live = err.isatty()
        self._progress_shown = False
        self._last_download_draw = 0.0
        self._started: RunStarted | None = None
        self._bar_width: int | None = None  # chosen on a run's first progress line, then kept: no jitter

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._progress_shown = False

    def _progress(self, text: str) -> None:
        if self.live:
            self.err.write("\r\033[K" + text)
            self.err.flush()
            self._progress_shown = True

    def eta(self, event: BatchProgress) -> float | None:
        """Training seconds left in the whole run at its own pace (samples/s leaves pauses out)."""
        if self._started is None or event.samples_per_s <= 0:
            return None
        train_size, batch_size = self._started.train_size, self._started.config.batch_size
        left_in_epoch = train_size - min(event.batch * batch_size, train_size)
        return (left_in_epoch + (event.epochs - event.epoch) * train_size) / event.samples_per_s

    def progress_line(self, event: BatchProgress) -> str:
        """Epoch 3/15 [#####-----] 40/94  loss 0.4321  acc 85.12%  12,345 samples/s  ETA 1:23"""
        tail = (f" {event.batch}/{event.batches}  loss {event.loss:.4f}  acc {event.acc:.2f}%  "
                f"{event.samples_per_s:,.0f} samples/s")
        if (eta := self.eta(event)) is not None:
            tail += f"  ETA {clock(eta)}"
        head = f"Epoch {event.epoch}/{event.epochs}"
        if self._bar_width is None:  # the bar gives way first; one column spare for a number that grows
            self._bar_width = min(BAR_WIDTH, LINE_WIDTH - 1 - len(head) - len(tail) - 3)
        width = self._bar_width
        if width < 5:
            return head + tail
        filled = int(width * event.batch / event.batches)
        return f"{head} [{'#' * filled}{'-' * (width - filled)}]{tail}"

    def download_progress(self, done: int, total: int | None, label: str) -> None:
        now = time.monotonic()
        if now - self._last_download_draw < 0.1 and done != total:
            return
        self._last_download_draw = now
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        if self.live:
            self._progress(f"Downloading {label}  {size}")
        elif total and done == total:
            print(f"Downloaded {label} ({size})", file=self.err)

    def handle(self, event: Event) -> None:
        if isinstance(event, BatchProgress):
            self._progress(self.progress_line(event))
            return
        self._clear_progress()
        if isinstance(event, RunStarted):
            self._started, self._bar_width = event, None
            line = (f"Training {event.config.model} ({event.parameters:,} parameters) on {event.dataset_title}: "
                    f"{event.train_size:,} train / {event.val_size:,} val / {event.test_size:,} test images, "
                    f"device {event.where()}")
            if event.run_id:
                line += f"; run {event.run_id}"
            if event.resumed_from_step:
                line += f" resumed after epoch {event.resumed_from_epoch}, step {event.resumed_from_step}"
            print(line, file=self.out)
        elif isinstance(event, EpochEnded):
            print(format_epoch(event), file=self.out)
        elif isinstance(event, EvaluationEnded):
            print(format_test(event), file=self.out)
        elif isinstance(event, RunStopped):
            print(f"Stopped after {event.epochs_done} epoch(s), {event.seconds:.1f}s.", file=self.out)
            if self._started and self._started.run_id:
                print(f"Continue it with: scratch-tui train --resume {self._started.run_id}", file=self.out)
        elif isinstance(event, RunInterrupted):
            print(f"scratch-tui train: run interrupted: {event.message}", file=self.err)
        elif isinstance(event, RunFailed):
            print(f"scratch-tui train: run failed: {event.message}", file=self.err)
        elif isinstance(event, RunFinished):
            print(f"Finished {event.epochs_done} epochs in {event.seconds:.1f}s.", file=self.out)
        elif (line := describe_steering(event)) is not None:
            print(line, file=self.out)
        elif isinstance(event, (RunPaused, RunResumed)):
            print("Paused." if isinstance(event, RunPaused) else "Resumed.", file=self.out)
        self.out.flush()


class JsonLinesPrinter:
    """One JSON object per event per line. Sample images are left out to keep lines small: the run's
    log in the store keeps them."""

    def __init__(self, out: TextIO):
        self.out = out

    def download_progress(self, done: int, total: int | None, label: str) -> None:
        pass  # stdout carries events only; a download is announced by the run that follows

    def handle(self, event: Event) -> None:
        data = event.to_dict()
        if isinstance(event, EvaluationEnded):
            for sample in data["samples"]:
                sample.pop("image")
        self.out.write(json.dumps(data) + "\n")
        self.out.flush()
