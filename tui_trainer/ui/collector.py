"""Python's full garbage collections, moved to moments when nobody is pressing keys.

A full collection stops the app for 20-60 ms (the screens' own objects: styles, strips, segments).
Left to Python, one lands in a screen or tab switch every few presses and takes it past 100 ms
(bench/screen_switch.py). Here Python makes only the young collections, and the full one waits for
a second without input: a person is reading then, not waiting. One that waits too long runs anyway,
so garbage cycles never pile up for long.
"""

from __future__ import annotations

import gc
import time

CHECK_EVERY_S = 2.0
QUIET_S = 1.0  # no key or click for this long: a good moment
LONGEST_WAIT_S = 30.0
NEVER = 1_000_000  # Python's gen-2 threshold: young collections before it considers a full one


class IdleCollector:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._last_input = self._last_full = clock()
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        """Python's own thresholds back (the app can end inside a longer-lived process: the tests)."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def input_seen(self) -> None:
        self._last_input = self._clock()

    def tick(self) -> bool:
        """Collect now if it is a good moment, or if one waited too long; True if it did."""
        now = self._clock()
        waited = now - self._last_full
        if gc.get_count()[2] == 0 and waited < LONGEST_WAIT_S:
            return False  # nothing has reached the oldest generation since the last one
        if now - self._last_input < QUIET_S and waited < LONGEST_WAIT_S:
            return False
        gc.collect()
        self._last_full = self._clock()
        return True
