"""`scratch-tui sweep` waiting on its queued runs notices that the queue's runner is gone (killed, crashed): it
starts it again and says so, and gives up in one line once the runner keeps dying; `queue ls` says how to start
it. The runner here is a stand-in whose process is never there, so nothing trains."""

import re
import subprocess
import sys

from tui_trainer.cli import sweep as sweep_cli
from tui_trainer.engine.events import RunFinished
from tui_trainer.runs import queue as run_queue
from tui_trainer.runs.store import RunStore

from .test_queue_cli import run_cli
from .test_sweep_cli import SMOKE


def dead_pid() -> int:
    """The pid of a process that has ended: a runner that died at once."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_runner_that_dies_is_started_again_and_one_that_keeps_dying_is_said(runs_home, capsys, monkeypatch):
    gone = dead_pid()
    starts = []

    def runner_that_dies(store):
        starts.append(gone)
        return gone

    monkeypatch.setattr(run_queue, "start_runner", runner_that_dies)
    monkeypatch.setattr(sweep_cli, "RUNNER_CHECK_S", 0.0)
    monkeypatch.setattr(sweep_cli, "POLL_S", 0.01)
    code, out, err = run_cli(["sweep", SMOKE], capsys)
    assert code == 1 and len(starts) == 1 + run_queue.RUNNER_RESTARTS  # the first start, then each restart
    assert out.count("The queue's runner had gone with runs of the sweep still queued; started it again") == 3
    assert re.fullmatch(r"scratch-tui sweep: error: the queue's runner keeps ending while 4 runs waited \(started "
                        r"again 3 times\); see \S+queue-runner.log, then `scratch-tui queue start` starts it again\n",
                        err), err
    code, out, _ = run_cli(["queue", "ls"], capsys)
    said = "Runner: not running; 1 run at a time per device; 4 runs waiting: `scratch-tui queue start` starts it"
    assert code == 0 and said in out

    def runner_that_finishes_them(store):  # a runner that lives: the sweep's runs end, the wait with them
        with RunStore(runs_home) as own:
            for run in run_queue.queued(own):
                own.append(run.id, RunFinished(epochs_done=1, seconds=0.1))
        return gone

    monkeypatch.setattr(run_queue, "start_runner", runner_that_finishes_them)
    with RunStore(runs_home) as store:
        sweep_id = store.list_runs()[0].sweep_id
        ids = [r.id for r in store.list_runs(sweep=sweep_id)]
        ended = sweep_cli._wait(store, sweep_id, ids, sys.stdout, runner=None)
    assert ended == {run_id: "finished" for run_id in ids}
    assert "started it again" in capsys.readouterr().out
