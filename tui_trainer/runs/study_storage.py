"""Where a study and a run store may live: Optuna's storages (a journal file, which gets the heartbeat Optuna's RDB
storage has, or an RDB URL), and the check that keeps a run store off network filesystems.

A journal file suits boxes sharing a filesystem, with no server; an RDB URL (PostgreSQL, MySQL) needs no shared
filesystem; SQLite is for one box only (runs/study.py refuses it from a second box and for Slurm).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..engine.user_text import shown
from .store import RunStore

JOURNAL_FILE = "studies.journal"  # beside the run store, for a study without --storage
BEAT_ATTR = "scratch_tui.beat"  # a trial's last heartbeat (time.time())
RETRIES = 1  # a trial whose run died is trained again once, by any box
STALE_BEATS = 3  # a running trial silent for this many heartbeats is failed
SWEEP_EXTRA = "pip install 'scratch-tui[sweep]'"


class StudyError(ValueError):
    """A study that cannot be made, reached or joined: one line naming what and how to fix it."""


def require_optuna(flag: str = "a study") -> Any:
    try:
        import optuna
    except ImportError:
        raise StudyError(f"{flag} needs Optuna, which is not installed; install the sweep extra: {SWEEP_EXTRA}") \
            from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- where a study lives ---------------------------------------------------------------------------------------
def is_sqlite(storage: str) -> bool:
    return storage.startswith("sqlite:")


def is_journal(storage: str) -> bool:
    return "://" not in storage and not is_sqlite(storage)


def stored_file(storage: str) -> Path | None:
    """The file a journal or SQLite storage keeps its studies in; None for a server's URL (or SQLite in memory)."""
    if is_journal(storage):
        return Path(storage)
    path = storage.removeprefix("sqlite:///").partition("?")[0] if storage.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


LISTED_STUDIES = 5  # the studies a refusal names, at most


def no_study(name: str, storage: str, names: list[str]) -> StudyError:
    """A study to join that the storage has not got: what it holds instead (`names`), and how to make it."""
    make = f"`scratch-tui sweep FILE --storage {storage} --study {name}`"
    file = stored_file(storage)
    if file is not None and not file.exists():
        return StudyError(f"study: no study {shown(name)} in {storage} (no such file); check the path, or make the "
                          f"study with {make}")
    if not names:
        return StudyError(f"study: no study {shown(name)} in {storage} (it holds none); make it with {make}")
    more = f" and {len(names) - LISTED_STUDIES} more" if len(names) > LISTED_STUDIES else ""
    return StudyError(f"study: no study {shown(name)} in {storage} (it holds "
                      f"{', '.join(shown(n) for n in names[:LISTED_STUDIES])}{more}); give one of those, or make it "
                      f"with {make}")


def storage_place(storage: str | None, store: RunStore) -> str:
    """The storage as kept in the run store: an RDB URL as given, a journal file as its absolute path."""
    if storage is None:
        return str(store.root / JOURNAL_FILE)
    return storage if not is_journal(storage) else str(Path(storage).expanduser().resolve())


def open_storage(storage: str, heartbeat_s: float) -> Any:
    optuna = require_optuna()
    with warnings.catch_warnings():  # renamed in Optuna 4.9 (RetryHeartbeatStaleTrialCallback), marked experimental
        warnings.simplefilter("ignore")
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                        optuna.storages.RetryFailedTrialCallback)(max_retry=RETRIES)
    if is_journal(storage):
        folder = Path(storage).parent
        if not folder.is_dir():
            raise StudyError(f"storage: the folder of journal file {storage} does not exist; create it or give "
                             f"another path")
        try:
            backend = optuna.storages.journal.JournalFileBackend(storage)
        except OSError as exc:
            raise StudyError(f"storage: cannot open journal file {storage} ({exc.strerror}); give a writable path")
        return _beating_journal(optuna)(backend, heartbeat_s, retry)
    try:
        with warnings.catch_warnings():  # the heartbeat's arguments are marked experimental, the callback renamed
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(storage, heartbeat_interval=max(1, math.ceil(heartbeat_s)),
                                              grace_period=max(1, math.ceil(heartbeat_s * STALE_BEATS)),
                                              failed_trial_callback=retry)
    except ImportError as exc:
        raise StudyError(f"storage: {storage.split(':')[0]} needs a database driver that is not installed "
                         f"({exc.name}); install it, or use a journal file path") from None
    except Exception as exc:  # SQLAlchemy's errors: a server that does not answer, a bad URL, refused login
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"storage: cannot reach {storage} ({first}); check the URL and that the database "
                         f"answers") from None


_JOURNAL_CLASS: list[type] = []


def _beating_journal(optuna: Any) -> type:
    """Optuna's JournalStorage with the heartbeat its RDB storage has: beats kept as a trial system attribute."""
    if _JOURNAL_CLASS:
        return _JOURNAL_CLASS[0]
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class BeatingJournal(optuna.storages.JournalStorage, BaseHeartbeat):
        def __init__(self, backend: Any, heartbeat_s: float, callback: Callable | None) -> None:
            super().__init__(backend)
            self.heartbeat_s, self.callback = heartbeat_s, callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                    if now - _last_sign(t) > self.heartbeat_s * STALE_BEATS]

        def get_heartbeat_interval(self) -> float:
            return self.heartbeat_s

        def get_heartbeat_stale_trial_callback(self) -> Callable | None:
            return self.callback

    _JOURNAL_CLASS.append(BeatingJournal)
    return BeatingJournal


def _last_sign(trial: Any) -> float:
    """When a running trial last showed it lives: its last beat, or its start (a retry carries its
    predecessor's beat, older than its own start)."""
    started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return max(float(trial.system_attrs.get(BEAT_ATTR, 0.0)), started)


# -- where the run store may live ------------------------------------------------------------------------------
MOUNTS = "/proc/mounts"
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs")


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The type of the network filesystem (NFS, CIFS, a FUSE mount) that `path` lives on; None when it is local."""
    try:
        lines = Path(mounts or MOUNTS).read_text().splitlines()
    except OSError:
        return None  # no /proc: nothing to tell
    path = Path(path).expanduser().resolve()
    best, kind = "", ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (path == Path(point) or Path(point) in path.parents) and len(point) >= len(best):
            best, kind = point, parts[2]
    if kind in NETWORK_FILESYSTEMS or kind.startswith("fuse") and kind not in ("fuseblk", "fusectl"):
        return kind
    return None


def check_local_store(path: Path, mounts: str | None = None) -> None:
    kind = network_filesystem(path, mounts)
    if kind:
        raise StudyError(f"runs dir: {path} is on a network filesystem ({kind}), where the run store's SQLite WAL "
                         f"cannot work across hosts; keep runs on local disk (the default) and share the study "
                         f"instead (--storage)")
