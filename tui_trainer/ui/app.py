"""TrainerApp: the screens, the global keys, and the worker threads that run or follow the engine."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..runs.child import ChildRun
from ..engine.config import TrainConfig
from ..engine.control import TrainingControl
from ..engine.data import DatasetUnavailable, DownloadProgress, dataset_status
from ..engine.devices import DeviceError, DeviceInfo, list_devices
from ..engine.events import EvaluationEnded, Event, RunFailed, event_from_dict
from ..runs.store import RunNotFound, RunStore, StoreError
from .history import STATE_IDLE, STATE_PAUSED, STATE_RUNNING, RunHistory
from .messages import EngineEvent
from .screens.evaluate import EvaluationScreen
from .screens.help import HELP_IN_FOOTER, HelpScreen, TooSmallScreen, key_display
from .screens.prompt import PromptScreen
from .screens.runs import RunsScreen
from .screens.setup import SetupScreen
from .screens.train import TrainScreen

# (config, control, download progress callback) -> the engine's event stream
EngineFactory = Callable[[TrainConfig, TrainingControl, DownloadProgress], Iterable[Event]]

MIN_WIDTH, MIN_HEIGHT = 70, 20


class StoreControl:
    """Steers a run that another process trains, through the run store's control queue."""

    def __init__(self, store: RunStore, run_id: str, history: RunHistory) -> None:
        self.store, self.run_id, self.history = store, run_id, history

    @property
    def paused(self) -> bool:
        return self.history.state == STATE_PAUSED

    def toggle_pause(self) -> None:
        self.store.send_control(self.run_id, "resume" if self.paused else "pause")

    def stop(self) -> None:
        self.store.send_control(self.run_id, "stop")

    def set_lr(self, lr: float) -> None:
        self.store.send_control(self.run_id, "set_lr", lr)

    def request_checkpoint(self) -> None:
        self.store.send_control(self.run_id, "checkpoint")


class TrainerApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "scratch-tui"
    BINDINGS = [
        Binding("f2", "runs", "Runs"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, engine: EngineFactory | None = None, devices: list[DeviceInfo] | None = None,
                 dataset_status: Callable[[str], str] | None = None, config: TrainConfig | None = None,
                 store: RunStore | None = None, attach: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.engine = engine or self._child_engine
        self.devices = devices if devices is not None else list_devices()
        self._dataset_status = dataset_status
        self.initial_config = config or TrainConfig()
        self.history = RunHistory()
        self.control: TrainingControl | StoreControl | None = None
        self.active_events: Iterable[Event] | None = None  # what the training worker iterates
        self.attached_run: str | None = None
        self._attach_first = attach
        self._follow_stop = threading.Event()
        self.last_config: TrainConfig = self.initial_config
        self._first_screen_up = False  # resize events can arrive before the first screen is up

    def dataset_status(self, name: str) -> str:
        if self._dataset_status:
            return self._dataset_status(name)
        return dataset_status(name, self.last_config.data_dir)

    def run_store(self) -> RunStore | None:
        """The store, opened on first use; None (with a notice) when it cannot be opened."""
        if self.store is None:
            try:
                self.store = RunStore()
            except StoreError as exc:
                self.notify(f"Runs are not recorded: {exc}", severity="error", timeout=10, markup=False)
        return self.store

    async def on_mount(self) -> None:
        await self.push_screen(SetupScreen(self.initial_config))
        self._first_screen_up = True
        self._check_size()
        if self._attach_first:
            self.attach(self._attach_first)

    # -- screens -----------------------------------------------------------
    def show_setup(self) -> None:
        self._show_main(SetupScreen(self.last_config))

    def _show_main(self, screen: Screen) -> None:
        """Make `screen` the one main screen: a run opened from the runs screen (or the help, or an
        evaluation) replaces what lay beneath it instead of piling a second training screen up."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, TooSmallScreen):
            self.pop_screen()
        self.switch_screen(screen)

    def show_evaluation(self, evaluation: EvaluationEnded) -> None:
        s = self.history.started
        title = f" · {s.config['model']} on {s.dataset_title}" if s else ""
        self.push_evaluation(evaluation, title)

    def push_evaluation(self, evaluation: EvaluationEnded, title: str) -> None:
        self.push_screen(EvaluationScreen(evaluation, title))

    def action_runs(self) -> None:
        if isinstance(self.screen, RunsScreen):
            return
        store = self.run_store()
        if store is not None:
            self.push_screen(RunsScreen(store))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in [*getattr(screen, "BINDINGS", []), *self.BINDINGS]:
            if isinstance(binding, Binding) and binding.description and binding is not HELP_IN_FOOTER:
                yield SystemCommand(binding.description, f"key: {key_display(self, binding.key)}",
                                    lambda action=binding.action, s=screen: self.run_action(action, s))

    # -- terminal size -----------------------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)

    def _check_size(self, size: Size | None = None) -> None:
        if not self._first_screen_up:
            return
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen(MIN_WIDTH, MIN_HEIGHT))
        elif not small and showing:
            self.pop_screen()

    # -- training in this process ---------------------------------------------
    def _child_engine(self, config: TrainConfig, control: TrainingControl,
                      progress: DownloadProgress) -> Iterable[Event]:
        """Train in a child process: its own interpreter, so neither the UI nor the loop waits on the other."""
        store = self.run_store()
        return ChildRun.start(config, store.root if store is not None else None)

    def _busy(self) -> bool:
        if self.history.is_active and self.attached_run is None:
            self.notify("A run is already in progress.", severity="warning")
            return True
        return False

    def start_training(self, config: TrainConfig) -> None:
        if self._busy():
            return
        self.last_config = config
        control = TrainingControl()
        events = self.engine(config, control, lambda done, total, label: None)
        # A child-process run is steered through itself; an in-process one through `control`.
        self._run_in_worker(events, events if isinstance(events, ChildRun) else control)

    def resume(self, run_id: str, epochs: int | None = None) -> None:
        """Continue a stopped, interrupted or finished run from its last checkpoint, in a child process."""
        store = self.run_store()
        if store is None or self._busy():
            return
        try:
            record = store.get_run(run_id)
        except RunNotFound as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if record.status == "running":
            self.attach(record.id)
            return
        if epochs is None and record.epochs_done >= record.epochs:
            done = record.epochs_done

            def check(text: str) -> str | None:
                if not text.strip().isdigit() or int(text) <= done:
                    return f"epochs: got {text!r}; must be a whole number above {done}"
                return None

            self.push_screen(PromptScreen(f"Run {record.id} has trained {done} epochs. Train to how many in all?",
                                          str(done * 2), check),
                             lambda text: text and self.resume(record.id, int(text)))
            return
        self.last_config = record.train_config()
        past = [event_from_dict(e) for e in store.epochs(record.id)]
        run = ChildRun.start_resumed(record.id, epochs, store.root)
        self._run_in_worker(run, run, prefill=past)

    def _run_in_worker(self, events: Iterable[Event], control, prefill: list[Event] = ()) -> None:
        self._detach_viewer()
        self.history = RunHistory()
        for event in prefill:
            self.history.apply(event)
        self.control = control
        self.active_events = events
        self._show_main(TrainScreen(self.history))
        # On the App, not the screen: a worker dies with the node that started it.
        self.run_worker(lambda: self._train(events), thread=True, exit_on_error=False,
                        group="training", name="training")

    def _train(self, events: Iterable[Event]) -> None:
        """Runs in the worker thread: touches no widget, only posts messages."""
        try:
            for event in events:
                self.post_message(EngineEvent(event))
        except (DatasetUnavailable, DeviceError, StoreError) as exc:
            self.post_message(EngineEvent(RunFailed(message=str(exc))))

    def request_checkpoint(self) -> bool:
        target = self.control if isinstance(self.control, StoreControl) else self.active_events
        request = getattr(target, "request_checkpoint", None)
        if request is None or not self.history.is_active:
            return False
        request()
        return True

    # -- runs in other processes ----------------------------------------------
    def attach(self, run_id: str) -> None:
        """Show a run that another process trains, live, by following the store."""
        store = self.run_store()
        if store is None or self._busy():
            return
        try:
            run_id = store.resolve(run_id)
        except RunNotFound as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._detach_viewer()
        self.attached_run = run_id
        self.history = RunHistory()
        self.control = StoreControl(store, run_id, self.history)
        self._show_main(TrainScreen(self.history))
        stop = self._follow_stop = threading.Event()
        self.run_worker(lambda: self._follow(store, run_id, stop), thread=True, exit_on_error=False,
                        group="following", name=f"follow {run_id}")

    def _follow(self, store: RunStore, run_id: str, stop: threading.Event) -> None:
        for event in store.follow(run_id, stop=stop):
            self.post_message(EngineEvent(event))

    def _detach_viewer(self) -> None:
        """Stop following an attached run; the run itself goes on."""
        self._follow_stop.set()
        self.attached_run = None

    def detach_new(self, config: TrainConfig) -> None:
        """Start the config in a background process of its own, then follow it."""
        store = self.run_store()
        if store is None:
            return
        self.last_config = config
        self.notify("Starting a detached run…")
        self.run_worker(lambda: self._spawn_detached(config, store.root), thread=True, exit_on_error=False,
                        group="detach")

    def _spawn_detached(self, config: TrainConfig, runs_dir: Path) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
            fh.write(config.to_toml())
        try:
            result = subprocess.run([sys.executable, "-m", "tui_trainer", "train", "--detach", "--jsonl",
                                     "--config", fh.name, "--runs-dir", str(runs_dir)],
                                    capture_output=True, text=True, timeout=120)
        finally:
            Path(fh.name).unlink(missing_ok=True)
        if result.returncode != 0:
            message = (result.stderr.strip().splitlines() or ["the background process did not start"])[-1]
            self.call_from_thread(self.notify, message, severity="error", timeout=10, markup=False)
            return
        run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
        self.call_from_thread(self.attach, run_id)

    # -- workers and quitting ----------------------------------------------
    def on_engine_event(self, message: EngineEvent) -> None:
        self.history.apply(message.event)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        unfinished = self.history.state in (STATE_IDLE, STATE_RUNNING, STATE_PAUSED)
        if event.worker.group in ("training", "following") and event.state == WorkerState.ERROR and unfinished:
            error = event.worker.error
            self.history.apply(RunFailed(message=f"{type(error).__name__}: {error}"))

    def action_quit(self) -> None:
        self._follow_stop.set()  # an attached run goes on without us
        if isinstance(self.control, (TrainingControl, ChildRun)) and self.history.is_active:
            self.control.stop()  # the loop ends itself at the next batch, with a checkpoint
        self.exit()


def run_app(attach: str | None = None) -> int:
    TrainerApp(attach=attach).run()
    return 0
