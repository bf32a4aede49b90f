"""Textual messages that carry engine events and download progress from worker threads."""

from __future__ import annotations

from textual.message import Message

from ..engine.events import Event


class EngineEvent(Message):
    """One engine event, posted from the training thread (post_message never blocks it)."""

    def __init__(self, event: Event, viewer: object = None) -> None:
        super().__init__()
        self.event = event
        self.viewer = viewer  # which follow posted it: one started before the view changed is stale


class DownloadProgress(Message):
    def __init__(self, dataset: str, done: int, total: int | None, label: str) -> None:
        super().__init__()
        self.dataset, self.done, self.total, self.label = dataset, done, total, label


class DownloadFinished(Message):
    def __init__(self, dataset: str, error: str | None = None) -> None:
        super().__init__()
        self.dataset, self.error = dataset, error

