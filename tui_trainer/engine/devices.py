"""Finding the devices this machine can train on and resolving a device name."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch

from .wording import counted


class DeviceError(ValueError):
    pass


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # what --device takes: cpu, cuda:0, mps
    label: str  # human name: "NVIDIA H100 80GB HBM3", "CPU (8 threads)"
    kind: str  # cpu, cuda, mps
    memory_bytes: int | None = None
    compute_capability: str | None = None

    def describe(self) -> str:
        parts = [self.label]
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / 2**30:.1f} GiB")
        if self.compute_capability:
            parts.append(f"compute {self.compute_capability}")
        return ", ".join(parts)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def cpu_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def list_devices() -> list[DeviceInfo]:
    found: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(DeviceInfo(f"cuda:{i}", props.name, "cuda", props.total_memory, f"{props.major}.{props.minor}"))
    if _mps_available():
        found.append(DeviceInfo("mps", "Apple GPU (Metal)", "mps"))
    found.append(DeviceInfo("cpu", f"CPU ({counted(torch.get_num_threads(), 'thread')})", "cpu", cpu_memory_bytes()))
    return found


def resolve_device(name: str) -> torch.device:
    """Turn a --device value into a torch.device, or raise DeviceError saying what is available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    available = ", ".join(["auto"] + [d.name for d in list_devices()])
    if name == "mps":
        if not _mps_available():
            raise DeviceError(f"device: mps (Apple GPU) is not available here; choose one of {available}")
        return torch.device("mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device: {name} is not available (torch {torch.__version__} sees no CUDA GPU); choose one of {available}"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device: {name} does not exist; choose one of {available}")
        return torch.device("cuda", index)
    raise DeviceError(f"device: unknown {name!r}; choose one of {available}")


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (Metal)"
    return f"CPU ({counted(torch.get_num_threads(), 'thread')})"


def runtime_versions() -> dict[str, str | None]:
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "cpu_threads": str(torch.get_num_threads()),
    }


# -- live GPU readings, through NVML (nvidia-ml-py, an optional extra) ------------------------------------------

GIB = 2**30


@dataclass(frozen=True)
class GpuStats:
    """One GPU as NVML reads it now; a reading the card does not offer is None."""

    index: int  # NVML's (and nvidia-smi's) index, which is not always CUDA's
    name: str
    utilization_pct: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    cuda_index: int | None = None  # cuda:N for the same card in this process; None when CUDA does not see it

    @property
    def utilization(self) -> str | None:
        return None if self.utilization_pct is None else f"{self.utilization_pct}%"

    @property
    def memory(self) -> str | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return f"{self.memory_used_bytes / GIB:.1f}/{self.memory_total_bytes / GIB:.1f} GiB"

    @property
    def temperature(self) -> str | None:
        return None if self.temperature_c is None else f"{self.temperature_c}°C"

    @property
    def power(self) -> str | None:
        if self.power_w is None:
            return None
        return f"{self.power_w:.0f}/{self.power_limit_w:.0f} W" if self.power_limit_w else f"{self.power_w:.0f} W"


def _import_pynvml():
    try:
        import pynvml  # nvidia-ml-py; optional: `pip install 'scratch-tui[gpu]'`
    except Exception:  # not installed, or an installation that fails to import: no readings either way
        return None
    return pynvml


def pynvml_installed() -> bool:
    return _import_pynvml() is not None


@dataclass(frozen=True)
class _NvmlDevice:
    index: int
    handle: object
    name: str
    cuda_index: int | None


@dataclass(frozen=True)
class _Nvml:
    """NVML as this process initialised it: the module and the devices, found once."""

    pid: int
    module: object | None  # None: no pynvml, no driver, or NVML failed to start; no readings in this process
    devices: tuple[_NvmlDevice, ...] = ()


_nvml: _Nvml | None = None
_nvml_lock = threading.Lock()


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _uuid_key(uuid: object) -> str:
    # NVML says "GPU-5c1f...", torch's str(props.uuid) says "5c1f..."
    text = _text(uuid).strip().lower()
    return text.removeprefix("gpu-")


