"""One damaged row of the store (a config or start that is not JSON, an unknown status, text in a number column, an
event blob that is not what was written) is listed, marked damaged with one line, and refused where it would be opened; every other run
works. The damage is done to a real store with sqlite3, as a torn write or a hand edit would leave it."""

import re
import sqlite3

import pytest

from tui_trainer.engine.config import ConfigError, TrainConfig
from tui_trainer.runs.fork import ForkRefused, fork_run
from tui_trainer.runs.queue import enqueue, queued
from tui_trainer.runs.store import RunDamaged, RunStore

from .test_store import CONFIG, record_whole_run

from ..cli.test_runs_cli import run_cli

DAMAGE = {
    "config": ("UPDATE runs SET config = '{not json' WHERE id = ?", "its config in the store is not JSON"),
    "started": ("UPDATE runs SET started = '[1, 2]' WHERE id = ?", "its start in the store is not a JSON object"),
    "status": ("UPDATE runs SET status = 'weird', state = 'weirder' WHERE id = ?",
               "its status 'weird' is not one scratch-tui knows"),
    "numbers": ("UPDATE runs SET run_seconds = 'abc', test_acc = 'zz' WHERE id = ?",
                "its test_acc column holds 'zz', not a number; its run_seconds column holds 'abc', not a number"),
    "eval blob": ("UPDATE run_events SET data = x'00112233' WHERE run_id = ? AND name = 'eval_end'",
                  "event 12 (eval_end) of its log cannot be read"),
    "epoch blob": ("UPDATE run_events SET data = x'789c' WHERE run_id = ? AND name = 'epoch_end'",
                   "event 6 (epoch_end) of its log cannot be read"),
}


def damaged_store(root):
    """A store of one sound run, one run per kind of damage (name -> id) and a queued run whose config is not
    JSON."""
    with RunStore(root) as store:
        ids = {}
        for name in ("sound", *DAMAGE):
            ids[name] = store.create_run(CONFIG, name=name)
            record_whole_run(store, ids[name])
        ids["queued"] = enqueue(store, [TrainConfig(epochs=1)], names=["queued"])[0]
    with sqlite3.connect(root / "runs.sqlite3") as db:
        for name, (sql, _) in DAMAGE.items():
            db.execute(sql, (ids[name],))
        db.execute("UPDATE runs SET config = 'nope' WHERE id = ?", (ids["queued"],))
    return ids


def test_each_damaged_run_is_listed_and_refused_in_one_line_and_the_rest_works(tmp_path):
    ids = damaged_store(tmp_path / "runs")
    with RunStore(tmp_path / "runs") as store:
        listed = {r.id: r for r in store.list_runs()}
        assert set(listed) == set(ids.values())  # one bad row breaks no listing
        assert listed[ids["sound"]].damaged == "" and listed[ids["sound"]].status_text == "finished"
        for name in ("config", "started", "status", "numbers"):  # the row's own damage is seen by a listing
            assert DAMAGE[name][1] in listed[ids[name]].damaged and listed[ids[name]].status_text == "damaged"
            record = store.get_run(ids[name])
            assert record.unreadable == record.damaged and DAMAGE[name][1] in record.unreadable
            assert not record.state.active  # nobody sends a damaged run commands or waits on it
            with pytest.raises(ConfigError, match=f"run {ids[name]}: damaged"):
                record.train_config()
            with pytest.raises(ForkRefused, match="cannot be opened: damaged"):
                fork_run(store, ids[name], None, {})
        every = (store.view, store.events, lambda i: store.logged(i, "eval_end", "epoch_end"))
        for name, read_it in (("eval blob", store.evaluation), ("epoch blob", store.epochs)):
            for read in (*every, read_it):  # a damaged log is seen where it is read, naming the event
                with pytest.raises(RunDamaged, match=re.escape(f"run {ids[name]} is damaged: {DAMAGE[name][1]}")):
                    read(ids[name])
        sound = store.view(ids["sound"])
        assert [e.epoch for e in sound.epochs] == [1, 2] and sound.evaluation.test_acc == 87.5
        waiting = {q.id: q for q in queued(store)}
        assert waiting[ids["queued"]].config is None
        assert waiting[ids["queued"]].unreadable == "damaged: its config in the store is not JSON"



def test_the_cli_lists_damage_and_refuses_a_damaged_run_in_one_line(tmp_path, capsys):
    root = tmp_path / "runs"
    ids = damaged_store(root)
    where = ["--runs-dir", str(root)]
    code, out, err = run_cli(["runs", *where], capsys)
    assert code == 0 and ids["sound"] in out and "finished" in out
    for name in ("config", "started", "status", "numbers"):
        line = next(line for line in out.splitlines() if line.startswith(ids[name]))
        assert "damaged" in line
        assert f"run {ids[name]} is damaged: {DAMAGE[name][1]}" in err
    refusals = [(["runs", "show", ids["eval blob"]], DAMAGE["eval blob"][1]),
                (["runs", "export", ids["epoch blob"]], DAMAGE["epoch blob"][1]),
                (["eval", ids["config"]], DAMAGE["config"][1]),
                (["train", "--resume", ids["status"]], DAMAGE["status"][1]),
                (["train", "--fork", ids["started"]], DAMAGE["started"][1])]
    for args, why in refusals:
        code, out, err = run_cli([*args, *where], capsys)
        assert code in (1, 2), (args, err)
        assert why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
    code, out, err = run_cli(["queue", "ls", *where], capsys)
    assert code == 0 and "Traceback" not in err and ids["queued"] in out
    code, out, err = run_cli(["runs", "show", ids["sound"], *where], capsys)
    assert code == 0 and "87.50%" in out
