"""Randomization defense (Xie et al. 2018, "Mitigating Adversarial Effects Through Randomization").

An inference-time wrapper around any classifier: resize the image to a random size R in
[lo, hi), pad it at a random offset to a fixed hi x hi canvas, classify. Two variants exist and
they differ; the module says which one runs (`RandomResizePad.variant`):

- ``paper`` (the paper's description): R in [299, 331) for 299-pixel inputs, **bilinear**
  resizing, pad to 331 x 331 with value 0.5 in pixel space (= 0 in [-1, 1] space, the paper's
  "zero padding"; not 0 after mean/std normalization). One pass by default.
- ``competition`` (the authors' NIPS 2017 competition code): R in [310, 331), **nearest
  neighbour** resizing, same padding, a random horizontal flip, and softmax probabilities
  averaged over `passes` (30 by default) independent random draws.

Other image sizes scale the range proportionally: lo = round(S * 299/299 or 310/299),
hi = round(S * 331/299); e.g. S = 32 gives [32, 35) (paper) and [33, 35) (competition), padded
to 35 x 35. The classifier must accept the padded size (torchvision ResNets pool adaptively).

Randomness: one R per pass for the whole batch, pad offsets and flips per sample. A
`torch.Generator` (CPU) makes draws reproducible; without one the global torch RNG is used. Every
step is F.interpolate / F.pad / flip, so the module is differentiable (attacks can use EOT).

Input pixels (N, 3, S, S) in [0, 1]. Output: the classifier's logits (N, K) when passes == 1,
else the log of the averaged probabilities (N, K) (argmax and softmax keep their meaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError

REFERENCE_SIZE = 299
PAD_VALUE = 0.5  # pixel space; = 0 in [-1, 1] space


@dataclass(frozen=True)
class VariantSpec:
    low: int  # at REFERENCE_SIZE; R is drawn from [low, high)
    high: int  # also the padded canvas size
    mode: str  # F.interpolate mode
    flip: bool
    default_passes: int


VARIANTS: dict[str, VariantSpec] = {
    "paper": VariantSpec(299, 331, "bilinear", False, 1),
    "competition": VariantSpec(310, 331, "nearest", True, 30),
}


def resize_range(image_size: int, variant: str) -> tuple[int, int]:
    """(lo, hi) for `image_size`: R is drawn from [lo, hi) and the canvas is hi x hi pixels."""
    spec = _spec(variant)
    low = max(1, round(image_size * spec.low / REFERENCE_SIZE))
    high = round(image_size * spec.high / REFERENCE_SIZE)
    return low, max(high, low + 1)


def _spec(variant: str) -> VariantSpec:
    if variant not in VARIANTS:
        raise InputError(f"unknown randomization variant '{variant}': use one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


class RandomResizePad(nn.Module):
    """classifier(random_pad(random_resize(x))), averaged over `passes` (see module docstring)."""

    def __init__(self, classifier: nn.Module, image_size: int, variant: str = "paper",
                 passes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        spec = _spec(variant)
        self.classifier = classifier
        self.variant = variant
        self.image_size = int(image_size)
        self.low, self.high = resize_range(self.image_size, variant)
        self.mode = spec.mode
        self.flip = spec.flip
        self.passes = int(passes if passes is not None else spec.default_passes)
        if self.passes < 1:
            raise InputError(f"randomization passes must be at least 1, got {self.passes}")
        self.generator = generator

    @property
    def last_conv_stage(self) -> nn.Module:
        return self.classifier.last_conv_stage

    def extra_repr(self) -> str:
        return (f"variant={self.variant}, resize=[{self.low},{self.high}) {self.mode}, "
                f"pad_to={self.high}, flip={self.flip}, passes={self.passes}")

    def _randint(self, low: int, high: int, count: int) -> torch.Tensor:
        return torch.randint(low, high, (count,), generator=self.generator)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """One random draw: (N,3,H,W) in [0,1] -> (N,3,hi,hi) in [0,1]."""
        size = int(self._randint(self.low, self.high, 1).item())
        kwargs = {"align_corners": False} if self.mode == "bilinear" else {}
        resized = F.interpolate(x, size=(size, size), mode=self.mode, **kwargs)
        n = x.shape[0]
        room = self.high - size
        tops = self._randint(0, room + 1, n).to(x.device)
        lefts = self._randint(0, room + 1, n).to(x.device)
        if self.flip:
            flips = self._randint(0, 2, n).to(x.device).bool()
            resized = torch.where(flips.view(n, 1, 1, 1), resized.flip(-1), resized)
        # Pad by `room` on every side, then cut each sample's hi x hi window: a window starting at
        # (room - top, room - left) puts the image at offset (top, left) of the canvas.
        padded = F.pad(resized, (room, room, room, room), mode="constant", value=PAD_VALUE)
        steps = torch.arange(self.high, device=x.device)
        rows = (room - tops).view(n, 1) + steps.view(1, -1)  # (n, hi)
        cols = (room - lefts).view(n, 1) + steps.view(1, -1)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        windows = padded.permute(0, 2, 3, 1)[batch, rows.view(n, -1, 1), cols.view(n, 1, -1)]  # (n, hi, hi, C)
        return windows.permute(0, 3, 1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.passes == 1:
            return self.classifier(self.transform(x))
        probs = None
        for _ in range(self.passes):
            p = F.softmax(self.classifier(self.transform(x)).float(), dim=1)
            probs = p if probs is None else probs + p
        return torch.log((probs / self.passes).clamp_min(1e-12))
