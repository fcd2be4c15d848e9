"""Small builders for the import tests: weights files, exported programs, wnid caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.models.class_map import imagenet_wnids
from defendr_cli.core.workspace import Workspace

SIZE = 16


def resnet18(num_classes: int = 5) -> nn.Module:
    """A torchvision resnet18 with random weights and random BatchNorm statistics (eval mode)."""
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=num_classes)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


class Thousand(nn.Module):
    """A fake ImageNet classifier: (N, 3, H, W) -> 1000 logits (a conv, pooling and a linear head)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def export_program(net: nn.Module, path: Path, size: int = SIZE) -> Path:
    """torch.export.save of `net` with a dynamic batch dimension."""
    example = (torch.rand(2, 3, size, size),)
    program = torch.export.export(net.eval(), example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


def write_cache(ws: Workspace, class_ids: list[str], name: str = "wnids", per_split: int = 2) -> Path:
    """data/<name>.h5 with the given class ids, `per_split` random images per class and split."""
    path = ws.path_for("data", name)
    rng = np.random.default_rng(0)
    count = per_split * len(class_ids)
    with CacheWriter(path, image_size=SIZE, resize="stretch", class_ids=class_ids, class_names=list(class_ids),
                     split_counts={s: count for s in ("train", "val", "test")}, seed=0,
                     source="import tests", source_kind="synthetic") as writer:
        for split in ("train", "val", "test"):
            images = rng.integers(0, 256, (count, 3, SIZE, SIZE), dtype=np.uint8)
            labels = np.repeat(np.arange(len(class_ids)), per_split)
            writer.append(split, images, labels, [f"{split}-{i}" for i in range(count)])
    return path


def some_wnids(positions=(3, 0, 999, 500)) -> list[str]:
    """ImageNet wnids at these output positions, sorted like a Defendr ImageNet cache."""
    table = imagenet_wnids()
    return sorted(table[p] for p in positions)
