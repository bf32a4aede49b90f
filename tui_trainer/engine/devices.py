"""Finding the devices this machine can train on and resolving a device name."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


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
    found.append(DeviceInfo("cpu", f"CPU ({torch.get_num_threads()} threads)", "cpu", cpu_memory_bytes()))
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
    return f"CPU ({torch.get_num_threads()} threads)"


def runtime_versions() -> dict[str, str | None]:
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "cpu_threads": str(torch.get_num_threads()),
    }
