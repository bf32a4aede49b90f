"""Every change on the record: read from the log with its step and epoch, said in one line, answered when it comes
too late; a fork's columns survive a store from before them."""

import sqlite3

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import (CheckpointSaved, CommandIgnored, CommandReceived, EarlyStopped, EpochEnded,
                                       ForkedFrom, LearningRateChanged, RunFinished, RunPaused, RunUnpaused,
                                       RunStopped, event_from_dict)
from tui_trainer.runs.view import RunView, view_of
from tui_trainer.runs.store.schema import MIGRATIONS
from tui_trainer.runs.store import RunStore

from .test_store import old_store, started


def start(resumed_from_step=0, steps_per_epoch=100):
    return started(TrainConfig(epochs=5), steps_per_epoch=steps_per_epoch, resumed_from_step=resumed_from_step,
                   resumed_from_epoch=resumed_from_step // steps_per_epoch)


def test_the_log_reads_as_changes_with_their_step_and_epoch():
    timed = [(0.0, start(steps_per_epoch=500)), (1.0, CommandReceived("set_lr", 0.0015, step=1234)),
             (1.0, LearningRateChanged(0.0015, 1234, previous=0.003)),
             (2.0, RunPaused(epoch=3, step=1300)), (14.0, RunUnpaused(epoch=3, step=1300)),
             (15.0, LearningRateChanged(0.00015, 1500, reason="plateau", previous=0.0015)),
             (16.0, CheckpointSaved("last.pt", 3, 1510, "request")),
             (16.0, CheckpointSaved("last.pt", 4, 2000, "epoch")),  # routine: not a change
             (17.0, EarlyStopped(epoch=4, best_epoch=2, monitor="val_loss", best_value=0.41, patience=2, step=2000)),
             (18.0, CommandIgnored("set_lr", 0.1, "the run had finished before it arrived")),
             (18.0, RunFinished(epochs_done=4, seconds=3.0))]
    log = view_of(timed)
    assert [c.describe() for c in log.changes] == [
        "step 1,234 (epoch 3): lr 0.003 \u2192 0.0015 (set by you)",
        "step 1,300 (epoch 3): paused for 12s",
        "step 1,500 (epoch 3): lr 0.0015 \u2192 0.00015 (plateau)",
        "step 1,510 (epoch 4): checkpoint",
        "step 2,000 (epoch 4): early stop after epoch 4: val_loss has not improved for 2 epochs (best 0.4100 at epoch 2)",
        "step 2,000 (epoch 4): set_lr 0.1 not applied: the run had finished before it arrived"]
    assert log.changes[0].to_dict() == {"step": 1234, "epoch": 3, "what": "lr", "value": 0.0015, "previous": 0.003,
                                        "by": "set by you", "detail": ""}


def test_a_resume_forgets_the_changes_it_trains_again_and_only_set_lrs_replay():
    log = RunView()
    for event in (start(), LearningRateChanged(0.01, 50, previous=0.003),
                  LearningRateChanged(0.002, 120, reason="plateau", previous=0.01),
                  LearningRateChanged(0.02, 180, previous=0.002), RunPaused(epoch=2, step=190),
                  RunStopped(epochs_done=1, seconds=1.0, step=190),
                  start(resumed_from_step=100), LearningRateChanged(0.005, 150, previous=0.002)):
        log.apply(event)
    # kept: what came up to the checkpoint at step 100, then the new segment's own
    assert [(c.step, c.value) for c in log.changes] == [(50, 0.01), (150, 0.005)]
    assert log.changes[0].by == "set by you" and log.lr_changes() == [(50, 0.01), (150, 0.005)]


def test_commands_still_queued_when_a_run_ends_are_answered_before_its_ending(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig())
    store.append(run_id, EpochEnded(1, 1, 0.5, 80.0, 0.4, 85.0, 0.003, 1.0, 100.0, step=47))
    store.send(run_id, Command("set_lr", 0.1))
    store.send(run_id, Command("pause"))
    store.end_run(run_id, RunFinished(epochs_done=1, seconds=1.0))
    names = [e.event_name for _, e in store.events(run_id)]
    assert names == ["epoch_end", "command_ignored", "command_ignored", "run_finished"]
    ignored = [e for _, e in store.events(run_id) if isinstance(e, CommandIgnored)]
    assert [(e.command, e.value) for e in ignored] == [("set_lr", 0.1), ("pause", None)]
    assert ignored[0].reason == "the run had finished before it arrived"
    assert store.take_commands(run_id) == []  # answered, so nothing waits for a next process


def test_older_logs_load_without_the_new_step_fields():
    assert event_from_dict({"event": "run_stopped", "epochs_done": 2, "seconds": 1.0}).step is None
    assert event_from_dict({"event": "command_received", "command": "pause"}).step is None


def test_a_store_from_before_forks_upgrades_with_nothing_lost(tmp_path):
    path = tmp_path / "old"
    old_store(path, 2)
    db = sqlite3.connect(path / "runs.sqlite3")  # as the release before forks left it: schema 4
    for statements in MIGRATIONS[2:4]:
        for statement in statements:
            statement(db) if callable(statement) else db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    db.commit()
    rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
    logs = db.execute("SELECT run_id, seq, data FROM run_events ORDER BY run_id, seq").fetchall()
    db.close()
    with RunStore(path) as store:
        db = sqlite3.connect(store.db_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT run_id, seq, data FROM run_events ORDER BY run_id, seq").fetchall() == logs
        upgraded = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        assert [r[:len(rows[0])] for r in upgraded] == rows
        db.close()
        record = store.get_run(rows[0][0])
        assert (record.parent_id, record.parent_epoch) == ("", None)
        child = store.create_run(TrainConfig())
        store.append(child, ForkedFrom(record.id, 2, 94))
        assert (store.get_run(child).parent_id, store.get_run(child).parent_epoch) == (record.id, 2)
