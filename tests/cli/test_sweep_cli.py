"""`scratch-tui sweep FILE.toml`, `sweep show`, `sweep ls`: bad files queue nothing; a real sweep (bench/sweeps/
smoke.toml: 2 lr values x 2 seeds, one epoch of 256 bundled images) trains through the queue's runner and ends
with its table; --halving makes the sweep a study whose pruner (asha) stops the weak config at its first rung."""

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest

from tui_trainer.runs.queue import pause_queue, runner_status
from tui_trainer.runs.store import RunStore

from .test_queue_cli import run_cli, wait_until

SMOKE = str(Path(__file__).resolve().parents[2] / "bench" / "sweeps" / "smoke.toml")
NUMBER = r"\d+\.\d\d"


def table_rows(out):
    """The sweep table's rows from `sweep`'s output: the lines between its header line and the Best run line."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["lr", "done", "test"])
    return [line.split("  ") for line in lines[head + 1:] if line and not line.startswith("Best ")]


def cells(row):
    return [cell.strip() for cell in row if cell.strip()]


def test_a_sweep_file_trains_through_the_queue_and_ends_with_its_table(runs_home, capsys):
    started = time.monotonic()
    code, out, err = run_cli(["sweep", SMOKE, "--parallel", "2"], capsys)
    assert code == 0, err
    sweep_id = re.search(r"^Queued sweep (\w{8}) \(smoke\): 4 runs, 2 configs x 2 seeds$", out, re.M).group(1)
    # --parallel is the queue's setting and outlives the sweep: it says so, and how to set it back
    assert ("The queue now trains up to 2 runs at a time per device, for this sweep and for what it starts later; "
            "`scratch-tui queue start --per-device 1` sets it back.\n") in out
    ended = re.findall(rf"^\[(\d)/4\] run (\w+) smoke lr=([\d.]+) seed=(\d): finished, test accuracy ({NUMBER})%$",
                       out, re.M)
    assert [int(k) for k, *_ in ended] == [1, 2, 3, 4]
    # its 4 runs, of one shape, trained as one pack (runs/queue.py), each recorded as its own run
    with RunStore(runs_home) as store:
        packs = {store.view(run_id).pack_id for _, run_id, *_ in ended}
    assert len(packs) == 1 and "" not in packs
    assert f"Sweep {sweep_id} (smoke): 4/4 runs finished; 2 configs, best first by test acc, mean ± std over seeds" \
        in out

    rows = [cells(r) for r in table_rows(out)]
    assert len(rows) == 2 and {r[0] for r in rows} == {"0.001", "0.003"}
    means = []
    for lr, done, test, best_val, seconds in rows:
        assert done == "2/2"
        mean, std = re.fullmatch(rf"({NUMBER})% ± ({NUMBER})", test).groups()
        accs = [float(a) for _, _, v, _, a in ended if v == lr]
        assert float(mean) == pytest.approx(sum(accs) / 2, abs=0.01)
        assert float(std) == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5, abs=0.01)
        assert re.fullmatch(rf"{NUMBER}% ± {NUMBER}", best_val) and re.fullmatch(r"\d+s ± \d+s", seconds)
        means.append(float(mean))
    assert means == sorted(means, reverse=True)  # best first

    # the same table from the store, as CSV, to a file or a pipe
    code, out, _ = run_cli(["sweep", "show", sweep_id[:4], "--csv"], capsys)
    exported = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["lr"] for r in exported] == [r[0] for r in rows]
    for record, row in zip(exported, rows):
        assert (record["done"], record["total"]) == ("2", "2")
        assert f"{float(record['test_acc_mean']):.2f}% ± {float(record['test_acc_std']):.2f}" == row[2]
    code, out, _ = run_cli(["sweep", "show", sweep_id, "--json", "--top", "1"], capsys)
    data = json.loads(out)
    assert code == 0 and data["fields"] == ["lr"] and [r["lr"] for r in data["rows"]] == [float(rows[0][0])]

    code, out, _ = run_cli(["sweep", "ls"], capsys)
    best = max(float(a) for *_, a in ended)
    assert code == 0 and out.splitlines()[1].split()[:5] == [sweep_id, "smoke", "4/4", "0", f"{best:.2f}%"]
    code, out, _ = run_cli(["runs", "--sweep", sweep_id], capsys)
    assert len(out.splitlines()) == 5
    wait_until(lambda: not runner_status(RunStore(runs_home)).running, 10, "the runner to leave")
    assert time.monotonic() - started < 40


def test_detach_queues_the_sweep_and_returns_at_once(runs_home, capsys):
    pause_queue(RunStore(runs_home))  # so that nothing trains: only the queueing is under test
    started = time.monotonic()
    code, out, err = run_cli(["sweep", SMOKE, "--detach"], capsys)
    assert code == 0 and err == "" and time.monotonic() - started < 5
    sweep_id = re.search(r"^Queued sweep (\w{8}) \(smoke\): 4 runs", out, re.M).group(1)
    assert f"`scratch-tui sweep show {sweep_id}`" in out and "`scratch-tui queue ls`" in out
    runs = RunStore(runs_home).list_runs(sweep=sweep_id)
    assert len(runs) == 4 and {r.status for r in runs} == {"queued"}
    code, out, _ = run_cli(["sweep", "show", sweep_id], capsys)
    assert code == 0 and [cells(r)[:3] for r in table_rows(out)] == [["0.001", "0/2", "-"], ["0.003", "0/2", "-"]]


BIG_GRID = "lr = {log = [1e-4, 1e-1], count = 40}\nseed = [" + ", ".join(map(str, range(30))) + "]\n"


@pytest.mark.parametrize("text, args, message", [
    ("epochs = 1\n[sweep]\nlr = [0.1, 0.2\n", [], "bad.toml is not valid TOML: "),
    ("epochs = 1\nlearning_rate = 0.1\n[sweep]\nlr = [0.1]\n", [], "learning_rate: unknown setting; known settings"),
    ("epochs = 1\n[sweep]\nlrr = [0.1, 0.2]\n", [], "sweep.lrr: unknown setting; settings that can be swept are"),
    ("epochs = 1\n[sweep]\nlr = []\n", [], "sweep.lr: empty list; give at least one value"),
    ("epochs = 1\n[sweep]\nlr = {log = [0.1, 0.01], count = 3}\n", [], "sweep.lr: log range needs 0 < lo < hi"),
    ("epochs = 1\n[sweep]\n" + BIG_GRID, [], "sweep: 1200 runs, more than 1000 at once; pass --yes to queue them all"),
    ("epochs = 1\n", [], "sweep: no [sweep] table"),
    ("epochs = 2\n[sweep]\nlr = [0.1, 0.2]\n", ["--halving", "3"], "--halving: got 3; must be an epoch the runs "
     "reach, from 1 to 2"),
    ("epochs = 2\n[sweep]\nlr = [0.1, 0.2]\n", ["--halving", "1", "--parallel", "2"],
     "--parallel: not with a study (nor with --halving, which makes one); `scratch-tui queue add --per-device N`"),
    ("epochs = 2\n[sweep]\nlr = [0.1, 0.2]\n", ["--halving", "1", "--pack", "0"], "--pack: got 0; must be a whole "
     "number of runs, 1 or more"),
    ("epochs = 2\n[sweep]\nseed = [0, 1]\n", ["--halving", "1"], "--halving: this sweep varies only the seed"),
    ("epochs = 2\ndevice = \"cuda:7\"\n[sweep]\nlr = [0.1, 0.2]\n", ["--halving", "1"], "cuda:7 is not available"),
    ("epochs = 1\n[sweep]\nlr = [0.1, 0.2]\n", ["--parallel", "0"], "--parallel: got 0"),
    ("epochs = 1\ndevice = \"cuda:7\"\n[sweep]\nlr = [0.1, 0.2]\n", [], "cuda:7 is not available"),
])
def test_a_bad_sweep_file_is_one_line_exit_2_and_nothing_is_queued(runs_home, tmp_path, capsys, text, args, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run_cli(["sweep", str(path), *args], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("scratch-tui sweep: error: ") and message in err, err
    store = RunStore(runs_home)
    assert store.list_runs() == [] and store.query("SELECT key FROM settings") == []


def test_show_refuses_an_unknown_sweep_and_a_missing_file_is_one_line(runs_home, capsys):
    assert run_cli(["sweep", "show", "feed"], capsys)[1:] == (
        "", "scratch-tui sweep show: error: no sweep 'feed'; `scratch-tui sweep ls` lists them\n")
    code, out, err = run_cli(["sweep", "/nonexistent.toml"], capsys)
    assert code == 2 and err == ("scratch-tui sweep: error: cannot read sweep file /nonexistent.toml: "
                                 "No such file or directory\n")
    assert run_cli(["sweep", "ls"], capsys)[:2] == (0, "No sweeps yet; `scratch-tui sweep FILE.toml` queues one.\n")


def test_halving_is_asynchronous_successive_halving_that_prunes_the_weak_config_at_its_first_rung(
        runs_home, tmp_path, capsys):
    """A plain sweep file with --halving runs as a study of this box with pruner asha. The grid is drawn in order, one
    trial at a time: the good lr reaches the rung first and trains to its end; the weak lr is pruned at epoch 1 of
    3, at once, without waiting for anything else."""
    pytest.importorskip("optuna")
    path = tmp_path / "halving.toml"
    path.write_text('dataset = "fashion-mnist-mini"\nmax_train_samples = 256\nepochs = 3\ndevice = "cpu"\n'
                    'hidden = [16]\nmonitor = "val_acc"\n[sweep]\nname = "halve"\nlr = [3e-3, 1e-6]\n')
    code, out, err = run_cli(["sweep", str(path), "--halving", "1"], capsys)
    assert code == 0, err  # a pruned trial ended as asked
    sweep_id = re.search(r"^Study halve-\w+ \(journal .+\): sweep (\w{8}), 2 trials, search grid, pruner asha from "
                         r"epoch 1; this box draws from it$", out, re.M).group(1)
    good = re.search(r"^trial 0 lr=0\.003 seed=0: finished, test accuracy [\d.]+% \(run (\w+) on ", out, re.M).group(1)
    weak = re.search(r"^trial 1 lr=1e-06 seed=0: pruned by asha at epoch 1 \(run (\w+) on ", out, re.M).group(1)
    with RunStore(runs_home) as store:
        assert {r.id for r in store.list_runs(sweep=sweep_id)} == {good, weak}
        weak_run, good_run = store.get_run(weak), store.get_run(good)
    assert (good_run.status, good_run.epochs_done) == ("finished", 3)
    assert (weak_run.status, weak_run.epochs_done, weak_run.message) == ("stopped", 1, "pruned by asha at epoch 1")
    # the study's table: both trials, then both configs, the good one first
    assert re.search(rf"^0\s+complete\s+\S+\s+{good}\s", out, re.M)
    assert re.search(rf"^1\s+pruned\s+\S+\s+{weak}\s.*pruned by asha at epoch 1$", out, re.M)
    rows = [cells(r)[:2] for r in table_rows(out)]
    assert rows == [["0.003", "1/1"], ["1e-06", "0/1"]]
    assert f"Best config: lr=0.003; its best run {good}" in out
