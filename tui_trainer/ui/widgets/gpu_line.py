"""One line of live readings for the GPU a run trains on (or the setup's chosen device), from NVML."""

from __future__ import annotations

from textual import work
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget

from ...engine.devices import GpuStats, gpu_stats

READ_SECONDS = 1.0


def cuda_index(device: str | None) -> int | None:
    """cuda:N -> N, cuda -> 0 (torch's current device); anything else -> None."""
    if not device or device.split(":")[0] != "cuda":
        return None
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0 if not index else None


def gpu_line(stats: GpuStats, peak_mib: float | None = None, width: int = 80) -> str:
    """'GPU 0 87% · 3.1/79.2 GiB · 61°C · 312/700 W · run peak 412 MiB', shortened to `width` by leaving out
    power, then temperature, then the run's peak, then memory: one line, never wrapped."""
    peak = None if peak_mib is None else f"run peak {peak_mib:,.0f} MiB"
    # (text, rank): the lowest ranks are the last to go
    parts = [(stats.utilization, 0), (stats.memory, 1), (stats.temperature, 3), (stats.power, 4), (peak, 2)]
    parts = [(text, rank) for text, rank in parts if text]
    head = f"GPU {stats.cuda_index if stats.cuda_index is not None else stats.index}"
    while True:
        line = " · ".join([head + (f" {parts[0][0]}" if parts else "")] + [text for text, _ in parts[1:]])
        if len(line) <= width or not parts:
            return line[:width]
        parts.remove(max(parts, key=lambda p: p[1]))


class GpuLine(Widget):
    """Hidden, and with no timer, unless it follows a CUDA device whose card NVML reads; then it reads it about
    once a second, in a worker thread, never on the UI's."""

    DEFAULT_CSS = "GpuLine { height: 1; width: 100%; display: none; }"

    class Read(Message):
        def __init__(self, stats: list[GpuStats]) -> None:
            super().__init__()
            self.stats = stats

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.device: str | None = None  # the device followed
        self.index: int | None = None  # its CUDA index, while there are readings for it
        self.stats: GpuStats | None = None
        self.peak_mib: float | None = None
        self.reads = 0  # how many readings were asked for: tests check that nothing polls for nothing
        self._timer: Timer | None = None
        self._reading = False
        self._paused = False
        self._nothing_to_read = False  # no nvidia-ml-py, no driver or no GPU: that does not change in a process

    @property
    def polling(self) -> bool:
        return self._timer is not None

    @property
    def paused(self) -> bool:
        """Out of sight: no reading is asked for until resume()."""
        return self._paused

    def follow(self, device: str | None) -> None:
        """Show the card behind `device` (cuda:N), or nothing for any other device."""
        if device == self.device or not self.is_attached:  # the same, or a screen being taken down
            return
        self.device = device
        index = None if self._nothing_to_read else cuda_index(device)
        self.index, self.stats = index, None
        self._stop()
        if index is not None:
            self._timer = self.set_interval(READ_SECONDS, self._tick, pause=self._paused)
            if not self._paused:
                self._tick()

    def set_peak(self, peak_mib: float | None) -> None:
        if peak_mib != self.peak_mib:
            self.peak_mib = peak_mib
            if self.stats:
                self.refresh()

    def pause(self) -> None:
        """The screen is out of sight: no readings until resume()."""
        self._paused = True
        if self._timer:
            self._timer.pause()

    def resume(self) -> None:
        self._paused = False
        if self._timer:
            self._timer.resume()
            self._tick()

    def _stop(self) -> None:
        if self._timer:
            self._timer.stop()
            self._timer = None
        self.display = False

    def _tick(self) -> None:
        # a slow driver: never more than one reading in flight; paused: a tick already due when the screen went
        # out of sight reads nothing
        if self._reading or self._paused:
            return
        self._reading = True
        self.reads += 1
        self._read()

    @work(thread=True, exit_on_error=False, group="gpu-stats")
    def _read(self) -> None:
        stats: list[GpuStats] = []
        try:
            stats = gpu_stats()
        finally:
            self.post_message(self.Read(stats))

    def on_gpu_line_read(self, message: Read) -> None:
        message.stop()
        self._reading = False
        if self.index is None:  # followed nothing while the reading was out
            return
        if not message.stats:
            self._nothing_to_read = True
        self.stats = next((s for s in message.stats if s.cuda_index == self.index), None)
        if self.stats is None:  # no readings, or none for this card: nothing to show, nothing to poll for
            self.index = None  # until another device is followed
            self._stop()
            return
        self.display = True
        self.refresh()

    def render(self) -> Content:
        if not self.stats:
            return Content("")
        return Content(gpu_line(self.stats, self.peak_mib, self.content_size.width or 80))
