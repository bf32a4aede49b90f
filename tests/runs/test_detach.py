"""`scratch-tui train --detach`: a background run that outlives its terminal, followed through the store."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from tui_trainer import cli
from tui_trainer.runs.store import RunStore

QUICK = ["--max-train-samples", "1000", "--device", "cpu"]


def detach(runs_home, *args):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--detach", *QUICK, *args,
                             "--runs-dir", str(runs_home)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = re.match(r"Started run ([0-9a-f]{8}) in the background \(pid (\d+)\)", result.stdout)
    assert found, result.stdout
    return found.group(1), int(found.group(2)), time.monotonic() - started


def wait_for(store, run_id, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition(record := store.get_run(run_id)):
        assert time.monotonic() < deadline, f"timed out; run is {record.status}: {record.message}"
        time.sleep(0.1)
    return record


def test_a_detached_run_trains_to_the_end_on_its_own(runs_home):
    run_id, pid, _ = detach(runs_home, "--epochs", "2")
    store = RunStore(runs_home)
    record = store.get_run(run_id)
    assert record.pid == pid  # the child's, not the parent's that has already exited
    assert record.status == "running" and os.getsid(pid) == pid  # its own session: no terminal to hang up
    os.kill(pid, signal.SIGHUP)  # as if the SSH session dropped: it must carry on

    record = wait_for(store, run_id, lambda r: r.status != "running")
    assert (record.status, record.epochs_done, record.message) == ("finished", 2, "")
    assert [e["epoch"] for e in store.epochs(run_id)] == [1, 2]
    evaluation = store.evaluation(run_id)
    assert evaluation.test_acc == record.test_acc and len(evaluation.confusion) == 10
    assert len(evaluation.samples[0].image[0]) == 28
    assert os.path.exists(record.last_checkpoint) and os.path.exists(record.best_checkpoint)
    log = store.log_path(run_id).read_text()
    assert "Epoch 2/2" in log and f"; run {run_id}" in log and "Traceback" not in log


def test_a_detached_run_is_stopped_and_resumed_through_the_store(runs_home, capsys):
    run_id, pid, _ = detach(runs_home, "--epochs", "500")
    store = RunStore(runs_home)
    wait_for(store, run_id, lambda r: r.epochs_done >= 1)
    assert cli.main(["runs", "control", run_id, "stop", "--runs-dir", str(runs_home)]) == 0
    stopped = wait_for(store, run_id, lambda r: r.status != "running", timeout=30)
    assert stopped.status == "stopped" and stopped.last_checkpoint

    more = str(stopped.epochs_done + 1)
    code = cli.main(["train", "--resume", run_id, "--epochs", more, "--detach", "--runs-dir", str(runs_home)])
    assert code == 0 and f"Started run {run_id} in the background" in capsys.readouterr().out
    record = wait_for(store, run_id, lambda r: r.status == "finished" or r.segment == 2 and r.status != "running")
    assert (record.status, record.segment, record.epochs_done) == ("finished", 2, int(more))
    assert [e["epoch"] for e in store.epochs(run_id)] == list(range(1, int(more) + 1))


def test_a_reader_that_goes_away_stops_the_run_cleanly(runs_home):
    # `scratch-tui train --jsonl | head -1`: the run must end recorded and checkpointed, without a traceback
    child = subprocess.Popen([sys.executable, "-m", "tui_trainer", "train", "--jsonl", *QUICK, "--epochs", "200",
                              "--runs-dir", str(runs_home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = json.loads(child.stdout.readline())["run_id"]
    child.stdout.close()
    assert child.wait(timeout=60) == 128 + signal.SIGPIPE
    assert child.stderr.read() == ""
    record = RunStore(runs_home).get_run(run_id)
    assert record.status == "stopped" and record.epochs_done < 200 and os.path.exists(record.last_checkpoint)
