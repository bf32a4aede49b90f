"""A small LeNet (LeCun et al., 1998), as your own model file.

    scratch-tui train --model examples/lenet.py:LeNet
    scratch-tui train --model examples/lenet.py:LeNet --model-arg width=16 --dataset cifar10

scratch-tui calls `LeNet(image_shape=(C, H, W), num_classes=K, **model_args)`; `width` scales the channels.
"""

from torch import nn


class LeNet(nn.Module):
    def __init__(self, image_shape, num_classes, width=6):
        super().__init__()
        channels, height, width_px = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        # each block: a 5x5 convolution (the first padded) and a 2x2 pooling
        h = ((height // 2) - 4) // 2
        w = ((width_px // 2) - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * h * w, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
