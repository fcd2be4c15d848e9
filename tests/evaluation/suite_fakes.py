"""Fake models and attacks with known behaviour for the suite and masking tests.

Images are (N, 3, 4, 4) in [0, 1]. Pixel [0, 0, 0] encodes the class the model predicts
(class c <-> value c / (K - 1)); pixel [1, 0, 0] encodes an image id (id / 1000) so a fake attack
knows which images it was given.
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack

K = 10


def make_images(classes: list[int]) -> torch.Tensor:
    """One image per entry: predicted class `classes[i]`, id i."""
    images = torch.full((len(classes), 3, 4, 4), 0.5)
    images[:, 0, 0, 0] = torch.tensor(classes, dtype=torch.float32) / (K - 1)
    images[:, 1, 0, 0] = torch.arange(len(classes), dtype=torch.float32) / 1000
    return images


def image_ids(images: torch.Tensor) -> list[int]:
    return [round(v) for v in (images[:, 1, 0, 0] * 1000).tolist()]


class PixelModel(nn.Module):
    """Logits peaked at the class encoded in pixel [0, 0, 0] (smooth, so gradients exist)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x[:, 0, 0, 0] * (K - 1)
        return -(value[:, None] - torch.arange(K, dtype=x.dtype)) ** 2


class NoisyModel(nn.Module):
    """PixelModel, except images with id >= `stable` are misclassified with probability 1/2 per forward
    (global torch RNG)."""

    def __init__(self, stable: int) -> None:
        super().__init__()
        self.stable = stable
        self.base = PixelModel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        ids = torch.tensor(image_ids(x))
        flip = (ids >= self.stable) & (torch.rand(len(x)) < 0.5)
        return torch.where(flip[:, None], logits.roll(1, dims=1), logits)


class RecordingAttack:
    """Breaks the images whose id is in `breaks` (moves them to class label + 1); records the ids it saw."""

    def __init__(self, breaks: set[int]) -> None:
        self.breaks = breaks
        self.seen: list[int] = []

    def __call__(self, model, images, labels, generator) -> AttackResult:
        ids = image_ids(images)
        self.seen += ids
        adv = images.clone()
        for row, image_id in enumerate(ids):
            if image_id in self.breaks:
                adv[row, 0, 0, 0] = float((int(labels[row]) + 1) % K) / (K - 1)
        return AttackResult(adv, None)


def recording(name: str, breaks: set[int]) -> tuple[SuiteAttack, RecordingAttack]:
    attack = RecordingAttack(breaks)
    return SuiteAttack(name, attack), attack
