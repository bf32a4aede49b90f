"""How a step runs: the path chosen per config and device, the CUDA graph, and checkpoints across paths.

Tests marked `cuda` need a CUDA GPU and are skipped without one; `bench/gpu_check.sh` runs them.
"""

import pytest
import torch

from tui_trainer.engine import ConfigError, TrainConfig, TrainingControl, TrainingRun
from tui_trainer.engine.data import prepare
from tui_trainer.engine.events import (BatchProgress, EpochEnded, EvaluationEnded, RunFinished, RunStarted,
                                       event_from_dict)
from tui_trainer.engine.models import build_model
from tui_trainer.engine.optim import build_optimizer
from tui_trainer.engine.step import StepPath, choose_path, make_capturable, plain_optimizer_state

cuda = pytest.mark.cuda
CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_auto_is_eager_on_the_cpu_and_a_graph_on_a_gpu():
    assert choose_path(TrainConfig(), CPU) == StepPath()
    assert choose_path(TrainConfig(), GPU) == StepPath(graph=True)
    assert choose_path(TrainConfig(model="cnn"), GPU) == StepPath(graph=True, bf16=True, channels_last=True)
    assert choose_path(TrainConfig(model="cnn", precision="fp32", step_mode="eager"), GPU) == \
        StepPath(channels_last=True)
    assert str(StepPath(graph=True, bf16=True, channels_last=True)) == "cuda-graph bf16 channels-last"
    assert str(StepPath(fallback="no full batch to capture")) == "eager (no full batch to capture)"


def test_a_graph_on_the_cpu_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as error:
        choose_path(TrainConfig(step_mode="cuda-graph"), CPU)
    assert str(error.value).startswith("step_mode: cuda-graph needs a CUDA device")
    assert "--step-mode auto or eager" in str(error.value)


def test_unknown_step_mode_and_precision_are_config_errors():
    for field, value in [("step_mode", "turbo"), ("precision", "fp8")]:
        with pytest.raises(ConfigError) as error:
            TrainConfig(**{field: value})
        assert str(error.value).startswith(f"{field}:")


def test_every_run_records_its_path_data_fingerprint_and_versions(small_data, mini_raw):
    started = next(iter(TrainingRun(TrainConfig(device="cpu", epochs=1), data=small_data).events()))
    assert isinstance(started, RunStarted)
    assert started.step_path == "eager"
    assert len(started.data_fingerprint) == 16
    assert started.versions["torch"] == torch.__version__ and started.device_name.startswith("CPU")
    # the receipt: versions, machine and numeric flags, with None (no GPU) left out of its flat form
    receipt = started.receipt()
    assert {"versions.python", "versions.numpy", "versions.torchvision", "versions.textual", "versions.scratch-tui",
            "machine.cpu", "numerics.deterministic", "numerics.tf32_matmul", "data_fingerprint"} <= set(receipt)
    assert started.versions["cuda"] is None and "machine.gpu" not in receipt and receipt["threads"] >= 1
    # a log written before the receipt loads, and says only what it recorded
    older = event_from_dict({k: v for k, v in started.to_dict().items()
                             if k not in ("versions", "machine", "numerics", "threads", "model_sha256")})
    assert set(older.receipt()) == {"device", "device_name", "processes", "step_path", "data_fingerprint"}
    again = prepare(mini_raw, CPU, val_split=0.1, seed=0, max_train_samples=3000)
    other = prepare(mini_raw, CPU, val_split=0.1, seed=0, max_train_samples=2999)
    reseeded = prepare(mini_raw, CPU, val_split=0.1, seed=1, max_train_samples=3000)
    assert again.fingerprint == small_data.fingerprint
    assert len({small_data.fingerprint, other.fingerprint, reseeded.fingerprint}) == 3


def test_bf16_autocast_trains_on_the_cpu_too(small_data):
    events = list(TrainingRun(TrainConfig(device="cpu", epochs=1, precision="bf16"), data=small_data).events())
    assert events[0].step_path == "eager bf16"
    assert next(e for e in events if isinstance(e, EvaluationEnded)).test_acc > 60


def _trained_optimizer(name):
    torch.manual_seed(0)
    model = build_model("scratch-mlp", (1, 28, 28), 10)
    optimizer = build_optimizer(model, TrainConfig(optimizer=name))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 1, 28, 28)).sum().backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_a_graph_runs_optimizer_saves_in_the_plain_form_any_path_can_load(name):
    model, optimizer = _trained_optimizer(name)
    before = optimizer.state_dict()
    make_capturable(optimizer, CPU)
    live = optimizer.state_dict()
    assert isinstance(live["param_groups"][0]["lr"], torch.Tensor) and live["param_groups"][0]["fused"]

    plain = plain_optimizer_state(live)
    group = plain["param_groups"][0]
    assert group["lr"] == pytest.approx(before["param_groups"][0]["lr"]) and isinstance(group["lr"], float)
    assert not group["fused"] and not group.get("capturable", False)
    # the live optimizer is left as it was
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)
    fresh = build_optimizer(build_model("scratch-mlp", (1, 28, 28), 10), TrainConfig(optimizer=name))
    fresh.load_state_dict(plain)
    for key, value in fresh.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(before["state"][0][key]))


