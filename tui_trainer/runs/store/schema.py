"""The run store's schema: the migrations that build it and bring an older store forward, and how an
event is packed into its `run_events` row."""

from __future__ import annotations

import json
import sqlite3
import zlib
from typing import Any, Callable, Union

# Each entry upgrades the schema by one version (PRAGMA user_version counts them): append,
# never edit, so a database written by an older release is brought forward step by step.
Migration = Union[str, Callable[[sqlite3.Connection], None]]


def pack(data: dict[str, Any]) -> bytes:
    # zlib: an evaluation carries its sample images, about a megabyte of JSON
    return zlib.compress(json.dumps(data).encode(), 6)


def unpack(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob))


def _log_from_tables(db: sqlite3.Connection) -> None:
    """Schema 3: turn each run's rows (start, steps, epochs, evaluation, status) into its event log."""
    runs = db.execute("SELECT id, started, status, message, epochs_done, epochs, run_seconds FROM runs").fetchall()
    for run_id, started, status, message, done, epochs, seconds in runs:
        log: list[dict[str, Any]] = [json.loads(started)] if started else []
        steps = [{"event": "batch_progress", "step": r[0], "epoch": r[1], "epochs": epochs, "batch": r[2],
                  "batches": r[3], "loss": r[4], "acc": r[5], "lr": r[6], "samples_per_s": r[7],
                  "memory_mib": r[8], "peak_memory_mib": r[9]}
                 for r in db.execute("SELECT step, epoch, batch, batches, loss, acc, lr, samples_per_s, memory_mib, "
                                     "peak_memory_mib FROM steps WHERE run_id = ?", (run_id,))]
        ends = [json.loads(r[0]) for r in db.execute("SELECT data FROM epochs WHERE run_id = ?", (run_id,))]
        log += sorted(steps + ends, key=lambda e: (e["step"], e["event"] == "epoch_end"))
        log += [unpack(r[0]) for r in db.execute("SELECT data FROM evaluations WHERE run_id = ?", (run_id,))]
        ending = {"finished": {"event": "run_finished"}, "stopped": {"event": "run_stopped", "reason": message},
                  "failed": {"event": "run_failed", "message": message},
                  "interrupted": {"event": "run_interrupted", "message": message}}.get(status)
        if ending:
            log.append({**ending, "epochs_done": done, "seconds": seconds})
        db.executemany("INSERT INTO run_events (run_id, seq, name, data, at) VALUES (?, ?, ?, ?, 0)",
                       [(run_id, seq, e["event"], pack(e)) for seq, e in enumerate(log, 1)])


MIGRATIONS: list[tuple[Migration, ...]] = [
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL,
            model TEXT NOT NULL,
            dataset TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            paused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            active_since REAL,
            run_seconds REAL NOT NULL DEFAULT 0,
            epochs INTEGER NOT NULL,
            epochs_done INTEGER NOT NULL DEFAULT 0,
            best_val_acc REAL,
            test_acc REAL,
            device TEXT NOT NULL DEFAULT '',
            device_name TEXT NOT NULL DEFAULT '',
            torch_version TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            pid_token TEXT,
            host TEXT NOT NULL DEFAULT '',
            segment INTEGER NOT NULL DEFAULT 0,
            started TEXT,
            last_checkpoint TEXT,
            best_checkpoint TEXT
        )""",
        "CREATE INDEX runs_by_status ON runs (status, host)",
        """CREATE TABLE epochs (
            run_id TEXT NOT NULL, epoch INTEGER NOT NULL, step INTEGER NOT NULL, val_acc REAL, data TEXT NOT NULL,
            PRIMARY KEY (run_id, epoch)
        ) WITHOUT ROWID""",
        """CREATE TABLE steps (
            run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, batch INTEGER NOT NULL,
            batches INTEGER NOT NULL, loss REAL NOT NULL, acc REAL NOT NULL, lr REAL NOT NULL,
            samples_per_s REAL NOT NULL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID""",
        # zlib-compressed JSON: the sample images make an evaluation about a megabyte of text
        "CREATE TABLE evaluations (run_id TEXT PRIMARY KEY, data BLOB NOT NULL)",
        """CREATE TABLE controls (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, action TEXT NOT NULL, value REAL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX controls_by_run ON controls (run_id)",
    ),
    (  # CUDA memory of each progress report, so a viewer attached to a run sees it too
        "ALTER TABLE steps ADD COLUMN memory_mib REAL",
        "ALTER TABLE steps ADD COLUMN peak_memory_mib REAL",
    ),
    (  # one event log per run, the truth the runs row projects; controls become commands
        """CREATE TABLE run_events (
            run_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, at REAL NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
        _log_from_tables,
        "DROP TABLE steps",
        "DROP TABLE epochs",
        "DROP TABLE evaluations",
        "ALTER TABLE controls RENAME TO commands",
        "ALTER TABLE commands RENAME COLUMN action TO name",
    ),
    (  # the queue: queued runs are rows (status queued) in queue_order; runs queued together share a sweep;
        # the queue's settings (paused, runs per device) and the one runner that works through it
        "ALTER TABLE runs ADD COLUMN sweep_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN sweep_name TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN queue_order INTEGER",  # NULL for a run never queued; kept once it starts
        "CREATE INDEX runs_by_sweep ON runs (sweep_id)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE queue_runner (
            id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, pid_token TEXT, host TEXT NOT NULL,
            beat_at REAL NOT NULL
        )""",
    ),
    (  # forks: the run a fork starts from and the epoch of that run's checkpoint ('' and NULL for any other run)
        "ALTER TABLE runs ADD COLUMN parent_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN parent_epoch INTEGER",
    ),
    (  # the state the run's view folds its log into ('' for a row no event has reached since)
        "ALTER TABLE runs ADD COLUMN state TEXT NOT NULL DEFAULT ''",
    ),
]
