"""The optimizers: torch's own update, built so that a training process never imports torch's compiler."""

import copy
import subprocess
import sys

import pytest
import torch

from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.models import ScratchMLP
from tui_trainer.engine.optim import build_optimizer


@pytest.mark.parametrize("settings", [dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=0.01),
                                      dict(optimizer="sgd", momentum=0.0, weight_decay=0.0),
                                      dict(optimizer="adam", weight_decay=0.01),
                                      dict(optimizer="adamw", weight_decay=0.01)])
def test_each_optimizer_updates_as_torchs_own_bit_for_bit_and_their_states_load_into_each_other(settings):
    config = TrainConfig(lr=0.01, **settings)
    torch.manual_seed(0)
    ours_model = ScratchMLP(12, (8,), 3)
    theirs_model = copy.deepcopy(ours_model)
    ours = build_optimizer(ours_model, config)
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    given = {"lr", "momentum", "nesterov", "weight_decay"} & set(ours.defaults)
    theirs = kind(theirs_model.parameters(), **{k: ours.defaults[k] for k in given})
    assert type(ours) is not kind and isinstance(ours, kind)  # torch's class underneath, its guards left out
    for step in range(3):
        x, y = torch.randn(5, 12), torch.randint(0, 3, (5,))
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.param_groups[0]["lr"] *= 0.5  # as the loop's schedule sets it
    for a, b in zip(ours_model.parameters(), theirs_model.parameters()):
        assert torch.equal(a, b) and a.grad is not None
    saved = ours.state_dict()
    assert repr(saved) == repr(theirs.state_dict())
    theirs.load_state_dict(saved)
    ours.load_state_dict(theirs.state_dict())


def test_a_training_process_never_imports_torchs_compiler():
    # 1.2 s of CPU in every run's process, as much again as importing torch, for a compiler no eager step uses
    code = ("import sys; from tui_trainer.cli import main; "
            "main(['train', '--no-record', '--device', 'cpu', '--epochs', '1', '--max-train-samples', '64']); "
            "print('compiler:', 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Test Accuracy" in done.stdout and done.stdout.rstrip().endswith("compiler: False")
