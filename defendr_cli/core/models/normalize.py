"""Per-channel mean/std normalization as a module, so it is the first layer of every classifier.

Inputs are pixels in [0, 1], shape (N, 3, H, W); outputs are (x - mean) / std with the ImageNet
statistics. Keeping this inside the model lets attacks work in pixel space (eps means one thing).
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel. Buffers are not persistent: they never enter a state dict."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={tuple(round(v, 3) for v in self.mean.flatten().tolist())}, " \
               f"std={tuple(round(v, 3) for v in self.std.flatten().tolist())}"
