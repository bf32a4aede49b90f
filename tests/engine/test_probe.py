"""The probe: layer statistics on a fixed batch, eager beside the training step, and the init check's sentences."""

import dataclasses

import pytest

from tui_trainer.engine import probe
from tui_trainer.engine.config import TrainConfig
from tui_trainer.engine.events import Diagnosis, EpochEnded, LayerStats, event_from_dict
from tui_trainer.engine.loop import TrainingRun
from tui_trainer.runs.view import view_of


@pytest.fixture(scope="module")
def tiny(mini_raw):
    import torch

    from tui_trainer.engine.data import prepare

    return prepare(mini_raw, torch.device("cpu"), val_split=0.1, seed=0, max_train_samples=640)


def events_of(config, data):
    return list(TrainingRun(config, data=data, evaluate_at_end=False).events())


def test_the_tutorials_init_is_named_on_its_first_layer_with_its_number(tiny):
    events = events_of(TrainConfig(device="cpu", epochs=1, init="randn", probe_every=25), tiny)
    verdict = next(e for e in events if isinstance(e, Diagnosis))
    assert verdict.step == 0 and not verdict.healthy
    assert "vs 2.30 expected for 10 classes" in verdict.text and "layers.0 output std" in verdict.text
    assert "~28× too large for 784 inputs" in verdict.text and "--init kaiming" in verdict.text


def test_a_scaled_init_reads_healthy_and_is_said_once(tiny, monkeypatch):
    monkeypatch.setattr(probe, "PROBE_SHARE", 1.0)  # the cadence alone: tiny epochs leave no time budget
    events = events_of(TrainConfig(device="cpu", epochs=2, batch_size=16, probe_every=25), tiny)
    said = [e for e in events if isinstance(e, Diagnosis)]
    assert said[0].healthy and said[0].text.startswith("init looks healthy")
    probes = [e for e in events if isinstance(e, LayerStats)]
    spe = next(e for e in events if isinstance(e, EpochEnded)).step  # steps in an epoch
    early = {s for s in range(0, 101, 25) if s < 2 * spe}  # step 0 and every 25 of the first 100
    assert [p.step for p in probes] == sorted(early | {spe, 2 * spe})  # then once an epoch
    first = probes[0]
    assert [layer.name for layer in first.layers] == ["layers.0", "layers.1", "layers.2"]
    assert all(layer.update_ratio is None for layer in first.layers)  # nothing has moved yet
    assert all(1e-5 < layer.update_ratio < 1e-1 for layer in probes[1].layers)
    again = event_from_dict(first.to_dict())
    assert again == first  # the log keeps every number and histogram


def test_the_probe_changes_nothing_training_computes(tiny):
    """Its forward, backward and random numbers are its own: on or off, the same losses bit for bit, BatchNorm and
    dropout included."""
    def losses(probe_every):
        config = TrainConfig(device="cpu", epochs=1, model="cnn", batch_size=64, probe_every=probe_every)
        return [(e.train_loss, e.val_loss) for e in events_of(config, tiny) if isinstance(e, EpochEnded)]

    assert losses(10) == losses(0)


@pytest.fixture
def dead_model(tmp_path):
    path = tmp_path / "dead.py"
    path.write_text(
        "import math, torch\n"
        "from torch import nn\n\n"
        "class Dead(nn.Module):\n"
        "    def __init__(self, image_shape, num_classes):\n"
        "        super().__init__()\n"
        "        self.body = nn.Linear(math.prod(image_shape), 64)\n"
        "        nn.init.normal_(self.body.weight, std=1 / math.sqrt(math.prod(image_shape)))\n"
        "        nn.init.constant_(self.body.bias, -5.0)  # every unit below zero: the ReLU never fires\n"
        "        self.act = nn.ReLU()\n"
        "        self.head = nn.Linear(64, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        return self.head(self.act(self.body(x.flatten(1))))\n")
    return f"{path}:Dead"


def test_a_users_fault_is_named_at_its_layer(dead_model, tiny):
    from tui_trainer.engine.model_file import ready

    config = ready(TrainConfig(device="cpu", epochs=1, model=dead_model))
    said = [e.text for e in events_of(config, tiny) if isinstance(e, Diagnosis)]
    assert "body: 100% of ReLUs dead at init" in said
    assert "act: 100% of ReLUs dead at init" in said