def _cuda_indices(nv, handles: list) -> dict[int, int]:
    """NVML index -> this process's CUDA index for the same card.

    They differ when CUDA_VISIBLE_DEVICES hides or reorders cards, and even without it, since CUDA numbers the
    fastest card first and NVML in PCI order. torch's device properties carry the card's UUID and, in newer
    releases (2.14 has both), its PCI domain/bus/device; NVML reports both, so the pair is matched on them. Asked
    once per process: torch.cuda is never touched per reading."""
    try:
        if not torch.cuda.is_available():
            return {}
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken CUDA install: its cards are not ours to name
        return {}
    by_uuid = {_uuid_key(p.uuid): i for i, p in enumerate(props) if getattr(p, "uuid", None) is not None}
    by_pci = {(p.pci_domain_id, p.pci_bus_id, p.pci_device_id): i for i, p in enumerate(props)
              if all(hasattr(p, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id"))}
    found: dict[int, int] = {}
    for index, handle in enumerate(handles):
        cuda = None
        try:
            cuda = by_uuid.get(_uuid_key(nv.nvmlDeviceGetUUID(handle)))
        except Exception:
            pass
        if cuda is None and by_pci:  # a MIG slice has a UUID of its own: its card's PCI address still matches
            try:
                pci = nv.nvmlDeviceGetPciInfo(handle)
                cuda = by_pci.get((pci.domain, pci.bus, pci.device))
            except Exception:
                pass
        if cuda is not None:
            found[index] = cuda
    if not by_uuid and not by_pci and "CUDA_VISIBLE_DEVICES" not in os.environ and len(props) == len(handles):
        # a torch without either: with every card visible the two orders agree on a box of one kind of card
        found = {i: i for i in range(len(handles))}
    return found


def _start_nvml() -> _Nvml:
    nv = _import_pynvml()
    if nv is None:
        return _Nvml(os.getpid(), None)
    try:
        nv.nvmlInit()  # never shut down: the driver frees it with the process, and a reader may be mid-call
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        names = [_text(nv.nvmlDeviceGetName(h)) for h in handles]
    except Exception:  # NVMLError: no driver, no permission, a lost card
        return _Nvml(os.getpid(), None)
    cuda = _cuda_indices(nv, handles)
    devices = tuple(_NvmlDevice(i, h, n, cuda.get(i)) for i, (h, n) in enumerate(zip(handles, names)))
    return _Nvml(os.getpid(), nv, devices)


def _session() -> _Nvml:
    global _nvml
    with _nvml_lock:
        if _nvml is None or _nvml.pid != os.getpid():  # a forked child starts NVML again
            _nvml = _start_nvml()
        return _nvml


def _reading(nv, name: str, *args):
    try:
        return getattr(nv, name)(*args)
    except Exception:  # NotSupported on this card, the card went away, or a pynvml without the call: no reading
        return None


def gpu_stats() -> list[GpuStats]:
    """Every GPU's live readings, or [] without nvidia-ml-py, a driver or a GPU; never raises.

    NVML starts, and its cards are found and matched to CUDA's, once per process; each call then makes five NVML
    queries a card and no torch call (about 5 µs a card on the Python side, measured with a fake), so a view may
    call it every second, from a worker thread, while the driver does the rest."""
    nvml = _session()
    nv = nvml.module
    if nv is None:
        return []
    stats = []
    for d in nvml.devices:
        util = _reading(nv, "nvmlDeviceGetUtilizationRates", d.handle)
        memory = _reading(nv, "nvmlDeviceGetMemoryInfo", d.handle)
        temperature = _reading(nv, "nvmlDeviceGetTemperature", d.handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
        power = _reading(nv, "nvmlDeviceGetPowerUsage", d.handle)  # milliwatts
        limit = _reading(nv, "nvmlDeviceGetEnforcedPowerLimit", d.handle)
        stats.append(GpuStats(
            index=d.index, name=d.name, cuda_index=d.cuda_index,
            utilization_pct=None if util is None else int(util.gpu),
            memory_used_bytes=None if memory is None else int(memory.used),
            memory_total_bytes=None if memory is None else int(memory.total),
            temperature_c=None if temperature is None else int(temperature),
            power_w=None if power is None else power / 1000, power_limit_w=None if limit is None else limit / 1000,
        ))
    return stats
