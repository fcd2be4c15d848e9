"""Small networks for the quick CPU profile and unit tests.

Both take normalized images (N, 3, H, W) of any size (adaptive pooling) and return logits (N, K).
They expose the same attribute names as torchvision's ResNet where it matters to `Classifier`:
`last_stage` (the last convolutional stage) and `fc` (the head).

- TinyResNet: 3 stages of BasicBlocks with widths 16/32/64 (strides 1/2/2), ~0.2M parameters;
  trains to >= 90% on the 32x32 synthetic data in about a CPU minute.
- TinyCNN: two conv layers (8, 16 channels), a few thousand parameters, for unit tests.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


def _stage(in_width: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_width != width:
        downsample = nn.Sequential(
            nn.Conv2d(in_width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
        )
    layers = [BasicBlock(in_width, width, stride, downsample)]
    layers += [BasicBlock(width, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class TinyResNet(nn.Module):
    """conv3x3(16) -> stages 16/32/64 (BasicBlocks, `blocks` each) -> global avg pool -> fc."""

    def __init__(self, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64), blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        self.layer1 = _stage(widths[0], widths[0], blocks, 1)
        self.layer2 = _stage(widths[0], widths[1], blocks, 2)
        self.last_stage = _stage(widths[1], widths[2], blocks, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last_stage(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyCNN(nn.Module):
    """conv(8) -> conv(16, stride 2) -> global avg pool -> fc. For fast unit tests."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.last_stage = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last_stage(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))
