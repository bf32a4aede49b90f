"""Thread-safe controls a UI or signal handler uses to steer a running loop.

The loop reads one plain attribute, `pending`, per batch; everything else
happens only when that flag is up, so steering costs the hot path nothing.
"""

from __future__ import annotations

import math
import threading


def check_lr(lr: float) -> float:
    """The learning rate as a float, or ValueError naming what is allowed."""
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and 0 < lr <= 10):
        raise ValueError(f"lr: got {lr!r}; must be a number greater than 0 and at most 10")
    return float(lr)


class TrainingControl:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop = False
        # why, when whoever stops the run knows more than "stopped by request" (a study's pruner)
        self.stop_reason = ""
        self._lr: float | None = None
        self._checkpoint = False
        self.pending = False

    def pause(self) -> None:
        with self._lock:
            self._running.clear()
            self.pending = True

    def unpause(self) -> None:
        with self._lock:
            self._running.set()
            self.pending = True

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._running.set()  # a paused loop must wake up to stop
            self.pending = True

    def set_lr(self, lr: float) -> None:
        lr = check_lr(lr)
        with self._lock:
            self._lr = lr
            self.pending = True

    def request_checkpoint(self) -> None:
        # Read by whoever saves checkpoints (the recorder), not by the loop, so no `pending` here.
        self._checkpoint = True

    def take_checkpoint_request(self) -> bool:
        with self._lock:
            asked, self._checkpoint = self._checkpoint, False
            return asked

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def take_lr(self) -> float | None:
        """The requested learning rate, once; None when nothing is asked."""
        with self._lock:
            lr, self._lr = self._lr, None
            return lr

    def settle(self) -> None:
        """Called before the loop reads the state, so a request arriving later raises `pending` again."""
        with self._lock:
            self.pending = False

    def wait_while_paused(self, timeout: float) -> bool:
        """Block up to `timeout` seconds while paused; True once running again."""
        return self._running.wait(timeout)
