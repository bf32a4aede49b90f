"""The tutorial's MLP, written as your own model file.

    scratch-tui train --model examples/custom_linear_mlp.py:custom_mlp
    scratch-tui train --model examples/custom_linear_mlp.py:custom_mlp --model-arg hidden='(256, 128)'

scratch-tui calls `custom_mlp(image_shape=(C, H, W), num_classes=K, **model_args)` and trains the nn.Module it
returns; its forward must give logits of shape (N, K). The file's source is kept with each run, so editing it
later never changes a run that has started (resume, fork and eval build from the kept copy).
"""

import math

import torch
from torch import nn


class CustomLinear(nn.Module):
    """y = x @ W.T + b, with W and b as bare nn.Parameters: what nn.Linear does, written out."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        # He (kaiming) init: keeps the activations' scale from layer to layer under ReLU
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * math.sqrt(2.0 / in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class CustomMLP(nn.Module):
    """Flatten the image, then CustomLinear layers with ReLU between them."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        sizes = [in_features, *hidden, num_classes]
        self.layers = nn.ModuleList(CustomLinear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def custom_mlp(image_shape, num_classes, hidden=(128, 64)):
    """The factory scratch-tui calls: the hidden widths come from --model-arg hidden='(256, 128)'."""
    return CustomMLP(math.prod(image_shape), tuple(hidden), num_classes)
