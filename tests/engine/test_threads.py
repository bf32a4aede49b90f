import torch

from tui_trainer.engine.threads import fit_cpu_threads, free_cores


def test_a_busy_machine_gets_fewer_threads_never_none():
    assert free_cores(2, 0.1) == 2
    assert free_cores(2, 1.6) == 1
    assert free_cores(2, 7.0) == 1
    assert free_cores(8, 3.2) == 5
    assert free_cores(4, -1.0) == 4  # never more than the cores


def test_the_users_own_thread_count_is_kept(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr("os.getloadavg", lambda: (99.0, 99.0, 99.0))
    try:
        torch.set_num_threads(2)
        assert fit_cpu_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_load_picks_the_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.getloadavg", lambda: (1.7, 1.0, 1.0))
    try:
        torch.set_num_threads(2)
        assert fit_cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
