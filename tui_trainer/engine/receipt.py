"""What a run trained with, beyond its config: the receipt its RunStarted carries.

    receipt(device) -> {"versions": {...}, "machine": {...}, "numerics": {...}}

Gathered here, once, when a run starts, so that `runs show` can say it, `runs show --diff` can name what two runs
did not share, and `runs verify` can say what differs between the record and the machine it runs on now. Every
value is a plain string, number, bool or None (None: it does not apply, as a GPU's driver on the CPU).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch


# the packages whose versions change what a run computes or how it is shown; read from their metadata, so that
# nothing here imports them (the engine imports no Textual)
PACKAGES = ("scratch-tui", "torch", "torchvision", "numpy", "textual")


def receipt(device: torch.device) -> dict[str, dict[str, Any]]:
    """The versions, the machine and the numeric flags in force in this process, training on `device`."""
    return {"versions": versions(device), "machine": machine(device), "numerics": numerics()}


def versions(device: torch.device) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # this package run from a source tree that was never installed
            found[package] = "unknown"
    found["torch"] = torch.__version__  # the build's own word (+cu128, +cpu), which metadata may leave out
    cuda = device.type == "cuda"
    found["cuda"] = torch.version.cuda if cuda else None
    found["cudnn"] = str(torch.backends.cudnn.version()) if cuda and torch.backends.cudnn.is_available() else None
    return found


def machine(device: torch.device) -> dict[str, Any]:
    cuda = device.type == "cuda"
    # the threads it computes with are the run's own field (RunStarted.threads); these are the cores there were
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(device) if cuda else None,
            "gpu_driver": gpu_driver() if cuda else None, "platform": f"{sys.platform} {platform.machine()}"}


def numerics() -> dict[str, Any]:
    """The switches that decide which kernels run and at what precision."""
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision()}


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else what Python's platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_driver() -> str | None:
    """The NVIDIA driver's version through NVML (the `gpu` extra); None where it cannot be read."""
    from .devices import _import_pynvml

    nv = _import_pynvml()
    if nv is None:
        return None
    try:
        nv.nvmlInit()
        try:
            value = nv.nvmlSystemGetDriverVersion()
        finally:
            nv.nvmlShutdown()
    except Exception:  # no driver, or NVML refuses: unknown, not a failed run
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