# -- on a GPU ---------------------------------------------------------------------------------------

def _gpu_data(mini_raw, samples=3000):
    return prepare(mini_raw, GPU, val_split=0.1, seed=0, max_train_samples=samples)


def _params(run):
    return torch.cat([p.detach().flatten().float().cpu() for p in run.model.parameters()])


@cuda
def test_the_graph_step_trains_like_the_eager_step(mini_raw):
    data = _gpu_data(mini_raw)
    config = TrainConfig(device="cuda", epochs=2, schedule="cosine")
    graphed, eager = TrainingRun(config, data=data), TrainingRun(config.replace(step_mode="eager"), data=data)
    graph_events, eager_events = list(graphed.events()), list(eager.events())
    assert graph_events[0].step_path == "cuda-graph" and eager_events[0].step_path == "eager"
    # the same arithmetic up to the fused optimizer's rounding: close weights, close accuracy
    assert torch.allclose(_params(graphed), _params(eager), atol=2e-3)
    accuracies = [next(e for e in events if isinstance(e, EvaluationEnded)).test_acc
                  for events in (graph_events, eager_events)]
    assert accuracies[0] > 75 and abs(accuracies[0] - accuracies[1]) < 1.5


@cuda
def test_warm_up_leaves_no_trace_the_first_step_is_the_first_step(mini_raw):
    data = _gpu_data(mini_raw, samples=256)
    config = TrainConfig(device="cuda", epochs=1, batch_size=256, schedule="constant", val_split=0.0)
    graphed, eager = TrainingRun(config, data=data, evaluate_at_end=False), \
        TrainingRun(config.replace(step_mode="eager"), data=data, evaluate_at_end=False)
    graphed.setup(), eager.setup()
    assert torch.equal(_params(graphed), _params(eager))  # warm-up steps were put back
    list(graphed.events()), list(eager.events())
    assert graphed.step == eager.step == 1
    assert torch.allclose(_params(graphed), _params(eager), atol=1e-5)


@cuda
def test_a_graph_run_resumed_mid_epoch_matches_a_straight_run(mini_raw, tmp_path):
    from tui_trainer.engine.checkpoints import save_checkpoint

    data = _gpu_data(mini_raw)
    config = TrainConfig(device="cuda", epochs=2, augment="flip", max_train_samples=3000)
    straight = TrainingRun(config, data=data)
    list(straight.events())

    first = TrainingRun(config, data=data, progress_seconds=0)
    for event in first.events():
        if isinstance(event, BatchProgress) and event.epoch == 2:
            save_checkpoint(tmp_path / "mid.pt", first, "request")
            break
    resumed = TrainingRun.from_checkpoint(tmp_path / "mid.pt", data=data)
    events = list(resumed.events())
    assert events[0].step_path == "cuda-graph" and resumed.step == straight.step
    assert torch.allclose(_params(resumed), _params(straight), atol=1e-4)

    on_cpu = TrainingRun.from_checkpoint(tmp_path / "mid.pt", device="cpu")
    cpu_events = list(on_cpu.events())
    assert cpu_events[0].step_path == "eager" and on_cpu.step == straight.step


@cuda
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_optimizer_and_the_cnn_capture_and_learn(mini_raw, optimizer):
    data = _gpu_data(mini_raw)
    config = TrainConfig(device="cuda", epochs=1, optimizer=optimizer, nesterov=optimizer == "sgd",
                         lr=0.05 if optimizer == "sgd" else 0.003)
    for cfg, path in [(config, "cuda-graph"), (config.replace(model="cnn"), "cuda-graph bf16 channels-last")]:
        events = list(TrainingRun(cfg, data=data).events())
        assert events[0].step_path == path
        assert next(e for e in events if isinstance(e, EvaluationEnded)).test_acc > 65


@cuda
def test_set_lr_reaches_the_captured_step(mini_raw):
    data = _gpu_data(mini_raw)
    control = TrainingControl()
    run = TrainingRun(TrainConfig(device="cuda", epochs=2, schedule="constant"), control, data=data,
                      progress_seconds=0)
    for event in run.events():
        if isinstance(event, EpochEnded) and event.epoch == 1:
            control.set_lr(0.0005)
        if isinstance(event, BatchProgress) and event.epoch == 2:
            break
    assert event.lr == pytest.approx(0.0005)
    assert run.optimizer.param_groups[0]["lr"].item() == pytest.approx(0.0005)


@cuda
def test_too_few_images_for_a_full_batch_train_eagerly_and_say_why(mini_raw):
    events = list(TrainingRun(TrainConfig(device="cuda", epochs=1, batch_size=512),
                              data=_gpu_data(mini_raw, samples=300)).events())
    assert events[0].step_path == "eager (no full batch to capture)"
    assert isinstance(events[-1], RunFinished)
