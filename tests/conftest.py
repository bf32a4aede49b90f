import os
import shutil

import pytest
import torch

from tui_trainer.engine.data import load_raw, prepare


@pytest.fixture(scope="session")
def mini_raw():
    return load_raw("fashion-mnist-mini")


@pytest.fixture(scope="session")
def mini_data(mini_raw):
    """The bundled set on the CPU, split as a seed-0 config would split it."""
    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0)


@pytest.fixture(scope="session")
def small_data(mini_raw):
    """3,000 training images: enough to learn, quick enough for many runs."""
    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=3000)


@pytest.fixture(scope="session")
def built_store(tmp_path_factory):
    """`built_store(name, build, folder)`: a run store at `folder`, a copy of one that `build(store)` filled once per
    test process. Training the same runs again for every test that only reads or edits them cost seconds each; a
    store keeps its paths relative to its folder, so a copy is a store of its own."""
    from tui_trainer.runs.store import RunStore

    built = {}

    def copy(name, build, folder):
        if name not in built:
            built[name] = tmp_path_factory.mktemp(f"built-{name}") / "runs"
            with RunStore(built[name]) as store:
                build(store)
        shutil.copytree(built[name], folder)
        return RunStore(folder)

    return copy


@pytest.fixture(autouse=True)
def runs_home(tmp_path_factory, monkeypatch):
    """Every test records its runs in a folder of its own, never in the user's data dir."""
    home = tmp_path_factory.mktemp("runs")
    monkeypatch.setenv("SCRATCH_TUI_HOME", str(home))
    return home


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one (bench/gpu_check.sh runs them)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: half again as many workers as cores. Much of the suite waits on processes it starts (runs,
    queue runners, the app in tmux), and a third worker fills those waits: 4:46 against 5:06 with one worker
    a core, and no better with two (2-core VM, 2026-12-07)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, round(1.5 * cores))
