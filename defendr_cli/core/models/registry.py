"""The classifier registry: `build_classifier(arch, num_classes, pretrained=None)`.

Every classifier is a `Classifier`: pixels (N, 3, H, W) in [0, 1] -> ImageNet mean/std
normalization (first layer) -> backbone -> adaptive average pooling -> linear head -> logits (N, K).
Any image size works. `.last_conv_stage` is the last convolutional stage (Grad-CAM, feature-guided
denoiser loss); `.head` is the final linear layer.

Architectures: resnet18/34/50/101/152 (torchvision, weights=None, then optional pretrained
weights: a local state-dict file or 'imagenet'), tinyresnet (quick CPU profile), tinycnn (tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.models.normalize import Normalize
from defendr_cli.core.models.pretrained import load_pretrained
from defendr_cli.core.models.tiny import TinyCNN, TinyResNet

TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
TINY_ARCHS = ("tinyresnet", "tinycnn")
ARCHS = TORCHVISION_ARCHS + TINY_ARCHS
DEFAULT_ARCH = "resnet101"


class Classifier(nn.Module):
    """Normalize -> `net`. `net` has a last conv stage at attribute `stage_attr` and a head `fc`.

    After `freeze_backbone()`, only the last stage and the head have requires_grad, and the
    frozen part stays in eval mode (its BatchNorm statistics do not move) even under `.train()`.
    """

    def __init__(self, arch: str, net: nn.Module, stage_attr: str) -> None:
        super().__init__()
        self.arch = arch
        self.normalize = Normalize()
        self.net = net
        self._stage_attr = stage_attr
        self.frozen_backbone = False

    @property
    def last_conv_stage(self) -> nn.Module:
        return getattr(self.net, self._stage_attr)

    @property
    def head(self) -> nn.Linear:
        return self.net.fc

    @property
    def num_classes(self) -> int:
        return self.net.fc.out_features

    def trainable_parts(self) -> list[nn.Module]:
        """The modules that train under --freeze-backbone: last stage and head."""
        return [self.last_conv_stage, self.head]

    def freeze_backbone(self) -> "Classifier":
        self.frozen_backbone = True
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        for part in self.trainable_parts():
            for parameter in part.parameters():
                parameter.requires_grad_(True)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if mode and self.frozen_backbone:
            self.net.eval()
            for part in self.trainable_parts():
                part.train(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _torchvision_resnet(arch: str, num_classes: int) -> nn.Module:
    import torchvision.models as tvm

    net = getattr(tvm, arch)(weights=None)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


_TINY_BUILDERS: dict[str, Callable[[int], nn.Module]] = {"tinyresnet": TinyResNet, "tinycnn": TinyCNN}


def build_classifier(arch: str, num_classes: int, pretrained: str | os.PathLike | None = None) -> Classifier:
    """A fresh classifier (train mode, CPU, fp32) with a `num_classes`-way head.

    pretrained: None; a path to a torchvision state-dict file; or 'imagenet' (torchvision weights
    API; offline without the cached file -> SourceError naming the file to download). The
    pretrained 1000-class head is replaced by a fresh one sized to num_classes.
    """
    if arch not in ARCHS:
        raise InputError(f"unknown architecture '{arch}': use one of {', '.join(ARCHS)}")
    if num_classes < 2:
        raise InputError(f"a classifier needs at least 2 classes, got {num_classes}")
    if arch in TORCHVISION_ARCHS:
        net = _torchvision_resnet(arch, num_classes)
        if pretrained:
            load_pretrained(net, arch, pretrained)
        return Classifier(arch, net, "layer4")
    if pretrained:
        raise InputError(f"'{arch}' has no pretrained weights; drop --pretrained or use a resnet")
    return Classifier(arch, _TINY_BUILDERS[arch](num_classes), "last_stage")
