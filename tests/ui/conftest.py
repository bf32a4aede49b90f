import pytest

from ..fake_pynvml import without_pynvml


@pytest.fixture(autouse=True)
def no_live_gpu_readings(monkeypatch):
    """The screens show a card's live readings where NVML reads one: a test brings a fake or sees none, so that a
    GPU box with nvidia-ml-py draws what CI draws."""
    without_pynvml(monkeypatch)
