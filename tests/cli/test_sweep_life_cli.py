"""A sweep's life after it starts (runs/sweep_life.py): `sweep extend` queues what a file adds under the same id,
`sweep retry` queues a failed run again (the table counts the retry), `sweep continue` forks the best configs'
runs to more epochs in the sweep, queued at the end of the queue best first (`queue ls` and `queue move` see them),
and the queue's runner trains a fork from its parent's checkpoint."""

import re

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import RunFailed
from tui_trainer.runs.queue import enqueue, pause_queue, queued, sweep_results, unpause_queue
from tui_trainer.runs.store import RunStore
from tui_trainer.runs.sweep import sweep_table
from tui_trainer.runs.sweep_life import sweep_grid
from tui_trainer.runs.worker import train

from .test_queue_cli import run_cli, wait_until

BASE = TrainConfig(dataset="fashion-mnist-mini", max_train_samples=256, epochs=1, device="cpu", hidden=(16,))
FILE = """dataset = "fashion-mnist-mini"
max_train_samples = 256
epochs = 1
device = "cpu"
hidden = [16]

[sweep]
name = "life"
lr = [0.001, 0.01]
seed = [0, 1]
"""


def test_extend_retry_and_continue_a_sweep(runs_home, tmp_path, capsys):
    store = RunStore(runs_home)
    pause_queue(store)  # nothing trains but what the test trains
    first = [BASE.replace(lr=lr, name=f"life lr={lr}") for lr in (0.001, 0.01)]
    ids = enqueue(store, first, "11fe11fe", "life")
    for run_id in ids:  # both trained here, in this process: the queue's runner never starts them
        store.set_process(run_id, __import__("os").getpid())
        train(store, run_id)
    assert [store.get_run(i).status for i in ids] == ["finished", "finished"]

    # extend: the file's second seed is new, its first seed's configs are there already
    path = tmp_path / "life.toml"
    path.write_text(FILE)
    code, out, err = run_cli(["sweep", "extend", "11fe", str(path)], capsys)
    assert code == 0, err
    added = re.search(r"Queued 2 more runs in sweep 11fe: (\w{8}) (\w{8})", out).groups()
    assert sorted((store.get_run(i).config["lr"], store.get_run(i).config["seed"]) for i in added) == \
        [(0.001, 1), (0.01, 1)]
    assert {r.id for r in store.list_runs(sweep="11fe11fe")} == {*ids, *added}
    code, out, err = run_cli(["sweep", "extend", "11fe", str(path)], capsys)
    assert code == 2 and "nothing new for sweep 11fe11fe" in err

    # retry: a failed run is queued again with its config, and only the retry counts in the table
    store.append(added[0], RunFailed(message="lost"))
    code, out, err = run_cli(["sweep", "retry", "11fe"], capsys)
    assert code == 0, err
    [again] = re.search(r"Queued 1 run \(or trials\) again in sweep 11fe: (\w{8})$", out, re.M).groups()
    assert store.get_run(again).status == "queued" and store.get_run(again).config == store.get_run(added[0]).config
    assert added[0] not in {r.run_id for r in sweep_results(store, "11fe11fe")}
    assert again in {r.run_id for r in sweep_results(store, "11fe11fe")}
    for run_id in (added[1], again):  # out of the way: the continue below is the runner's only work
        store.append(run_id, RunFailed(message="not needed here"))

    # continue: the two configs' best runs forked to 2 epochs, queued in the sweep at the end of the queue, best
    # first, as ordinary queued runs: `queue ls` lists them in place and `queue move` moves them
    [waiting] = enqueue(store, [BASE.replace(name="queued before")])
    best, second = [row.best_run_id for row in sweep_table(sweep_results(store, "11fe11fe")).rows]
    code, out, err = run_cli(["sweep", "continue", "11fe", "--top", "2", "--epochs", "2"], capsys)
    assert code == 0, err
    forks = re.search(r"Queued 2 forks to 2 epochs in sweep 11fe: (\w{8}) (\w{8})$", out, re.M).groups()
    assert [store.get_run(f).parent_id for f in forks] == [best, second]
    fork = forks[0]
    record = store.get_run(fork)
    assert record.parent_id == best and record.parent_epoch == 1 and record.epochs == 2
    assert record.status == "queued" and fork in {r.id for r in store.list_runs(sweep="11fe11fe")}
    grid = sweep_grid(store, "11fe")  # what the app's extension starts from: the forks are no part of its grid
    assert [(a.field, a.values) for a in grid.axes] == [("lr", (0.001, 0.01)), ("seed", (0, 1))]
    assert grid.base.epochs == 1 and grid.name == "life"
    code, out, err = run_cli(["queue", "ls"], capsys)
    assert code == 0, err
    assert re.findall(r"^(\d+)\s+(\w{8})\s", out, re.M) == [("1", waiting), ("2", forks[0]), ("3", forks[1])], out
    code, out, err = run_cli(["queue", "move", forks[1], "--top"], capsys)
    assert code == 0, err
    assert [q.id for q in queued(store)] == [forks[1], waiting, forks[0]]
    code, out, err = run_cli(["queue", "rm", forks[1], waiting], capsys)  # the best config's fork alone trains
    assert code == 0, err
    unpause_queue(store)
    wait_until(lambda: store.get_run(fork).status == "finished", 90, "the fork to train")
    assert [e["epoch"] for e in store.epochs(fork)] == [2]  # one more epoch, from its parent's checkpoint
    code, out, err = run_cli(["sweep", "continue", "11fe", "--top", "1", "--epochs", "1"], capsys)
    assert code == 2 and "epochs: got 1" in err
