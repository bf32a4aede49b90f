"""TrainerApp: the screens, the global keys, and the worker thread that runs the engine."""

from __future__ import annotations

from typing import Callable, Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.geometry import Size
from textual.worker import Worker, WorkerState

from ..engine.config import TrainConfig
from ..engine.control import TrainingControl
from ..engine.data import DatasetUnavailable, DownloadProgress, dataset_status
from ..engine.devices import DeviceError, DeviceInfo, list_devices
from ..engine.events import EvaluationEnded, Event, RunFailed
from ..engine.loop import TrainingRun
from .history import STATE_IDLE, STATE_PAUSED, STATE_RUNNING, RunHistory
from .messages import EngineEvent
from .screens.evaluate import EvaluationScreen
from .screens.help import HelpScreen, TooSmallScreen
from .screens.setup import SetupScreen
from .screens.train import TrainScreen

# (config, control, download progress callback) -> the engine's event stream
EngineFactory = Callable[[TrainConfig, TrainingControl, DownloadProgress], Iterable[Event]]

MIN_WIDTH, MIN_HEIGHT = 70, 20


def real_engine(config: TrainConfig, control: TrainingControl, progress: DownloadProgress) -> Iterable[Event]:
    return TrainingRun(config, control, download_progress=progress).events()


class TrainerApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "scratch-tui"
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, engine: EngineFactory = real_engine, devices: list[DeviceInfo] | None = None,
                 dataset_status: Callable[[str], str] | None = None, config: TrainConfig | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.devices = devices if devices is not None else list_devices()
        self._dataset_status = dataset_status
        self.initial_config = config or TrainConfig()
        self.history = RunHistory()
        self.control: TrainingControl | None = None
        self.last_config: TrainConfig = self.initial_config
        self._first_screen_up = False  # resize events can arrive before the first screen is up

    def dataset_status(self, name: str) -> str:
        if self._dataset_status:
            return self._dataset_status(name)
        return dataset_status(name, self.last_config.data_dir)

    async def on_mount(self) -> None:
        await self.push_screen(SetupScreen(self.initial_config))
        self._first_screen_up = True
        self._check_size()

    # -- screens -----------------------------------------------------------
    def show_setup(self) -> None:
        self.switch_screen(SetupScreen(self.last_config))

    def show_evaluation(self, evaluation: EvaluationEnded) -> None:
        s = self.history.started
        title = f" · {s.config['model']} on {s.dataset_title}" if s else ""
        self.push_screen(EvaluationScreen(evaluation, title))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(binding.description, f"key: {binding.key}",
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

    # -- training ----------------------------------------------------------
    def start_training(self, config: TrainConfig) -> None:
        if self.history.is_active:
            self.notify("A run is already in progress.", severity="warning")
            return
        self.last_config = config
        self.history = RunHistory()
        self.control = TrainingControl()
        self.switch_screen(TrainScreen(self.history))
        # On the App, not the screen: a worker dies with the node that started it.
        self.run_worker(lambda: self._train(config, self.control), thread=True, exit_on_error=False,
                        group="training", name="training")

    def _train(self, config: TrainConfig, control: TrainingControl) -> None:
        """Runs in the worker thread: touches no widget, only posts messages."""
        try:
            for event in self.engine(config, control, lambda done, total, label: None):
                self.post_message(EngineEvent(event))
        except (DatasetUnavailable, DeviceError) as exc:
            self.post_message(EngineEvent(RunFailed(message=str(exc))))

    def on_engine_event(self, message: EngineEvent) -> None:
        self.history.apply(message.event)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        unfinished = self.history.state in (STATE_IDLE, STATE_RUNNING, STATE_PAUSED)
        if event.worker.group == "training" and event.state == WorkerState.ERROR and unfinished:
            error = event.worker.error
            self.history.apply(RunFailed(message=f"{type(error).__name__}: {error}"))

    def action_quit(self) -> None:
        if self.control is not None:
            self.control.stop()  # threads cannot be killed: the loop ends itself at the next batch
        self.exit()


def run_app() -> int:
    TrainerApp().run()
    return 0
