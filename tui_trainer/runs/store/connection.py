"""The store's connection: one SQLite file (`<runs dir>/runs.sqlite3`) shared by every process that trains or looks.

WAL lets readers go on while a run writes, every write is one short IMMEDIATE transaction, and the busy timeout
makes concurrent writers wait their turn instead of failing. Opening brings an older store forward through the
schema's migrations (schema.py).

Looking never needs to write: a runs dir that is read-only (a read-only mount, another user's folder) is opened
read-only, and a full disk or a store locked by another process only stops what writes. Each failure is a
StoreError that says which.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Self

from .processes import process_alive
from .schema import MIGRATIONS

STORE_FILE = "runs.sqlite3"
BUSY_TIMEOUT_S = 10.0


class StoreError(RuntimeError):
    """The database cannot be opened or written; the message names the file and what to do."""


class StoreBusy(StoreError):
    """Another process has held the store's write lock for longer than the busy timeout: try again later."""


class RunDamaged(StoreError):
    """A run's log holds an event that cannot be read (its blob is not what was written): that run alone is
    refused, in one line; the rest of the store works."""


class StoreFull(StoreError):
    """The disk holding the store is full."""


class StoreMoved(StoreError):
    """The runs folder was moved or deleted while this process had its store open: what it would write by the old
    path (checkpoints) would make a new, split runs folder there."""


