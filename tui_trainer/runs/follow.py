"""Following a run: its event log replayed from the start, then tailed by sequence number.

    for event in follow(store, run_id, stop=stop):    # blocks between polls; run it off the UI thread
        ...

Every viewer reads the same log, so a run watched from its start and one attached an hour
later show the same thing. A run whose process dies without an ending gets RunInterrupted
appended by the liveness check, so a follower always sees the run end.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

from ..engine.events import TERMINAL_EVENTS, Event
from .store import RunStore

POLL_S = 0.05  # a new event reaches a viewer within this, plus the time to draw it
LIVENESS_EVERY_S = 2.0  # how often a followed run's process is checked for having died


def follow(store: RunStore, run_id: str, poll_s: float = POLL_S, stop: threading.Event | None = None,
           after: int = 0) -> Iterator[Event]:
    """Events of the run with seq > `after` until the log ends with an ending (or `stop` is set).

    Raises RunNotFound if the run does not exist or is deleted meanwhile.
    """
    run_id = store.resolve(run_id)
    seq, last = after, None
    if after:  # tailing from a seq: the event there says whether the log has already ended
        before = store.events(run_id, after=after - 1, limit=1)
        last = before[0][1] if before else None
    next_liveness = time.monotonic() + LIVENESS_EVERY_S
    while True:
        batch = store.events(run_id, after=seq)
        for seq, event in batch:
            last = event
            yield event
        if not batch:
            if isinstance(last, TERMINAL_EVENTS) and not store.get_run(run_id).state.active:
                return  # an ending with nothing after it, and no process about to resume the run
            if time.monotonic() >= next_liveness:
                next_liveness = time.monotonic() + LIVENESS_EVERY_S
                store.mark_interrupted()
                store.get_run(run_id)  # raises RunNotFound once the run is deleted
            if stop is not None:
                if stop.wait(poll_s):
                    return
            else:
                time.sleep(poll_s)
        elif stop is not None and stop.is_set():
            return
