"""The built-in networks: a from-scratch MLP, its nn.Sequential twin, and a small CNN (engine/registry.py names
them; a model is built through its entry there)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .registry import MODELS

if TYPE_CHECKING:
    from .config import TrainConfig


class ScratchLinear(nn.Module):
    """y = x @ W.T + b with W and b as bare nn.Parameters (no nn.Linear, no F.linear)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        # Stored as (out, in) like nn.Linear so weights copy across one-to-one.
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight.T) + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def init_linear_(weight: torch.Tensor, bias: torch.Tensor, init: str) -> None:
    """`kaiming`: He-normal weights, zero bias. `randn`: unscaled N(0, 1) for both, as the classic tutorial does."""
    if init not in ("kaiming", "randn"):
        raise ValueError(f"unknown init {init!r}")
    if weight.is_meta:  # shapes only (engine/fits.py's estimate): no values to draw, and drawing on the meta
        return          # device would import torch's compiler, 1.2 s of CPU, for nothing
    with torch.no_grad():
        if init == "kaiming":
            weight.normal_(0.0, math.sqrt(2.0 / weight.shape[1]))
            bias.zero_()
        elif init == "randn":
            weight.normal_(0.0, 1.0)
            bias.normal_(0.0, 1.0)


class ScratchMLP(nn.Module):
    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int, init: str = "kaiming"):
        super().__init__()
        sizes = [in_features, *hidden, num_classes]
        self.layers = nn.ModuleList(ScratchLinear(a, b) for a, b in zip(sizes, sizes[1:]))
        for layer in self.layers:
            init_linear_(layer.weight, layer.bias, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def sequential_mlp(in_features: int, hidden: tuple[int, ...], num_classes: int, init: str = "kaiming") -> nn.Sequential:
    sizes = [in_features, *hidden, num_classes]
    modules: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        linear = nn.Linear(a, b)
        init_linear_(linear.weight, linear.bias, init)
        modules.append(linear)
        if i < len(sizes) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class SmallCNN(nn.Module):
    """Two conv-batchnorm-relu-pool blocks, then a two-layer classifier."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(channels, 32), block(32, 64))
        flat = 64 * (height // 4) * (width // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# The factories the registry names (engine/registry.py): each called as every model is, a user's too,
#     factory(image_shape=(C, H, W), num_classes=K, **settings)
def scratch_mlp(image_shape: tuple[int, int, int], num_classes: int, hidden: tuple[int, ...] = (128, 64),
                init: str = "kaiming") -> nn.Module:
    return ScratchMLP(math.prod(image_shape), tuple(hidden), num_classes, init)


def sequential_mlp_of(image_shape: tuple[int, int, int], num_classes: int, hidden: tuple[int, ...] = (128, 64),
                      init: str = "kaiming") -> nn.Module:
    return sequential_mlp(math.prod(image_shape), tuple(hidden), num_classes, init)


def small_cnn(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return SmallCNN(*image_shape, num_classes)


# Each model's forward as a list of standard layers, for packs (engine/pack.py), which stack them: the registry's
# `layers` names these.
def mlp_layers(model: ScratchMLP) -> list[nn.Module]:
    """ScratchMLP.forward, as layers: flatten, then each Linear with a ReLU between."""
    layers: list[nn.Module] = [nn.Flatten()]
    for layer in model.layers[:-1]:
        layers += [layer, nn.ReLU()]
    return [*layers, model.layers[-1]]


def sequence_layers(model: nn.Module) -> list[nn.Module]:
    """An nn.Sequential's layers, nested ones opened, in forward order."""
    if isinstance(model, nn.Sequential):
        return [layer for child in model for layer in sequence_layers(child)]
    return [model]


def cnn_layers(model: SmallCNN) -> list[nn.Module]:
    return sequence_layers(model.features) + sequence_layers(model.classifier)


def build_model(config: "TrainConfig | str", image_shape: tuple[int, int, int], num_classes: int,
                hidden: tuple[int, ...] | None = None, init: str | None = None) -> nn.Module:
    """The model `config` names, built by its registry entry for these images and classes. A model's name alone
    (with `hidden` and `init` where it reads them) builds it with the other settings at their defaults."""
    from .config import TrainConfig

    if isinstance(config, str):
        given = {"hidden": hidden, "init": init}
        config = TrainConfig(model=config, **{k: v for k, v in given.items() if v is not None})
    return MODELS.entry(config.model).build(config, tuple(image_shape), num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
