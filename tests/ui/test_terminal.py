"""The real app in a real terminal (tmux), driven with keys as a person would over SSH.

A run started with F5 belongs to no terminal: killing the whole tmux session (what a dropped
SSH connection does to the programs in it) or SIGKILL to the app leaves it training to the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_trainer.runs.store import RunStore

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
EPOCHS = 40
SETTINGS = f'epochs = {EPOCHS}\nmax_train_samples = 1000\nname = "survivor"\ndevice = "cpu"\n'


class Terminal:
    def __init__(self, home: Path, name: str) -> None:
        self.name = name
        # a server of its own per terminal: nothing of the user's is touched, and a terminal killed just
        # before cannot take the next one down with it
        self.socket = str(home / f"tmux-{name}.sock")
        app = f"{sys.executable} -m tui_trainer"
        self.tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24",
                  f"env SCRATCH_TUI_HOME={home} TERM=xterm-256color {app}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True,
                              timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", self.name, "-p")

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never showed; the screen was:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text not in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never went; the screen was:\n{self.screen()}")

    def wait_until_footer_is_whole(self, timeout: float = 15.0) -> str:
        """The footer, once no notification covers it (a toast sits over the bottom right for a while)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if footer_is_whole(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the footer was cut or covered; the screen was:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def tab(self, times: int) -> None:
        """Tab, one press at a time, as a person does: a burst can land before the focus moved."""
        for _ in range(times):
            self.keys("Tab")
            time.sleep(0.15)

    def fill(self, text: str, timeout: float = 30.0) -> str:
        """Replace what a prompt offers with `text`, once its input has the focus. Keys sent before it takes
        the focus (a busy machine) go to the screen beneath, so they are sent again until the text shows."""
        deadline = time.monotonic() + timeout
        time.sleep(0.3)
        while True:
            self.keys("C-u")
            self.keys("-l", text)  # literally, not as key names
            try:
                return self.wait_for(text, timeout=2)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def answer(self, text: str) -> None:
        """Replace what a prompt offers with `text` and accept it."""
        self.fill(text)
        self.keys("Enter")

    def app_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").strip())

    def kill_server(self) -> None:
        self.tmux("kill-server")


def start_a_run(home: Path, name: str, epochs: int = EPOCHS) -> tuple[Terminal, str]:
    settings = home / "settings.toml"
    settings.write_text(SETTINGS.replace(f"epochs = {EPOCHS}", f"epochs = {epochs}"))
    term = Terminal(home, name)
    term.wait_for("f5 Start")
    term.keys("C-o")  # load the settings from TOML, as a user would with a saved recipe
    term.wait_for("Load config from TOML")
    time.sleep(0.3)  # the prompt's input takes the focus just after it is drawn
    term.keys(str(settings), "Enter")
    term.wait_for(f"--epochs {epochs}")
    term.keys("F5")
    screen = term.wait_for("· started here")
    run_id = screen.split("run ", 1)[1].split(" ", 1)[0]
    term.wait_for("Training —")  # training, and drawn (epoch lines can scroll by faster than a poll)
    return term, run_id


def wait_until_ended(home: Path, run_id: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    with RunStore(home) as store:
        while time.monotonic() < deadline:
            record = store.get_run(run_id)
            if record.status != "running":
                return record, store.evaluation(run_id)
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} was still running after {timeout}s")


def test_killing_the_terminal_leaves_the_run_training_to_its_end(tmp_path):
    term, run_id = start_a_run(tmp_path, "ssh")
    term.kill_server()  # every program in the terminal gets SIGHUP, as when SSH drops
    with RunStore(tmp_path) as store:  # still training when its terminal went: else this test proves nothing
        assert store.get_run(run_id).epochs_done < EPOCHS
    record, evaluation = wait_until_ended(tmp_path, run_id)
    assert (record.status, record.epochs_done) == ("finished", EPOCHS)
    assert evaluation is not None and evaluation.test_acc > 50


def test_sigkill_to_the_app_leaves_the_run_training_and_a_new_app_attaches(tmp_path):
    # long enough to be training still when the new app opens, however quick the machine; stopped from there
    term, run_id = start_a_run(tmp_path, "kill", epochs=2000)
    os.kill(term.app_pid(), signal.SIGKILL)
    term.kill_server()
    again = Terminal(tmp_path, "again")
    try:
        again.wait_for(f"Still training: {run_id}")  # the app says what is still going when it opens
        again.keys("F2")
        again.wait_for("survivor")
        again.keys("Enter")  # open the run: its whole history, then live
        again.wait_for(f"run {run_id} · attached")
        again.wait_for("Training —")
        again.keys("s")  # the new app steers the run the old one started
        again.wait_for("Stop run")  # after asking
        again.keys("s")
        again.wait_for("Stopped after")
    finally:
        again.kill_server()
    record, _ = wait_until_ended(tmp_path, run_id)
    assert record.status == "stopped" and 0 < record.epochs_done < 2000


def test_a_sweep_from_the_app_alone_outlives_the_session_and_opens_its_best_run(tmp_path):
    """Issue 10's whole road, keys only at 80x24: lr over log-spaced values x 2 seeds, leave, come back
    over a new session, read the sweep's table, open its best run's evaluation. (Two values, not the
    issue's four: each run is a process of its own, about 3 s here, and the road is the same.)"""
    settings = tmp_path / "tiny.toml"
    settings.write_text('epochs = 1\nmax_train_samples = 256\ndevice = "cpu"\n')
    term = Terminal(tmp_path, "sweep")
    try:
        term.wait_for("f5 Start")
        term.keys("C-o")
        term.wait_for("Load config from TOML")
        time.sleep(0.3)  # the prompt's input takes the focus just after it is drawn
        term.keys(str(settings), "Enter")
        term.wait_for("--epochs 1")
        time.sleep(0.5)  # the prompt closing hands the focus back to the form
        term.tab(7)  # device, dataset, model, hidden, init, epochs, batch size: then the learning rate
        term.keys("F4")
        term.wait_for("Sweep learning rate")
        term.answer("log 1e-3 1e-1 2")
        term.wait_for("log 0.001…0.1 ×2")
        term.tab(10)  # on to the seed
        term.keys("F4")
        term.wait_for("Seeds: each config")
        term.answer("0,1")
        term.wait_for("sweep: 2 × 2 seeds = 4 runs")
        term.keys("F7")
        term.wait_for("Name the sweep of 4 runs")
        term.keys("Enter")
        term.wait_for("Sweep queued")
    finally:
        term.kill_server()  # the SSH session drops
    with RunStore(tmp_path) as store:
        runs = store.list_runs()
        assert len(runs) == 4 and len({r.sweep_id for r in runs}) == 1
        sweep_id = runs[0].sweep_id
        deadline = time.monotonic() + 150
        while any(r.status != "finished" for r in store.list_runs()):
            assert time.monotonic() < deadline, [r.status for r in store.list_runs()]
            time.sleep(0.5)
        best = max(store.list_runs(), key=lambda r: r.test_acc)
    again = Terminal(tmp_path, "back")
    try:
        again.wait_for("f5 Start")
        again.keys("F2")
        again.wait_for(f"{sweep_id}  sweep-lr")  # the sweep's header row, first
        again.wait_for("4/4 done")
        again.keys("Enter")
        table = again.wait_for("2 configs")
        assert "2/2" in table and "±" in table
        again.keys("Enter")  # the top row: its best run
        again.wait_for(f"run {best.id}")
        again.wait_for("Test accuracy")
    finally:
        again.kill_server()


def footer_is_whole(screen: str) -> bool:
    """The footer's keys end before the palette's, with room to spare: no label is cut."""
    footer = screen.rstrip("\n").splitlines()[-1].rstrip()
    return footer.endswith("^p palette") and " ▏^p palette" in footer


def test_a_whole_session_at_80x24_by_keys_alone(tmp_path):
    settings = tmp_path / "short.toml"
    settings.write_text('epochs = 60\nmax_train_samples = 600\nname = "tour"\ndevice = "cpu"\n')
    term = Terminal(tmp_path, "tour")
    try:
        term.wait_for("f5 Start")
        term.wait_until_footer_is_whole()
        # the prompts' explanations fit 80x24 to their last word (they were cut at the dialog's edge)
        term.keys("F4")
        term.wait_for("unmarks.")  # the explanation's last word, wrapped onto a line of its own
        term.keys("Escape")
        term.wait_gone("unmarks.")
        term.keys("C-s")
        screen = term.wait_for("directory):")
        assert "Save config to TOML file (inside the working" in screen
        term.keys("Escape")
        term.wait_gone("directory):")
        term.keys("C-o")
        term.wait_for("Load config from TOML")
        time.sleep(0.3)  # the prompt's input takes the focus just after it is drawn
        term.keys(str(settings), "Enter")
        term.wait_for("--epochs 60")
        term.keys("F5")
        term.wait_for("· started here")
        term.wait_for("Training —")
        term.keys("Space")
        term.wait_for("Paused — space resumes")
        term.wait_until_footer_is_whole()  # paused: the run cannot end while the footer is checked
        term.keys("C-q")  # the quit dialog's sentence on how to come back, whole
        screen = term.wait_for("brings it back.")
        assert "It keeps training after you quit;" in screen
        term.keys("Escape")
        term.wait_gone("brings it back.")
        term.keys("s")  # asks before it stops
        term.wait_for("resumes it later.")
        term.keys("Escape")
        term.wait_gone("resumes it later.")
        assert "Paused — space resumes" in term.screen()
        term.keys("i")  # the Layers view: the init check's verdict above one row per layer
        term.wait_for("Layers at step")
        term.wait_for("layers.0")
        term.keys("Enter")  # the highlighted layer's histograms, all three within 24 lines
        screen = term.wait_for("gradients")
        assert "activations" in screen and "weights" in screen
        term.wait_until_footer_is_whole()
        term.keys("Escape")
        term.wait_for("Layers at step")
        term.keys("Escape")
        term.wait_for("Paused — space resumes")
        term.keys("l")
        term.wait_for("New learning rate:")
        term.fill("0.0005")  # the current rate cleared, the new one typed
        term.keys("Enter")
        term.wait_for("Learning rate set to 0.0005")
        term.keys("Space")
        term.wait_for("Training —")

        screen = term.wait_for("Finished 60 epochs", timeout=120)
        assert "test accuracy" in screen

        term.keys("e")
        screen = term.wait_for("1 Per class")
        assert "Test accuracy" in screen
        term.wait_until_footer_is_whole()
        term.keys("2")
        term.wait_for("Trouser")  # the confusion matrix names the classes
        term.keys("3")
        term.wait_for("samples")
        term.keys("Escape")
        term.wait_for("Finished 60 epochs")

        term.keys("F2")
        screen = term.wait_for("tour")
        assert "finished" in screen
        term.wait_until_footer_is_whole()
        term.keys("Escape")
        term.wait_for("Finished 60 epochs")
        term.keys("C-q")  # the run has ended: quitting asks nothing
        deadline = time.monotonic() + 10
        while "tour" in term.tmux("list-sessions") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "tour" not in term.tmux("list-sessions")
    finally:
        term.kill_server()
