"""How `scratch-tui train` shows engine events: lines for people, JSON lines for scripts."""

from __future__ import annotations

import json
import time
from typing import TextIO

from ..engine.events import BatchProgress, EvaluationEnded, Event, RunFailed, RunInterrupted, RunStarted, RunStopped
from ..engine.user_text import printable
from ..format import clock
from ..runs.worker import LogLines

LINE_WIDTH = 79  # the live line stays inside an 80-column terminal (the last column would wrap on some)
BAR_WIDTH = 20


class TerminalPrinter(LogLines):
    """A background run's log lines on stdout; a live progress line on stderr when it is a terminal, and the
    ending of a run that failed there too."""

    def __init__(self, out: TextIO, err: TextIO):
        super().__init__(out)
        self.err = err
        self.live = err.isatty()
        self._progress_shown = False
        self._last_download_draw = 0.0
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

    def progress_line(self, event: BatchProgress) -> str:
        """Epoch 3/15 [#####-----] 40/94  loss 0.4321  acc 85.12%  12,345 samples/s  ETA 1:23"""
        tail = (f" {event.batch}/{event.batches}  loss {event.loss:.4f}  acc {event.acc:.2f}%  "
                f"{event.samples_per_s:,.0f} samples/s")
        if (eta := self.view.eta) is not None:
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
            self._progress(f"{label}  {size}")
        elif total and done == total:
            print(f"{label}: done ({size})", file=self.err)

    def handle(self, event: Event) -> None:
        lines = self.lines(event)
        if isinstance(event, BatchProgress):
            self._progress(self.progress_line(event))
            return
        self._clear_progress()
        if isinstance(event, RunStarted):
            self._bar_width = None
        elif isinstance(event, (RunInterrupted, RunFailed)):
            what = "interrupted" if isinstance(event, RunInterrupted) else "failed"
            print(printable(f"scratch-tui train: run {what}: {event.message}"), file=self.err)
            lines = []
        elif isinstance(event, RunStopped) and self.view.started and self.view.started.run_id:
            lines.append(f"Continue it with: scratch-tui train --resume {self.view.started.run_id}")
        for line in lines:
            print(printable(line), file=self.out)  # a run's name is the user's: its escapes shown, not obeyed
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
