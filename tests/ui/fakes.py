"""Fixed data for UI tests: devices, dataset states and scripted engine runs."""

from __future__ import annotations

import queue
import time

import torch

from tui_trainer.engine.commands import Command
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.data import FASHION_CLASSES, load_raw
from tui_trainer.engine.devices import DeviceInfo
from tui_trainer.engine.events import (BatchProgress, CommandReceived, EpochEnded, EvaluationEnded, LearningRateChanged,
                                       PredictionSample,
                                       RunFailed, RunFinished, RunPaused, RunUnpaused, RunStarted, RunState, RunStopped,
                                       next_state)
from tui_trainer.runs.handle import RunHandle

DEVICES = [
    DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda", 85_045_346_304, "9.0"),
    DeviceInfo("cpu", "CPU (16 threads)", "cpu", 137_438_953_472),
]
STATUS = {"fashion-mnist-mini": "bundled", "fashion-mnist": "on disk", "mnist": "needs download (11 MB)",
          "kmnist": "needs download (20 MB)", "cifar10": "needs download (163 MB)"}


def dataset_status(name: str) -> str:
    return STATUS[name]


def started(config: TrainConfig, steps: int = 85) -> RunStarted:
    return RunStarted(config=config, device="cpu", device_name="CPU (16 threads)",
                      dataset_title="Fashion-MNIST mini (bundled, 12k/2k)", classes=list(FASHION_CLASSES),
                      image_shape=[1, 28, 28], train_size=10800, val_size=1200, test_size=2000, parameters=109386,
                      steps_per_epoch=steps, run_id=None)


def epoch_events(config: TrainConfig, epochs: int, steps: int = 85):
    """A plausible learning curve, the same every time."""
    for epoch in range(1, epochs + 1):
        for batch in (20, 40, 60, 80):
            loss = 1.6 / (epoch + batch / steps) + 0.25
            yield BatchProgress(step=(epoch - 1) * steps + batch, epoch=epoch, epochs=config.epochs, batch=batch,
                                batches=steps, loss=loss, acc=100 - 35 / (epoch + batch / steps), lr=0.003,
                                samples_per_s=50000.0)
        yield EpochEnded(epoch=epoch, epochs=config.epochs, train_loss=1.5 / epoch + 0.25,
                         train_acc=100 - 30 / epoch, val_loss=1.3 / epoch + 0.3, val_acc=97 - 30 / epoch,
                         lr=0.003, seconds=0.2, samples_per_s=54000.0, step=epoch * steps)


def evaluation() -> EvaluationEnded:
    """Real images from the bundled test set, with a made-up but consistent confusion matrix."""
    raw = load_raw("fashion-mnist-mini")
    confusion = [[0] * 10 for _ in range(10)]
    samples = []
    for t in range(10):
        for p in range(10):
            confusion[t][p] = 170 - 4 * t if t == p else (t * 7 + p * 3) % 5
        confusion[t][(t + 1) % 10] += 200 - sum(confusion[t])
    indices = torch.nonzero(raw.test_labels < 10).flatten()[:12].tolist()
    for n, i in enumerate(indices):
        t = int(raw.test_labels[i])
        p = t if n % 3 else (t + 1) % 10
        samples.append(PredictionSample(i, raw.test_images[i].tolist(), t, p, 0.5 + n / 30))
    per_class = [100 * confusion[i][i] / sum(confusion[i]) for i in range(10)]
    acc = 100 * sum(confusion[i][i] for i in range(10)) / 2000
    return EvaluationEnded(test_loss=0.4123, test_acc=acc, per_class_acc=per_class, confusion=confusion,
                           classes=list(FASHION_CLASSES), samples=samples, seconds=0.1)


# In a script: the run trains on, yielding nothing, until a command stops it.
KEEP_TRAINING = object()


def scripted_engine(epochs_done: int = 3, end: str = "finished", delay: float = 0.0):
    """A script of a plausible run: started, epochs, then the evaluation and the end (or a failure)."""

    def script(config):
        yield started(config)
        for event in epoch_events(config, epochs_done):
            if delay:
                time.sleep(delay)
            yield event
        if end == "failed":
            yield RunFailed(message="training loss became nan in epoch 3 (step 255); the learning rate 10 is too "
                                    "high for this model: try a lower --lr such as 1", epochs_done=epochs_done)
        else:
            yield evaluation()
            yield RunFinished(epochs_done=epochs_done, seconds=1.0)

    return script