def default_runs_dir() -> Path:
    """Where runs live: $SCRATCH_TUI_HOME, else the user data dir (~/.local/share/scratch-tui on Linux)."""
    env = os.environ.get("SCRATCH_TUI_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("scratch-tui"))


def store_paths(path: str | Path | None = None) -> tuple[Path, Path]:
    """The runs folder and the store's file that `path` (a folder, the .sqlite3 file, None for the default)
    names; whether the file exists tells a reader that there is nothing to read, without creating it."""
    path = Path(path).expanduser() if path is not None else default_runs_dir()
    path = Path(os.path.abspath(path))  # a relative --runs-dir means the same folder after a chdir
    return (path.parent, path) if path.suffix == ".sqlite3" else (path, path / STORE_FILE)


def _disk_full(folder: Path) -> bool:
    # SQLite reports some failed writes as a plain I/O error; an empty disk is then the reason
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


class Connection:
    """The store's file, open in this process: one connection, one lock. Every other part of the store reads
    through `query` and writes through `transaction`."""

    def __init__(self, path: str | Path | None = None, busy_timeout_s: float | None = None):
        self.root, self.db_path = store_paths(path)
        self.busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not self.root.is_dir():
                raise StoreError(f"cannot create the runs folder {self.root} ({exc.strerror}); pass --runs-dir or "
                                 f"set SCRATCH_TUI_HOME to a writable folder") from None
        # Looking must work where writing cannot: a read-only mount, a folder of another user.
        self.read_only = not (os.access(self.root, os.W_OK) and
                              (not self.db_path.exists() or os.access(self.db_path, os.W_OK)))
        if self.read_only:
            self._db = self._open_read_only()
            self._opened_at = self._identity()
            return
        try:
            self._db = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._failure(exc, "open") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL syncs at checkpoints only: a power cut may lose the last writes but
            # never corrupts the file, and a run writes several times a second.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._failure(exc, "open") from None
        except StoreError:
            self._db.close()
            raise
        self._opened_at = self._identity()

    def _identity(self) -> tuple[int, int, int, int] | None:
        """The (device, inode) of the runs folder and of the store file: which folder this is, wherever it goes."""
        try:
            folder, store = os.stat(self.root), os.stat(self.db_path)
        except OSError:
            return None
        return folder.st_dev, folder.st_ino, store.st_dev, store.st_ino

    def check_in_place(self) -> None:
        """StoreMoved, in one line, where the runs folder (or its store) is no longer where it was opened: moved or
        deleted. A process about to write files by the folder's path asks first."""
        if self._opened_at is None or self._identity() == self._opened_at:
            return
        raise StoreMoved(f"the runs folder {self.root} was moved or deleted while this process used it; nothing more "
                         f"is written there, so that no second, split runs folder is made at the old path; open the "
                         f"runs where they are now with --runs-dir")

    def _open_read_only(self) -> sqlite3.Connection:
        """The store opened for reading only; nothing (no marking, no upgrade) is written."""
        if not self.db_path.is_file():
            raise StoreError(f"{self.root} is read-only and holds no run store ({STORE_FILE}); pass --runs-dir or "
                             f"set SCRATCH_TUI_HOME to a folder with runs")
        uri = "file:" + urllib.request.pathname2url(str(self.db_path))
        db = None
        # mode=ro reads a WAL store alongside its writers; where its -shm file cannot be made (the
        # folder itself is read-only, so nobody can write it either) immutable=1 reads the file as it is.
        for options in ("?mode=ro", "?immutable=1"):
            try:
                db = sqlite3.connect(uri + options, uri=True, timeout=self.busy_timeout_s, isolation_level=None,
                                     check_same_thread=False)
                version = db.execute("PRAGMA user_version").fetchone()[0]
                break
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                    db = None
                failure = exc
        else:
            raise self._failure(failure, "open") from None
        target = len(MIGRATIONS)
        if version != target:
            db.close()
            if version > target:
                raise StoreError(f"{self.db_path} was written by a newer scratch-tui (schema {version}, this one "
                                 f"knows {target}); upgrade scratch-tui or pass another --runs-dir")
            raise StoreError(f"{self.db_path} was written by an older scratch-tui (schema {version}) and needs an "
                             f"upgrade to schema {target}, which its read-only folder does not allow; open it once "
                             f"where it is writable (or copy the folder)")
        return db

    def _failure(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """What went wrong with the store, said as what it is: locked, full, read-only or damaged."""
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary code of an extended one
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreBusy(f"the run store {self.db_path} is locked: another process has held its write lock for "
                             f"over {self.busy_timeout_s:g}s; try again once it lets go")
        if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(self.root)):
            return StoreFull(f"no space left on the disk holding {self.root}: free some space, then try again")
        if code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and self.read_only):
            return StoreError(f"the run store {self.db_path} is read-only ({exc}); runs can be listed and shown "
                              f"but not changed there; pass --runs-dir to record elsewhere")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return StoreError(f"{self.db_path} is not a usable run store ({exc}); move it aside or pass --runs-dir")
        return StoreError(f"cannot {doing} the run store {self.db_path} ({exc})")

    def _migrate(self) -> None:
        target = len(MIGRATIONS)
        if self._db.execute("PRAGMA user_version").fetchone()[0] == target:
            return
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == target:  # another process made or upgraded the store while this one waited for the lock
                return
            if version > target:
                raise StoreError(f"{self.db_path} was written by a newer scratch-tui (schema {version}, this one "
                                 f"knows {target}); upgrade scratch-tui or pass another --runs-dir")
            if version:  # an older release's store: its tables change under any of its runs still training
                training = [(run_id, pid) for run_id, pid, token in db.execute(
                    "SELECT id, pid, pid_token FROM runs WHERE status = 'running' AND host = ?", (self.host,))
                    if process_alive(pid, token)]
                if training:
                    run_id, pid = training[0]
                    raise StoreError(f"run {run_id} is still training under an older scratch-tui (pid {pid}); "
                                     f"let it finish or stop it, then open {self.db_path} again")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    statement(db) if callable(statement) else db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE write transaction, giving the connection; `wait_s` replaces the busy timeout for it (a
        retry that must not stall)."""
        with self._lock:
            if wait_s is not None:
                self._db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._rolled_back()
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rolled_back()
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._failure(exc, "write") from None
            finally:
                if wait_s is not None:
                    self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")

    def _rolled_back(self) -> None:
        """Forget what this process keeps of writes that a rollback has just taken back (the log's views)."""

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows of one read."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._failure(exc, "read") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
