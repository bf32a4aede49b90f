"""Sweeps as Optuna studies (runs/study.py, cli/study.py): two boxes, each with its own HOME and run store, share one
journal file and finish a TPE study together, even when one box is killed mid-trial; bad input is one line, exit 2."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_trainer.runs import study as study_module
from tui_trainer.runs import study_storage
from tui_trainer.runs.queue import set_pack_size, set_per_device
from tui_trainer.runs.store import RunStore

from .test_queue_cli import run_cli, wait_until

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
BASE = """dataset = "fashion-mnist-mini"
max_train_samples = 128
epochs = 1
device = "cpu"
monitor = "val_acc"
hidden = [8]
"""


def sweep_file(tmp_path, table, name="study.toml"):
    path = tmp_path / name
    path.write_text(BASE + "\n[sweep]\n" + table)
    return path


def box_env(home):
    env = dict(os.environ, SCRATCH_TUI_HOME=str(home / "runs"), HOME=str(home), PYTHONPATH=str(ROOT))
    return env


def test_two_boxes_share_one_study_and_lose_no_trial_to_kill_9(tmp_path, capsys, monkeypatch):
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()
    spec = sweep_file(tmp_path, 'search = "tpe"\nsamples = 12\nlr = {log = [1e-3, 1e-1]}\nheartbeat = 2\n')
    box_a, box_b = tmp_path / "a", tmp_path / "b"
    # box A trains one trial at a time, alone (the one killed is then its only one); box B draws a slot's worth,
    # up to 8 trials of one shape, and trains them as one pack: the test's time is mostly starting processes
    for box, pack in ((box_a, 1), (box_b, 8)):
        with RunStore(box / "runs") as store:
            set_per_device(store, 1)
            set_pack_size(store, pack)
    monkeypatch.setenv("SCRATCH_TUI_HOME", str(box_a / "runs"))
    code, out, err = run_cli(["sweep", str(spec), "--storage", str(journal), "--study", "two", "--detach"], capsys)
    assert code == 0, err
    sweep_id = re.search(r"sweep (\w{8}), 12 trials, search tpe", out).group(1)

    store_a = RunStore(box_a / "runs")
    runner_a = int(re.search(r"Started the queue's runner \(pid (\d+)\)", out).group(1))
    worker_b = subprocess.Popen([sys.executable, "-m", "tui_trainer", "worker", "--storage", str(journal), "--study",
                                 "two"], env=box_env(box_b), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # box A is lost mid-trial: its runner and the run it trains, kill -9
        def training_on_a():  # a run of A's trained by its own process (while it starts, the runner's pid stands)
            return [record for record in (store_a.get_run(r.id) for r in store_a.list_runs(sweep=sweep_id))
                    if record.status == "running" and record.epochs_done == 0 and record.pid not in (None, runner_a)]

        wait_until(lambda: training_on_a(), 60, "box A to train a trial")
        victim = training_on_a()[0]
        os.kill(runner_a, signal.SIGKILL)
        os.kill(victim.pid, signal.SIGKILL)
        out_b, _ = worker_b.communicate(timeout=180)
    finally:
        worker_b.kill()
    assert worker_b.returncode == 0, out_b

    opened = study_module.load(study_module.StudyLink(str(journal), "two"))
    trials = opened.study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(complete) == 12
    assert [t.user_attrs["run_id"] for t in failed] == [victim.id]  # the killed trial, and no other, failed
    retry = next(t for t in complete if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.params == failed[0].params and retry.user_attrs["run_id"] != victim.id

    # each complete trial is one finished run in one box's store; no run trained twice, none lost
    store_b = RunStore(box_b / "runs")
    finished = {r.id for s in (store_a, store_b) for r in s.list_runs(sweep=sweep_id) if r.status == "finished"}
    assert sorted(finished) == sorted(t.user_attrs["run_id"] for t in complete)
    assert {store_b.get_run(t.user_attrs["run_id"]).host for t in complete
            if t.user_attrs["run_id"] not in {r.id for r in store_a.list_runs()}} == {store_b.host}
    assert store_a.get_run(victim.id).status != "finished"
    # box B drew a slot's worth of trials of one shape at a time and trained them as packs
    from tui_trainer.engine.events import RunStarted

    packs = [e.pack for r in store_b.list_runs(sweep=sweep_id) for _, e in store_b.events(r.id)
             if isinstance(e, RunStarted)]
    processes = len(set(packs) - {""}) + packs.count("")  # a pack's members share one; a trial drawn alone has its own
    assert processes < len(packs) / 2, packs

    # `sweep show` on box B lists all 12 with their hosts and run ids
    monkeypatch.setenv("SCRATCH_TUI_HOME", str(box_b / "runs"))
    code, out, err = run_cli(["sweep", "show", sweep_id], capsys)
    assert code == 0, err
    rows = re.findall(r"^(\d+)\s+complete\s+(\S+)\s+([0-9a-f]{8})\s", out, re.M)
    assert len(rows) == 12 and {host for _, host, _ in rows} == {store_b.host}
    assert sorted(run for *_, run in rows) == sorted(finished)
    assert re.search(rf"^{failed[0].number}\s+fail\s+\S+\s+{victim.id}", out, re.M)
    assert "Best config: lr=" in out


TPE = 'search = "tpe"\nsamples = 4\nlr = {log = [1e-3, 1e-1]}\n'


@pytest.mark.parametrize("table, args, says", [
    ('search = "bayes"\nsamples = 4\nlr = [0.01, 0.1]\n', [], "sweep.search: got 'bayes'; choose one of tpe, random, grid, qmc"),
    ('search = "tpe"\npruner = "fast"\nsamples = 4\nlr = [0.01, 0.1]\n', [],
     "sweep.pruner: got 'fast'; choose one of asha, hyperband, median, none"),
    (TPE, ["--storage", "sqlite:////nonexistent/folder/s.db", "--study", "s"], "storage: cannot reach sqlite:////nonexistent"),
    (TPE, ["--storage", "/nonexistent/folder/s.journal", "--study", "s"],
     "storage: the folder of journal file /nonexistent/folder/s.journal does not exist"),
    (TPE, ["--parallel", "2"], "--parallel: not with a study"),
    (TPE, ["--halving", "9"], "--halving: got 9; must be an epoch the runs reach, from 1 to 1"),
])
def test_bad_study_input_is_one_line_and_exit_2(tmp_path, capsys, runs_home, table, args, says):
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, table)), *args, "--detach"], capsys)
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert not (runs_home / "logs").exists()  # no runner started: nothing was queued


def test_a_study_refuses_another_space_a_shared_sqlite_and_a_runs_dir_on_nfs(tmp_path, capsys, runs_home,
                                                                            monkeypatch):
    from tui_trainer.runs.queue import pause_queue

    with RunStore(runs_home) as store:
        pause_queue(store)  # the study is made, nothing trains
    journal = tmp_path / "s.journal"
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--storage", str(journal), "--study", "s",
                              "--detach"], capsys)
    assert code == 0, err
    other = sweep_file(tmp_path, 'search = "tpe"\nsamples = 4\nlr = {log = [1e-4, 1e-1]}\n', "other.toml")
    code, out, err = run_cli(["sweep", str(other), "--storage", str(journal), "--study", "s"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "study 's' in " in err and "has another search space than this file (params: lr differ)" in err

    # SQLite is for one box: a second host joining the same database is refused
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--storage", db, "--study", "q", "--detach"],
                             capsys)
    assert code == 0, err
    monkeypatch.setattr("socket.gethostname", lambda: "another-box")
    code, out, err = run_cli(["worker", "--storage", db, "--study", "q"], capsys)
    assert code == 2 and err.count("\n") == 1 and "SQLite" in err and "cannot be shared between boxes" in err, err

    # a run store on NFS: one line saying keep runs local and share the study
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path / 'nfs'} nfs4 rw 0 0\n")
    monkeypatch.setattr(study_storage, "MOUNTS", str(mounts))
    code, out, err = run_cli(["worker", "--storage", str(journal), "--study", "s", "--runs-dir",
                              str(tmp_path / "nfs" / "runs")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "is on a network filesystem (nfs4)" in err and "keep runs on local disk" in err and "--storage" in err
    assert not (tmp_path / "nfs").exists()  # refused before a store was made there


def test_a_worker_joining_a_study_the_storage_has_not_got_is_refused_and_makes_nothing(tmp_path, capsys, runs_home):
    import optuna

    journal = tmp_path / "s.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    for n in range(7):
        optuna.create_study(study_name=f"s{n}", storage=storage)
    size = journal.stat().st_size
    code, out, err = run_cli(["worker", "--storage", str(journal), "--study", "nope"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"no study 'nope' in {journal} (it holds 's0', 's1', 's2', 's3', 's4' and 2 more); give one of those" in err
    assert journal.stat().st_size == size  # no study made, nothing written

    # a journal file or an SQLite database that is not there: said so, and not made empty
    for storage, path in ((str(tmp_path / "none.journal"), tmp_path / "none.journal"),
                          (f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "none.db")):
        code, out, err = run_cli(["worker", "--storage", storage, "--study", "s0"], capsys)
        assert code == 2 and err.count("\n") == 1 and f"no study 's0' in {storage} (no such file)" in err, err
        assert not path.exists()
    with RunStore(runs_home) as store:
        assert store.settings_under(study_module.LINK) == []  # this box joined nothing


def test_without_optuna_the_study_flags_name_the_extra(tmp_path, capsys, runs_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--detach"], capsys)
    assert code == 2 and "needs Optuna, which is not installed; install the sweep extra: pip install " \
                          "'scratch-tui[sweep]'" in err, err
    # a plain sweep file with --halving becomes a study too: the flag is named
    plain = sweep_file(tmp_path, "lr = [0.01, 0.1]\n", "plain.toml")
    code, out, err = run_cli(["sweep", str(plain), "--halving", "1", "--detach"], capsys)
    assert (code, out) == (2, "") and err == ("scratch-tui sweep: error: --halving needs Optuna, which is not "
                                              "installed; install the sweep extra: pip install 'scratch-tui[sweep]'\n")


def test_slurm_workers_through_submitits_local_executor_finish_a_study(tmp_path, capsys, runs_home, monkeypatch):
    """Without Slurm here, `--slurm` hands the workers to submitit's local executor: a 2-task array joins the
    study (one runner per store: the second task finds the first at work) and trains its trial."""
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: -1))  # as on a box without Slurm
    journal = tmp_path / "s.journal"
    spec = sweep_file(tmp_path, 'search = "grid"\nlr = [0.01]\n')
    code, out, err = run_cli(["sweep", str(spec), "--storage", str(journal), "--study", "slurm", "--slurm",
                              "--array", "2", "--time", "00:10:00"], capsys)
    assert code == 0, err
    assert re.search(r"Submitted 2 workers to submitit's local executor \(no Slurm here\): job ids \d+ \d+", out)
    sweep_id = re.search(r"sweep (\w{8})", out).group(1)
    opened = study_module.load(study_module.StudyLink(str(journal), "slurm"))
    wait_until(lambda: sum(t.state.name == "COMPLETE" for t in opened.study.get_trials()) == 1, 120,
               "the workers to finish the study")
    code, out, err = run_cli(["sweep", "show", sweep_id], capsys)
    assert code == 0 and len(re.findall(r"^\d+\s+complete\s", out, re.M)) == 1


def test_bad_slurm_input_is_one_line(tmp_path, capsys, runs_home, monkeypatch):
    db = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--storage", db, "--study", "q", "--slurm"],
                             capsys)
    assert code == 2 and err.count("\n") == 1 and "SQLite" in err and "cannot be shared by Slurm's workers" in err
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--storage", str(tmp_path / "j"), "--study",
                              "q", "--slurm", "--time", "soon"], capsys)
    assert code == 2 and "time: got 'soon'" in err
    monkeypatch.setitem(sys.modules, "submitit", None)
    code, out, err = run_cli(["sweep", str(sweep_file(tmp_path, TPE)), "--slurm"], capsys)
    assert code == 2 and "Slurm workers need submitit, which is not installed; install the slurm extra: pip install " \
                          "'scratch-tui[slurm]'" in err


@pytest.fixture
def slurm_node(tmp_path_factory, monkeypatch):
    """A real single-node Slurm on loopback (bench/slurm_node.sh: munged, slurmctld, slurmd); skipped, saying why,
    where it cannot start."""
    if not all(shutil.which(p) for p in ("slurmctld", "slurmd", "munged", "sbatch")):
        pytest.skip("Slurm is not installed (apt-get install -y slurm-wlm munge); bench/slurm_node.sh checks by hand")
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root here; bench/slurm_node.sh checks by hand")
    folder = tmp_path_factory.mktemp("slurm")
    script = ROOT / "bench" / "slurm_node.sh"
    started = subprocess.run([str(script), "start", str(folder)], capture_output=True, text=True, timeout=90)
    if started.returncode != 0:
        subprocess.run([str(script), "stop", str(folder)], timeout=30)
        pytest.skip(f"the Slurm node did not start: {(started.stderr or started.stdout).strip()[-200:]}")
    monkeypatch.setenv("SLURM_CONF", str(folder / "slurm.conf"))
    yield folder
    subprocess.run(["scancel", "--user", "root"], env=dict(os.environ, SLURM_CONF=str(folder / "slurm.conf")),
                   timeout=30)
    subprocess.run([str(script), "stop", str(folder)], timeout=30)


def test_a_real_single_node_slurm_finishes_a_sweep(slurm_node, tmp_path, capsys, runs_home):
    journal = tmp_path / "s.journal"
    spec = sweep_file(tmp_path, 'search = "grid"\nlr = [0.01, 0.1]\n')
    code, out, err = run_cli(["sweep", str(spec), "--storage", str(journal), "--study", "real", "--slurm",
                              "--array", "2", "--time", "5"], capsys)
    assert code == 0, err
    jobs = re.search(r"Submitted 2 workers to Slurm: job ids (\S+) (\S+);", out).groups()
    assert f"squeue -j {jobs[0].split('_')[0]}" in out
    opened = study_module.load(study_module.StudyLink(str(journal), "real"))
    wait_until(lambda: sum(t.state.name == "COMPLETE" for t in opened.study.get_trials()) == 2, 150,
               "the Slurm workers to finish the study")