class FixedStore:
    """Just enough of RunStore for the runs screen, with fixed times so snapshots do not move."""

    def __init__(self) -> None:
        from tui_trainer.runs.store import RunRecord

        base = TrainConfig()
        self.configs = {
            "a1b2c3d4": base.replace(name="recommended"),
            "e5f6a7b8": base.replace(name="tutorial", init="randn", optimizer="sgd", lr=0.01, batch_size=64,
                                     schedule="constant", momentum=0.0, weight_decay=0.0, label_smoothing=0.0),
            "c9d0e1f2": base.replace(name="cnn", model="cnn", epochs=10),
        }
        status = {"a1b2c3d4": "finished", "e5f6a7b8": "finished", "c9d0e1f2": "running"}
        self.records = {}
        for i, (run_id, config) in enumerate(self.configs.items()):
            done = config.epochs if status[run_id] == "finished" else 4
            curve = self.curve(run_id, done)
            self.records[run_id] = RunRecord(
                run_id, config.name, config.model, config.dataset, status[run_id], done, config.epochs,
                max(curve), None if status[run_id] == "running" else curve[-1] - 0.8, 95.0 + 30 * i,
                1_790_000_000.0 + 3600 * i, None, False, config.to_dict(), "", "cpu", "CPU (16 threads)",
                "2.14.1", 1234, "box", None, None, None, 0.0, 1)

    @staticmethod
    def curve(run_id: str, epochs: int) -> list[float]:
        top = {"a1b2c3d4": 90.0, "e5f6a7b8": 50.0, "c9d0e1f2": 93.0}[run_id]
        return [top - 12 / e for e in range(1, epochs + 1)]

    def list_runs(self):
        return list(self.records.values())

    def get_run(self, run_id):
        return self.records[run_id]

    def epochs(self, run_id, after=0):
        return [{"epoch": e, "val_acc": acc} for e, acc in enumerate(self.curve(run_id, self.records[run_id].epochs_done), 1)]

    def evaluation(self, run_id):
        return None


class ScriptedRun(RunHandle):
    """A run handle that plays a script. Between two events it acts on the commands sent, the way a
    training process's log shows them: CommandReceived, then what the command did."""

    def __init__(self, script, config: TrainConfig, run_id: str = "5c417ed0", started_here: bool = True):
        self.script, self.config, self.run_id, self.started_here = script, config, run_id, started_here
        self.sent: list[Command] = []
        self._received: queue.Queue[Command] = queue.Queue()
        self._state = RunState.STARTING
        self._epochs_done = 0

    def send(self, command: Command) -> None:
        self.sent.append(command)
        self._received.put(command)

    def state(self) -> RunState:
        return self._state

    def events(self, stop=None):
        for event in self.script(self.config):
            if event is KEEP_TRAINING:
                event = None
            for reply in self._obey(wait=event is None, stop=stop):
                yield self._track(reply)
            if self._state.active is False or event is None:
                return
            yield self._track(event)

    def _track(self, event):
        self._state = next_state(self._state, event)
        if isinstance(event, EpochEnded):
            self._epochs_done = event.epoch
        return event

    def _obey(self, wait: bool, stop):
        """The commands received so far (or, with `wait` or while paused, until a stop comes)."""
        while True:
            try:
                blocking = wait or self._state == RunState.PAUSED
                command = self._received.get(timeout=0.02) if blocking else self._received.get_nowait()
            except queue.Empty:
                if blocking and not (stop is not None and stop.is_set()):
                    continue
                return
            yield CommandReceived(command.name, command.value)
            position = dict(epoch=self._epochs_done + 1, step=0)
            if command.name == "stop":
                yield RunStopped(epochs_done=self._epochs_done, seconds=1.0)
                return
            if command.name == "pause":
                yield RunPaused(**position)
            elif command.name == "resume":
                yield RunUnpaused(**position)
            elif command.name == "set_lr":
                yield LearningRateChanged(lr=command.value, step=0)


class ScriptedLauncher:
    """Starts ScriptedRuns from an engine factory; keeps each handle so tests can look at what was sent."""

    def __init__(self, script=None):
        self.script = script or scripted_engine()
        self.handles: list[ScriptedRun] = []

    def start(self, config: TrainConfig) -> ScriptedRun:
        self.handles.append(ScriptedRun(self.script, config))
        return self.handles[-1]

    def resume(self, run_id: str, epochs: int | None = None) -> ScriptedRun:
        raise AssertionError("a scripted launcher resumes nothing")

    def open(self, run_id: str) -> ScriptedRun:
        self.handles.append(ScriptedRun(self.script, TrainConfig(), run_id=run_id, started_here=False))
        return self.handles[-1]
