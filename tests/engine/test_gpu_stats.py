"""Live GPU readings through NVML, with a fake `pynvml`: read, mapped to CUDA's numbering, and never an exception."""

import time

import pytest

from tui_trainer.engine import devices
from tui_trainer.engine.devices import gpu_stats

from ..fake_pynvml import Card, FakeNvml, card, fake_cuda, install, without_pynvml


def test_a_card_is_read_and_formatted(monkeypatch):
    install(monkeypatch, [Card()], cuda=[0])
    [s] = gpu_stats()
    assert (s.index, s.cuda_index, s.name) == (0, 0, "NVIDIA H100 80GB HBM3")
    assert (s.utilization_pct, s.temperature_c, s.power_w, s.power_limit_w) == (87, 61, 312.0, 700.0)
    assert s.memory_total_bytes == int(79.2 * 2**30)
    assert (s.utilization, s.memory, s.temperature, s.power) == ("87%", "3.1/79.2 GiB", "61°C", "312/700 W")


def test_nvml_indices_are_mapped_to_cuda_indices_by_uuid(monkeypatch):
    # CUDA_VISIBLE_DEVICES=2,0: cuda:0 is NVML's card 2, cuda:1 its card 0, and card 1 is hidden
    cards = [card(0, util=10), card(1, util=20), card(2, util=30)]
    install(monkeypatch, cards, cuda=[2, 0])
    stats = gpu_stats()
    assert [(s.index, s.cuda_index, s.utilization_pct) for s in stats] == [(0, 1, 10), (1, None, 20), (2, 0, 30)]


def test_a_mig_slice_is_matched_by_its_cards_pci_address(monkeypatch):
    cards = [card(0), card(1)]
    install(monkeypatch, cards)
    fake_cuda(monkeypatch, cards, [1])
    cards[1].uuid = "MIG-aaaaaaaa-0000-0000-0000-000000000000"  # NVML's and CUDA's UUIDs now differ
    assert [s.cuda_index for s in gpu_stats()] == [None, 0]


def test_a_torch_without_device_ids_maps_only_when_every_card_is_visible(monkeypatch):
    cards = [card(0), card(1)]
    install(monkeypatch, cards)
    fake_cuda(monkeypatch, cards, [0, 1], with_ids=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [s.cuda_index for s in gpu_stats()] == [0, 1]
    monkeypatch.setattr(devices, "_nvml", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert [s.cuda_index for s in gpu_stats()] == [None, None]


def test_a_reading_the_card_does_not_offer_is_left_out(monkeypatch):
    install(monkeypatch, [Card(unsupported={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature"})], cuda=[0])
    [s] = gpu_stats()
    assert (s.power_w, s.temperature_c, s.utilization_pct) == (None, None, 87)
    assert (s.power, s.temperature, s.memory) == (None, None, "3.1/79.2 GiB")


def test_a_pynvml_without_a_call_leaves_that_reading_out(monkeypatch):
    install(monkeypatch, [Card()], cuda=[0])
    monkeypatch.delattr(FakeNvml, "nvmlDeviceGetTemperature")  # deprecated in nvidia-ml-py 13
    [s] = gpu_stats()
    assert (s.temperature_c, s.utilization_pct) == (None, 87)


@pytest.mark.parametrize("fail", ["nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex"])
def test_an_nvml_error_gives_no_readings(monkeypatch, fail):
    nvml = install(monkeypatch, [Card()], cuda=[0], fail=fail)
    assert gpu_stats() == []
    assert gpu_stats() == []
    assert nvml.calls["nvmlInit"] == 1  # a failed start is not tried again on every call


def test_no_pynvml_gives_no_readings(monkeypatch):
    without_pynvml(monkeypatch)
    assert gpu_stats() == []
    assert not devices.pynvml_installed()


def test_no_gpu_gives_no_readings(monkeypatch):
    install(monkeypatch, [], cuda=[])
    assert gpu_stats() == []


def test_nvml_and_torch_cuda_are_asked_once_and_a_call_is_cheap(monkeypatch):
    cards = [card(i) for i in range(8)]
    nvml = install(monkeypatch, cards)
    asked = fake_cuda(monkeypatch, cards, list(range(8)))
    gpu_stats()
    start = time.perf_counter()
    for _ in range(200):
        stats = gpu_stats()
    per_call = (time.perf_counter() - start) / 200
    assert len(stats) == 8 and stats[7].cuda_index == 7
    assert nvml.calls["nvmlInit"] == 1 and nvml.calls["nvmlDeviceGetName"] == 8
    assert asked["get_device_properties"] == 8  # once per card for the whole process, never per reading
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 8 * 201
    assert per_call < 0.005, f"{per_call * 1e6:.0f} µs a call for 8 cards"  # ~50 µs here; NVML adds its own


def test_a_forked_process_starts_nvml_again(monkeypatch):
    nvml = install(monkeypatch, [Card()], cuda=[0])
    gpu_stats()
    monkeypatch.setattr(devices.os, "getpid", lambda: -1)
    gpu_stats()
    assert nvml.calls["nvmlInit"] == 2
