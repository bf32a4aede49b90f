"""The app's full garbage collections wait for a moment without input, and never for long."""

from __future__ import annotations

import gc

from tui_trainer.ui.collector import LONGEST_WAIT_S, NEVER, QUIET_S, IdleCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def aged() -> None:
    """Something reached the oldest generation (Python counts young collections there)."""
    gc.collect(1)
    assert gc.get_count()[2] > 0


def test_a_full_collection_waits_for_a_quiet_moment_then_runs():
    clock = Clock()
    collector = IdleCollector(clock)
    before = gc.get_threshold()
    collector.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)  # Python makes no full one of its own
        aged()
        collector.input_seen()
        clock.now += QUIET_S / 2
        assert not collector.tick()  # keys are being pressed
        clock.now += QUIET_S
        assert collector.tick()
        assert gc.get_count()[2] == 0
        clock.now += QUIET_S * 5
        assert not collector.tick()  # nothing new to collect
    finally:
        collector.stop()
    assert gc.get_threshold() == before


def test_a_collection_that_waited_too_long_runs_even_while_keys_are_pressed():
    clock = Clock()
    collector = IdleCollector(clock)
    collector.start()
    try:
        aged()
        for _ in range(int(LONGEST_WAIT_S)):
            clock.now += 1
            collector.input_seen()
            if collector.tick():
                break
        assert clock.now - 100.0 >= LONGEST_WAIT_S
        assert gc.get_count()[2] == 0
    finally:
        collector.stop()
