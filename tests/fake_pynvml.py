"""A stand-in for nvidia-ml-py's `pynvml` module and for torch.cuda, so that GPU readings are tested on any machine.

`install(monkeypatch, cards, cuda=...)` puts a fake `pynvml` in sys.modules, makes torch.cuda see the cards listed in
`cuda` (NVML indices, in CUDA's order: what CUDA_VISIBLE_DEVICES=1,0 would give) and starts NVML afresh."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import torch

from tui_trainer.engine import devices

NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


@dataclass
class Card:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    bus: int = 0x19
    util: int = 87
    used: int = int(3.1 * 2**30)
    total: int = int(79.2 * 2**30)
    temperature: int = 61
    power_mw: int = 312_000
    limit_mw: int = 700_000
    unsupported: set[str] = field(default_factory=set)  # NVML calls that raise NotSupported on this card


def card(i: int, **kw) -> Card:
    return Card(uuid=f"GPU-{i:08x}-1111-2222-3333-444455556666", bus=0x19 + i, **kw)


class FakeNvml(types.ModuleType):
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(self, cards: list[Card], fail: str | None = None) -> None:
        super().__init__("pynvml")
        self.cards, self.fail = cards, fail
        self.calls: dict[str, int] = {}

    def _call(self, name: str, handle: Card | None = None) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name == self.fail or (handle is not None and name in handle.unsupported):
            raise NVMLError(f"{name}: Not Supported")

    def nvmlInit(self):
        self._call("nvmlInit")

    def nvmlDeviceGetCount(self):
        self._call("nvmlDeviceGetCount")
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, i):
        self._call("nvmlDeviceGetHandleByIndex")
        return self.cards[i]

    def nvmlDeviceGetName(self, h):
        self._call("nvmlDeviceGetName", h)
        return h.name.encode()  # nvidia-ml-py before 11.5 gave bytes

    def nvmlDeviceGetUUID(self, h):
        self._call("nvmlDeviceGetUUID", h)
        return h.uuid

    def nvmlDeviceGetPciInfo(self, h):
        self._call("nvmlDeviceGetPciInfo", h)
        return types.SimpleNamespace(domain=0, bus=h.bus, device=0)

    def nvmlDeviceGetUtilizationRates(self, h):
        self._call("nvmlDeviceGetUtilizationRates", h)
        return types.SimpleNamespace(gpu=h.util, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h):
        self._call("nvmlDeviceGetMemoryInfo", h)
        return types.SimpleNamespace(used=h.used, total=h.total, free=h.total - h.used)

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._call("nvmlDeviceGetTemperature", h)
        assert sensor == NVML_TEMPERATURE_GPU
        return h.temperature

    def nvmlDeviceGetPowerUsage(self, h):
        self._call("nvmlDeviceGetPowerUsage", h)
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        self._call("nvmlDeviceGetEnforcedPowerLimit", h)
        return h.limit_mw


class FakeUuid:
    """torch's _CUuuid: str() is the UUID without NVML's 'GPU-'."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def fake_cuda(monkeypatch, cards: list[Card], visible: list[int], with_ids: bool = True) -> dict[str, int]:
    """torch.cuda sees `visible` (NVML indices) as cuda:0, cuda:1...; returns how often it was asked for them."""
    asked = {"get_device_properties": 0}

    def properties(i):
        asked["get_device_properties"] += 1
        c = cards[visible[i]]
        ids = dict(uuid=FakeUuid(c.uuid.removeprefix("GPU-")), pci_domain_id=0, pci_bus_id=c.bus,
                   pci_device_id=0) if with_ids else {}
        return types.SimpleNamespace(name=c.name, total_memory=c.total, major=9, minor=0, **ids)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(visible))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(visible))
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    return asked


def install(monkeypatch, cards: list[Card], cuda: list[int] | None = None, fail: str | None = None) -> FakeNvml:
    nvml = FakeNvml(cards, fail)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(devices, "_nvml", None)  # NVML starts again, with this module
    if cuda is not None:
        fake_cuda(monkeypatch, cards, cuda)
    return nvml


def without_pynvml(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    monkeypatch.setattr(devices, "_nvml", None)
