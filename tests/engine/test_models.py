"""The from-scratch MLP checked against nn.Sequential as an oracle, micrograd-style."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tui_trainer.engine.models import MODELS, ScratchLinear, ScratchMLP, build_model, count_parameters, sequential_mlp


def _copy_into_sequential(scratch: ScratchMLP, seq: nn.Sequential) -> None:
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    assert len(linears) == len(scratch.layers)
    with torch.no_grad():
        for mine, theirs in zip(scratch.layers, linears):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)


@pytest.mark.parametrize("hidden", [(128, 64), (32,), (16, 16, 8)])
def test_scratch_mlp_matches_sequential_outputs_and_gradients(hidden):
    torch.manual_seed(0)
    scratch = ScratchMLP(784, hidden, 10)
    seq = sequential_mlp(784, hidden, 10)
    _copy_into_sequential(scratch, seq)
    x = torch.randn(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))

    out_a, out_b = scratch(x), seq(x)
    torch.testing.assert_close(out_a, out_b)
    F.cross_entropy(out_a, y).backward()
    F.cross_entropy(out_b, y).backward()
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    for mine, theirs in zip(scratch.layers, linears):
        assert mine.weight.grad is not None and mine.weight.grad.abs().sum() > 0
        torch.testing.assert_close(mine.weight.grad, theirs.weight.grad)
        torch.testing.assert_close(mine.bias.grad, theirs.bias.grad)


def test_scratch_linear_is_built_from_bare_parameters():
    layer = ScratchLinear(5, 3)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert all(type(p) is nn.Parameter for p in layer.parameters())
    model = ScratchMLP(784, (128, 64), 10)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert [tuple(l.weight.shape) for l in model.layers] == [(128, 784), (64, 128), (10, 64)]


def test_parameter_counts_for_the_classic_shape():
    shape = (1, 28, 28)
    expected = 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert count_parameters(build_model("scratch-mlp", shape, 10)) == expected
    assert count_parameters(build_model("sequential-mlp", shape, 10)) == expected


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_takes_gray_and_colour_images(shape):
    model = build_model("cnn", shape, 10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)


def test_randn_init_is_unscaled_and_kaiming_is_scaled():
    torch.manual_seed(0)
    randn = ScratchMLP(784, (128, 64), 10, init="randn")
    kaiming = ScratchMLP(784, (128, 64), 10, init="kaiming")
    assert randn.layers[0].weight.std().item() == pytest.approx(1.0, abs=0.02)
    assert kaiming.layers[0].weight.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.05)
    assert kaiming.layers[0].bias.abs().sum().item() == 0


def test_every_model_has_a_summary():
    assert set(MODELS) == {"scratch-mlp", "sequential-mlp", "cnn"}
    assert all(entry.summary for entry in MODELS.values())
