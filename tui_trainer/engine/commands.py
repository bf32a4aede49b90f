"""The one command vocabulary for steering a run, and the one place a command meets a running loop.

Whoever sends (the app, `scratch-tui runs control`, a sweep) builds a `Command`; the training
process applies it with `apply`. Adding a command means adding it here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .control import TrainingControl, check_lr

# name -> what it does to the loop's control; set_lr alone takes a value
_ACTIONS: dict[str, Callable[[TrainingControl, float | None], None]] = {
    "pause": lambda control, _: control.pause(),
    "resume": lambda control, _: control.unpause(),
    "stop": lambda control, _: control.stop(),
    "set_lr": lambda control, lr: control.set_lr(lr),
    "checkpoint": lambda control, _: control.request_checkpoint(),
}
COMMANDS = tuple(_ACTIONS)
TAKES_VALUE = ("set_lr",)


@dataclass(frozen=True)
class Command:
    name: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.name not in _ACTIONS:
            raise ValueError(f"command: unknown {self.name!r}; choose one of {', '.join(COMMANDS)}")
        if self.name in TAKES_VALUE:
            object.__setattr__(self, "value", check_lr(self.value))
        elif self.value is not None:
            raise ValueError(f"{self.name} takes no value; only {', '.join(TAKES_VALUE)} does")

    def describe(self) -> str:
        return f"set its learning rate to {self.value:g}" if self.name == "set_lr" else self.name


def apply(command: Command, control: TrainingControl) -> None:
    """Act on the command at the loop's next batch boundary (or at once for a paused loop)."""
    _ACTIONS[command.name](control, command.value)
