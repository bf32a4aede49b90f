"""`scratch-tui queue ...`, `runs --sweep` and `train --seeds`: bad input, the table, and a real runner that
trains queued runs to the end, one at a time on the CPU."""

import re
import time

import pytest

from tui_trainer import cli
from tui_trainer.runs import queue
from tui_trainer.runs.queue import runner_status
from tui_trainer.runs.store import RunStore

TINY = ["--dataset", "fashion-mnist-mini", "--max-train-samples", "256", "--epochs", "1", "--device", "cpu"]


def run_cli(args, capsys):
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def wait_until(condition, timeout=60.0, what="the queue to drain"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("args, names", [
    (["--seeds", "0,x"], "--seeds: got '0,x'"),
    (["--seeds", "1,1"], "--seeds: got '1,1'; give each seed once"),
    (["--seeds", "0,1", "--seed", "3"], "--seed and --seeds"),
    (["--lr", "-1", "--seeds", "0,1"], "--lr: got -1.0"),
    (["--device", "cuda:7"], "--device: cuda:7 is not available"),
    (["--per-device", "0"], "--per-device: got 0"),
    (["--config", "/nonexistent.toml"], "cannot read config file /nonexistent.toml"),
    (["--epochs", "many"], "argument --epochs: invalid int value"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_is_queued(runs_home, capsys, args, names):
    code, out, err = run_cli(["queue", "add", *TINY, "--no-start", *args], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("scratch-tui queue add: error: ") and names in err
    assert RunStore(runs_home).list_runs() == []


def test_the_queue_is_listed_reordered_and_cancelled_without_starting_anything(runs_home, capsys):
    code, out, _ = run_cli(["queue", "add", *TINY, "--no-start", "--name", "solo"], capsys)
    assert code == 0 and "The runner was not started; `scratch-tui queue start` starts it" in out
    solo = re.search(r"Queued run (\w+) at position 1", out).group(1)
    code, out, _ = run_cli(["queue", "add", *TINY, "--no-start", "--seeds", "3,4", "--lr", "0.01"], capsys)
    seeds = re.findall(r"Queued run (\w+) at position (\d)", out)
    assert code == 0 and [p for _, p in seeds] == ["2", "3"]
    sweep = re.search(r"Sweep (\w+) \(seeds of scratch-mlp\)", out).group(1)

    assert run_cli(["queue", "move", seeds[1][0], "--top"], capsys)[:2] == (
        0, f"Run {seeds[1][0]} is now at position 1.\n")
    code, out, _ = run_cli(["queue", "ls"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["POS", "ID", "NAME", "DEVICE", "MODEL", "EPOCHS", "LR", "BATCH", "SEED", "SWEEP",
                                "STATE"]
    assert [line.split()[:2] for line in lines[1:4]] == [["1", seeds[1][0]], ["2", solo], ["3", seeds[0][0]]]
    assert "scratch-mlp seed 4" in lines[1] and f"{sweep} seeds of scratch-mlp" in lines[1] and " 0.01 " in lines[1]
    assert lines[1].endswith("queued") and lines[-1].startswith("Runner: not running; 1 run at a time per device")

    code, out, err = run_cli(["queue", "rm", solo, "nothere"], capsys)
    assert code == 2 and "no run nothere" in err  # every id is checked before any is removed
    assert run_cli(["queue", "rm", solo], capsys)[0] == 0
    code, out, _ = run_cli(["runs", "--sweep", sweep], capsys)
    assert code == 0 and {line.split()[0] for line in out.splitlines()[1:]} == {seeds[0][0], seeds[1][0]}
    assert " queued " in out.splitlines()[1]
    code, out, _ = run_cli(["runs"], capsys)
    assert solo not in out and len(out.splitlines()) == 3

    assert run_cli(["queue", "pause"], capsys)[0] == 0
    code, out, _ = run_cli(["queue", "start"], capsys)
    assert code == 1 and "The queue is paused" in out
    assert "the queue is paused" in run_cli(["queue", "ls"], capsys)[1]
    assert run_cli(["queue", "move", seeds[0][0], "--to", "9"], capsys)[2].endswith(
        "error: position: got 9; the queue has positions 1 to 2\n")


def test_train_seeds_queues_them_for_a_runner_that_trains_one_at_a_time_on_the_cpu(runs_home, capsys):
    # `train --seeds` is `queue add --seeds` (the same enqueue and runner) that then waits and reports; each run in
    # its own process here (packs of them: tests/runs/test_pack_runs.py, the sweep test in test_sweep_cli.py)
    queue.set_pack_size(RunStore(runs_home), 1)
    code, out, err = run_cli(["train", *TINY, "--seeds", "0,1"], capsys)
    assert code == 0, err
    assert "Started the queue's runner (pid" in out
    ids = re.search(r"\(sweep \w+\): (\w+), (\w+)", out).groups()
    accs = [float(a) for a in re.findall(r"Seed \d: run \w+ finished, test accuracy ([\d.]+)%", out)]
    assert len(accs) == 2
    mean, std = re.search(r"Test accuracy over 2 seeds: ([\d.]+)% ± ([\d.]+) \(mean ± std\)", out).groups()
    assert float(mean) == pytest.approx(sum(accs) / 2, abs=0.02)
    assert float(std) == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5, abs=0.02)

    store = RunStore(runs_home)
    records = [store.get_run(i) for i in ids]
    assert [(r.status, r.epochs_done, r.config["seed"]) for r in records] == [("finished", 1, 0), ("finished", 1, 1)]
    assert [r.test_acc for r in records] == pytest.approx(accs, abs=0.01)
    assert {r.sweep_name for r in records} == {"seeds of scratch-mlp"}
    # one CPU slot: the second run's process started only once the first had ended
    first_end = store.query("SELECT max(at) FROM run_events WHERE run_id = ?", (ids[0],))[0][0]
    second_start = store.query("SELECT min(at) FROM run_events WHERE run_id = ? AND name = 'process_started'",
                               (ids[1],))[0][0]
    assert first_end <= second_start
    wait_until(lambda: not runner_status(store).running, 10, "the runner to leave")  # the queue is empty: it exits
    assert "started 2 runs" in (runs_home / "logs" / "queue-runner.log").read_text()
