"""TrainerApp: the screens, the global keys, and the viewer of one run at a time.

Every run trains in a process of its own (runs/spawn.py), never in the app's; the app views
it through a RunHandle: the run's log replayed, then live, and commands sent back. Closing the
app, or losing the terminal, leaves the run training.
"""

from __future__ import annotations

import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..engine.commands import Command
from ..engine.config import SETTINGS, TrainConfig, applies
from ..engine.data import dataset_status
from ..engine.devices import DeviceInfo, list_devices
from ..engine.events import EvaluationEnded, RunFailed, RunStarted
from ..runs.evaluation import NoCheckpoint, checkpoint_path, evaluate_checkpoint
from ..runs import queue as run_queue, sweep_life
from ..runs.handle import RunHandle, RunLauncher, RunNotRunning
from ..runs.spawn import SpawnError
from ..runs.store import RunNotFound, RunStore, StoreError
from ..runs.sweep import SweepError, SweepSpec
from ..runs.view import RunView
from ..format import counted
from .collector import CHECK_EVERY_S, IdleCollector
from .messages import EngineEvent
from .model_files import model_refused
from .opening import cannot_open
from .screens.evaluate import EvaluationScreen
from .screens.help import HELP_IN_FOOTER, HelpScreen, TooSmallScreen, key_display
from .screens.prompt import PromptScreen
from .screens.queue import QueueScreen, runner_line
from .screens.quit import QuitScreen
from .screens.runs import RunsScreen
from .screens.setup import SetupScreen
from .screens.train import TrainScreen

MIN_WIDTH, MIN_HEIGHT = 70, 20


class Launcher(Protocol):
    """Where the app's runs come from: RunLauncher for real ones, a scripted one in tests."""

    def start(self, config: TrainConfig) -> RunHandle: ...

    def resume(self, run_id: str, epochs: int | None = None) -> RunHandle: ...

    def open(self, run_id: str) -> RunHandle: ...


@dataclass(frozen=True)
class Queued:
    """Runs just added to the queue: their ids and 1-based places in it, and a line on the runner."""

    ids: list[str]
    positions: list[int]
    sweep_id: str
    runner_line: str


class TrainerApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "scratch-tui"
    BINDINGS = [
        # in every screen's help and in the palette; the footers keep their 80 columns for the screen's keys
        Binding("f2", "runs", "Runs", show=False),
        Binding("f3", "queue", "Queue", tooltip="Queue: waiting runs, and the queue's runner", show=False),
        Binding("question_mark,f1", "help", "Help", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False),
    ]

    def __init__(self, launcher: Launcher | None = None, devices: list[DeviceInfo] | None = None,
                 dataset_status: Callable[[str], str] | None = None, config: TrainConfig | None = None,
                 store: RunStore | None = None, attach: str | None = None, models_dir: str | None = None) -> None:
        super().__init__()
        # where setup finds model files, and the only folders the app imports one from (`serve` hands the keyboard
        # to whoever holds its token): the working directory, and --models-dir
        self.models_dir = models_dir
        self.store = store
        self._launcher = launcher
        self.devices = devices if devices is not None else list_devices()
        self._dataset_status = dataset_status
        self.initial_config = config or TrainConfig()
        self.run_view = RunView()
        self.handle: RunHandle | None = None  # the run on the training screen
        self._attach_first = attach
        self._follow_stop = threading.Event()
        self._follow_worker: Worker | None = None
        self.last_config: TrainConfig = self.initial_config
        self.sweep_axes: dict = {}  # the fields setup marked to sweep, kept for the next setup screen
        self._first_screen_up = False  # resize events can arrive before the first screen is up
        self._kept_evaluation: EvaluationScreen | None = None
        self._setup: SetupScreen  # the main setup screen, from mount on (kept: see show_setup)
        self._collector = IdleCollector()

    def dataset_status(self, name: str) -> str:
        if self._dataset_status:
            return self._dataset_status(name)
        return dataset_status(name, self.last_config.data_dir)

    def model_folders(self) -> list[Path]:
        """The folders the app lists model files of and imports them from: the working directory first."""
        folders = [Path.cwd()]
        if self.models_dir:
            folders.append(Path(self.models_dir).expanduser())
        return folders

    def refuse_model(self, configs: list[TrainConfig]) -> bool:
        """True, saying why in one line, when a config's model file lies outside the folders the app imports from."""
        for config in configs:
            if applies("model_source", config) and (why := model_refused(config.model, self.model_folders())):
                self.notify(why, title="Refused", severity="error", timeout=10, markup=False)
                return True
        return False

    def run_store(self) -> RunStore | None:
        """The store, opened on first use; None (with a notice) when it cannot be opened."""
        if self.store is None:
            try:
                self.store = RunStore()
            except StoreError as exc:
                self.notify(f"Runs cannot be recorded: {exc}", severity="error", timeout=10, markup=False)
        return self.store

    def launcher(self) -> Launcher | None:
        if self._launcher is None and (store := self.run_store()) is not None:
            self._launcher = RunLauncher(store)
        return self._launcher

    async def on_mount(self) -> None:
        self._collector.start()
        self.set_interval(CHECK_EVERY_S, self._collector.tick)
        self._setup = SetupScreen(self.initial_config)
        self.install_screen(self._setup, "setup")
        await self.push_screen(self._setup)
        self._first_screen_up = True
        self._check_size()
        if self._attach_first:
            self.attach(self._attach_first)
        else:
            self._say_what_is_running()

    def _say_what_is_running(self) -> None:
        """Runs outlive the app: on the way back in, say which are still going and how to see them."""
        if self.store is None and self._launcher is not None:
            return  # a scripted launcher: no store of ours to look in
        store = self.run_store()
        try:
            going = [r for r in store.list_runs() if r.state.active] if store else []
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if going:
            names = ", ".join(f"{r.id} ({r.state})" for r in going[:3]) + (" …" if len(going) > 3 else "")
            self.notify(f"Still training: {names}. F2 lists them; Enter opens one.", timeout=15, markup=False)
        try:  # only a real store has a queue (a test's fixed list of runs has none)
            status = run_queue.runner_status(store) if isinstance(store, RunStore) else None
        except StoreError:
            status = None
        if status and status.waiting:
            paused = " (the queue is paused)" if status.paused else ""
            self.notify(f"{status.waiting} run{'s wait' if status.waiting != 1 else ' waits'} in the queue{paused}. "
                        "F3 shows it.", timeout=8, markup=False)

    # -- screens -----------------------------------------------------------
    def show_setup(self) -> None:
        """Setup with the last run's config. Its screen is kept and filled again: building the form anew
        (some 500 widgets) took a third of a second (bench/screen_switch.py)."""
        self._setup.refill(self.last_config, self.sweep_axes)
        self._show_main(self._setup)

    def _show_main(self, screen: Screen) -> None:
        """Make `screen` the one main screen: a run opened from the runs screen (or the help, or an
        evaluation) replaces what lay beneath it instead of piling a second training screen up."""
        if isinstance(self.screen, TooSmallScreen):
            self.pop_screen()
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(screen)
        self.call_after_refresh(self._check_size)  # still too small: the notice comes back on top

    def show_evaluation(self, evaluation: EvaluationEnded) -> None:
        s = self.run_view.started
        title = f" · {s.config.model} on {s.dataset_title} · {s.where()}" if s else ""
        self.push_evaluation(evaluation, title)

    def push_evaluation(self, evaluation: EvaluationEnded, title: str) -> None:
        """Show an evaluation. The last one's screen is kept (installed): `e`, Esc, `e` brings it back
        at once, on the tab and cell it was left at, instead of building it anew."""
        kept = self._kept_evaluation
        if kept is None or kept.evaluation is not evaluation or kept.title_text != title:
            if kept is not None and not any(kept in stack for stack in self._screen_stacks.values()):
                self.uninstall_screen(kept)
            kept = self._kept_evaluation = EvaluationScreen(evaluation, title)
            self.install_screen(kept, f"evaluation-{id(kept)}")
        if kept not in self.screen_stack:
            self.push_screen(kept)

    def action_runs(self) -> None:
        if isinstance(self.screen, RunsScreen):
            return
        store = self.run_store()
        if store is not None:
            self.push_screen(RunsScreen(store))

    def action_queue(self) -> None:
        if isinstance(self.screen, QueueScreen):
            return
        store = self.run_store()
        if store is not None:
            self.push_screen(QueueScreen(store))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in [*getattr(screen, "BINDINGS", []), *self.BINDINGS]:
            # Textual lists its own Quit already
            if isinstance(binding, Binding) and binding.description and binding is not HELP_IN_FOOTER \
                    and binding.action != "quit":
                yield SystemCommand(binding.tooltip or binding.description, f"key: {key_display(self, binding.key)}",
                                    lambda action=binding.action, s=screen: self.run_action(action, s))

    # -- terminal size -----------------------------------------------------
    def on_unmount(self) -> None:
        self._collector.stop()
        # however the app ends (a crash, a test's end, not only quit): the following thread goes, the run goes on;
        # left to follow, it kept the process alive until the run ended
        self._follow_stop.set()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self._collector.input_seen()
        await super().on_event(event)

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

    # -- the run on screen ---------------------------------------------------
    def start_training(self, config: TrainConfig) -> None:
        """Start the config as a run of its own (it outlives this app) and view it."""
        if self.refuse_model([config]):
            return
        launcher = self.launcher()
        if launcher is None:
            return
        self.last_config = config
        try:
            handle = launcher.start(config)
        except (SpawnError, StoreError) as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return
        self.view(handle)

    def queue_runs(self, configs: list[TrainConfig], sweep_id: str = "", sweep_name: str = "") -> Queued | None:
        """Add runs to the end of the queue and start its runner if none works on it; None (with the
        reason shown) when nothing could be queued. They train in the background, like any queued run."""
        if self.refuse_model(configs):
            return None
        store = self.run_store()
        if store is None:
            return None
        return self._queue(store, lambda: run_queue.enqueue(store, configs, sweep_id=sweep_id or None,
                                                            sweep_name=sweep_name), sweep_id)

    def extend_sweep(self, sweep_id: str, spec: SweepSpec) -> Queued | None:
        """Queue the configs and seeds of `spec` that the sweep lacks, under its id and name, as `sweep extend`
        does; None (with the reason shown) when there are none or they cannot be queued."""
        if self.refuse_model([spec.base]):
            return None
        store = self.run_store()
        if store is None:
            return None
        return self._queue(store, lambda: sweep_life.extend(store, sweep_id, spec), sweep_id)

    def _queue(self, store: RunStore, add: Callable[[], list[str]], sweep_id: str) -> Queued | None:
        """The runs `add` queues, with their places in the queue, and the runner started if none works on it."""
        try:
            ids = add()
            order = [r.id for r in run_queue.queued(store)]
        except (run_queue.QueueError, SweepError, StoreError) as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)
            return None
        positions = [order.index(i) + 1 if i in order else len(order) for i in ids]
        try:
            pid = run_queue.ensure_runner(store)
            line = runner_line(run_queue.runner_status(store), pid)
        except (SpawnError, StoreError) as exc:
            line = f"The queue's runner did not start ({exc}); F3, then s, tries again."
        return Queued(ids, positions, sweep_id, line)

    def resume(self, run_id: str, epochs: int | None = None) -> None:
        """Continue a stopped, interrupted or finished run from its last checkpoint, in the background."""
        store, launcher = self.run_store(), self.launcher()
        if store is None or launcher is None:
            return
        try:
            record = store.get_run(run_id)
        except RunNotFound as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if record.unreadable:  # said before asking how many epochs
            self.notify(cannot_open(record.id, record.unreadable), severity="error", markup=False)
            return
        if record.state.active:
            self.attach(record.id)
            return
        if epochs is None and record.epochs_done >= record.epochs:
            done, most = record.epochs_done, int(SETTINGS["epochs"].high)

            def check(text: str) -> str | None:
                if not text.strip().isdigit() or not done < int(text) <= most:
                    return f"epochs: got {text!r}; must be a whole number above {done}, at most {most:,}"
                return None

            self.push_screen(PromptScreen(f"Run {record.id} has trained {counted(done, 'epoch')}. Train to how many in all?",
                                          str(done * 2), check),
                             lambda text: text and self.resume(record.id, int(text)))
            return
        self.last_config = record.train_config()
        try:  # the worker checks its checkpoint and the epochs: one that cannot resume shows RunFailed, saying why
            self.view(launcher.resume(record.id, epochs))
        except (SpawnError, StoreError) as exc:
            self.notify(str(exc), severity="error", timeout=10, markup=False)

    def attach(self, run_id: str) -> None:
        """View a run that is recorded in the store: its whole history, then live."""
        launcher = self.launcher()
        if launcher is None:
            return
        try:
            handle = launcher.open(run_id)
        except (RunNotFound, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.view(handle)

    def view(self, handle: RunHandle) -> None:
        """Show `handle` on the training screen: its log replayed, then followed live."""
        self._follow_stop.set()  # the run viewed before goes on without us
        self.handle = handle
        self.run_view = RunView()
        self._show_main(TrainScreen(self.run_view))
        stop = self._follow_stop = threading.Event()
        # On the App, not the screen: a worker dies with the node that started it.
        self._follow_worker = self.run_worker(lambda: self._follow(handle, stop), thread=True,
                                              exit_on_error=False, group="following", name=f"follow {handle.run_id}")

    def _follow(self, handle: RunHandle, stop: threading.Event) -> None:
        """Runs in the worker thread: touches no widget, only posts messages."""
        for event in handle.events(stop=stop):
            if stop.is_set():
                return
            self.post_message(EngineEvent(event, viewer=stop))

    def send(self, command: Command) -> bool:
        """Send a command to the run on screen; False (with the reason shown) when it cannot take it."""
        if self.handle is None or not self.run_view.is_active:
            self.notify("No run is in progress.", severity="warning")
            return False
        try:
            self.handle.send(command)
        except (RunNotRunning, RunNotFound, StoreError, ValueError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        return True

    def request_checkpoint(self) -> bool:
        return self.send(Command("checkpoint"))

    def evaluate_checkpoint(self, run_id: str, which: str = "best") -> None:
        """Evaluate a run that has no evaluation of its own (stopped, interrupted) from a checkpoint."""
        store = self.run_store()
        if store is None:
            return
        try:
            record = store.get_run(run_id)
            used, _ = checkpoint_path(record, which)
        except (RunNotFound, NoCheckpoint, StoreError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(f"Evaluating run {record.id}'s {used} checkpoint on the test set…", markup=False)
        self.run_worker(lambda: self._evaluate(record, which), thread=True, exit_on_error=False,
                        group="evaluate", name=f"evaluate {record.id}")

    def _evaluate(self, record, which: str) -> None:
        try:
            done = evaluate_checkpoint(record, which)
        except Exception as exc:  # a bad checkpoint or a missing dataset: say so, never a traceback
            self.call_from_thread(self.notify, str(exc) or type(exc).__name__, severity="error", timeout=10,
                                  markup=False)
            return
        self.call_from_thread(self.push_evaluation, done.result, f" · {done.describe(record.id)}")

    # -- workers and quitting ----------------------------------------------
    def on_engine_event(self, message: EngineEvent) -> None:
        if message.viewer is self._follow_stop:  # events still queued from the run viewed before are dropped
            self.run_view.apply(message.event)
            if isinstance(message.event, RunStarted) and self.handle is not None and not self.handle.started_here:
                # attached (from a new app, or opened from the runs): `n` starts from this run's config, as it
                # does from a run started here, not from the form's defaults
                self.last_config = message.event.config

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # only the follow of the run on screen: one left over from a run viewed before is not this run's failure
        if event.worker is self._follow_worker and event.state == WorkerState.ERROR and self.run_view.is_active:
            error = event.worker.error
            self.run_view.apply(RunFailed(message=f"{type(error).__name__}: {error}"))

    def action_quit(self) -> None:
        if self.handle is None or not self.run_view.is_active or isinstance(self.screen, QuitScreen):
            self._leave()
            return

        def chosen(choice: str | None) -> None:
            # a stop that could not be sent keeps the app open, with the reason on screen
            if choice == "leave" or (choice == "stop" and self.send(Command("stop"))):
                self._leave()

        self.push_screen(QuitScreen(self.handle.run_id, self.run_view.state), chosen)

    def _leave(self) -> None:
        self._follow_stop.set()  # the run goes on without us
        self.exit()


def run_app(attach: str | None = None, models_dir: str | None = None) -> int:
    import gc

    app = TrainerApp(attach=attach, models_dir=models_dir)
    # torch and Textual's start-up objects live as long as the app: out of the collector's way, a full
    # collection stops the screen for ~20 ms instead of ~200 (bench/screen_switch.py --gc-freeze)
    gc.freeze()
    app.run()
    return 0
