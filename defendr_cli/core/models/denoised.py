"""A denoised classifier: a denoiser (DUNET) in front of a classifier, usable like any classifier.

`DenoisedClassifier(denoiser, classifier)(x) = classifier(denoiser(x))`, pixels (N,3,H,W) in
[0, 1] -> logits (N, K). Gradients flow through both parts (white-box attacks see the whole
defense). `.denoiser` and `.classifier` stay reachable, and `.last_conv_stage` is the classifier's,
so Grad-CAM and the feature-guided loss hook the classifier behind the denoiser.

`freeze(module)` puts a module in eval mode and turns off its parameters' gradients: the guided
denoiser's target classifier is frozen this way (its weights never change while the denoiser
trains). A DenoisedClassifier keeps its classifier in eval mode even when `.train()` is called.
"""

from __future__ import annotations

import torch
from torch import nn


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and requires_grad=False on every parameter; returns the module."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class DenoisedClassifier(nn.Module):
    """classifier(denoiser(x)); the classifier is frozen (always eval mode, no parameter grads)."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = freeze(classifier)

    @property
    def last_conv_stage(self) -> nn.Module:
        """The classifier's last convolutional stage (for Grad-CAM and feature guidance)."""
        return self.classifier.last_conv_stage

    def train(self, mode: bool = True) -> "DenoisedClassifier":
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.denoiser(x))