def test_a_resumed_runs_statistics_are_its_whole_history_once():
    config = TrainConfig(epochs=2)
    from tests.ui.fakes import started

    log = [started(config, steps=80)]
    log += [LayerStats(step=s, epoch=1 + s // 80, loss=2.3, logits_std=1.0, expected_loss=2.3) for s in (0, 25, 80)]
    resumed = dataclasses.replace(started(config, steps=80), resumed_from_epoch=1, resumed_from_step=80)
    log += [resumed, LayerStats(step=160, epoch=2, loss=1.0, logits_std=2.0, expected_loss=2.3)]
    assert [s.step for s in view_of((None, e) for e in log).layer_stats] == [0, 25, 80, 160]
    log.insert(4, LayerStats(step=120, epoch=2, loss=1.5, logits_std=1.5, expected_loss=2.3))  # trained again
    assert [s.step for s in view_of((None, e) for e in log).layer_stats] == [0, 25, 80, 160]


def test_the_probe_keeps_to_its_share_of_the_training_time(tiny, monkeypatch):
    # 1 s a probe, 30 s trained over 300 steps, 100 steps left in the epoch: 40 s at that pace, 3% of it is 1.2 s
    assert probe.affordable(spent=0.0, cost=1.0, trained=30.0, steps=300, steps_left=100)
    assert not probe.affordable(spent=0.5, cost=1.0, trained=30.0, steps=300, steps_left=100)
    assert probe.affordable(spent=0.5, cost=1.0, trained=30.0, steps=300, steps_left=100, share=0.05)
    # with no time to spare, only the init check runs: it is owed whatever it costs
    monkeypatch.setattr(probe, "PROBE_SHARE", 0.0)
    events = events_of(TrainConfig(device="cpu", epochs=2, batch_size=16, probe_every=25), tiny)
    assert [e.step for e in events if isinstance(e, LayerStats)] == [0]
    assert any(isinstance(e, Diagnosis) and e.healthy for e in events)


FAULTY = (
    "import math, torch\n"
    "from torch import nn\n\n"
    "class Faulty(nn.Module):\n"
    "    def __init__(self, image_shape, num_classes, middle_std=0.1):\n"
    "        super().__init__()\n"
    "        self.first, self.middle, self.head = nn.Linear(784, 64), nn.Linear(64, 64), nn.Linear(64, num_classes)\n"
    "        nn.init.normal_(self.middle.weight, std=middle_std)\n"
    "    def forward(self, x):\n"
    "        x = torch.relu(self.first(x.flatten(1)))\n"
    "        return self.head(torch.relu(self.middle(x)))\n")


@pytest.mark.parametrize("middle_std, said", [
    (3.0, "middle output std"),  # far too large: the loss blows up from there
    (1e-4, "middle output std"),  # far too small: the loss looks fine, the signal fades
])
def test_a_fault_in_a_hidden_layer_is_named_at_that_layer(tmp_path, tiny, middle_std, said):
    from tui_trainer.engine.model_file import ready

    (tmp_path / "faulty.py").write_text(FAULTY)
    config = ready(TrainConfig(device="cpu", epochs=1, model=f"{tmp_path / 'faulty.py'}:Faulty",
                               model_args={"middle_std": middle_std}))
    run = TrainingRun(config, data=tiny, evaluate_at_end=False)
    run.setup()
    verdicts = [e.text for e in run.look_inside(1) if isinstance(e, Diagnosis)]
    assert any(said in text and "too " in text for text in verdicts), verdicts
    assert not any("first output std" in text for text in verdicts)


def test_small_updates_are_flagged_unless_the_schedule_made_the_lr_small():
    from tui_trainer.engine.events import LayerStat

    stats = LayerStats(step=500, epoch=3, loss=0.4, logits_std=2.0, expected_loss=2.303, layers=[
        LayerStat(name="layers.0", kind="Linear", act_mean=0.1, act_std=1.0, weight_std=0.05, weight_norm=10.0,
                  grad_norm=0.5, update_ratio=8e-6)])
    said = [d.text for d in probe.diagnose(stats, init=False)]
    assert said == ["layers.0: updates are 8e-06 of its weights per step (about 1e-03 is healthy): the lr is far "
                    "too small"]
    assert probe.diagnose(stats, init=False, lr_scale=0.01) == []  # a one-cycle tail: small on purpose
