"""Tiny artefacts for attack tests: a 3-class 16px synthetic clean cache and a tinycnn checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.data.synthetic import generate_class_images
from defendr_cli.core.workspace import Workspace

NUM_CLASSES = 3
IMAGE_SIZE = 16
COUNTS = {"train": 6, "val": 0, "test": 10}  # images per class


def make_cache(ws: Workspace, name: str = "tiny") -> Path:
    path = ws.path_for("data", name)
    ids = [f"c{k}" for k in range(NUM_CLASSES)]
    counts = {split: n * NUM_CLASSES for split, n in COUNTS.items()}
    with CacheWriter(path, image_size=IMAGE_SIZE, resize="stretch", class_ids=ids,
                     class_names=[f"class {k}" for k in range(NUM_CLASSES)], split_counts=counts, seed=0,
                     source="synthetic", source_kind="synthetic") as writer:
        start = {"train": 0, "val": 1000, "test": 2000}
        for split, per_class in COUNTS.items():
            for k in range(NUM_CLASSES):
                images = generate_class_images(k, per_class, IMAGE_SIZE, seed=0, start=start[split])
                writer.append(split, images, np.full(per_class, k), [f"{split}-{k}-{i}" for i in range(per_class)])
    return path


def make_checkpoint(ws: Workspace, name: str = "baseline", *, train_steps: int = 30) -> Path:
    """A tinycnn classifier briefly trained on the cache's train split, saved in models/."""
    from defendr_cli.core.io.reader import SplitReader, read_cache_info
    from defendr_cli.core.io.checkpoint import save_checkpoint
    from defendr_cli.core.io.checkpoint_record import Checkpoint
    from defendr_cli.core.models.registry import build_classifier

    cache = ws.path_for("data", "tiny")
    info = read_cache_info(cache)
    torch.manual_seed(0)
    model = build_classifier("tinycnn", NUM_CLASSES)
    with SplitReader(cache, "train") as reader:
        images, labels = reader.read(np.arange(len(reader))), torch.from_numpy(reader.labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(train_steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    payload = {
        "format": "defendr-checkpoint", "version": 1, "kind": "classifier", "name": name,
        "summary": f"tinycnn test model {name}", "method": "baseline",
        "config": {"arch": "tinycnn", "num_classes": NUM_CLASSES, "image_size": IMAGE_SIZE},
        "state_dict": model.state_dict(),
        "data": {"name": "tiny", "fingerprint": info.fingerprint, "class_ids": info.class_ids,
                 "class_names": info.class_names, "image_size": IMAGE_SIZE},
        "hparams": {}, "history": [], "best": {},
        "provenance": {"seed": 0, "software_version": "test", "created": "", "parents": []},
    }
    return save_checkpoint(ws.path_for("model", name), Checkpoint.from_payload(payload))


def trained_tiny_model(seed: int = 0, steps: int = 150) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained briefly on a separable 4-class 8x8 problem; returns (model, x, y) test data."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(4, 3, 8, 8, generator=gen)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 4, (n,), generator=gen)
        x = (0.5 + 0.15 * (prototypes[y] - 0.5) + 0.25 * (torch.rand(n, 3, 8, 8, generator=gen) - 0.5)).clamp(0, 1)
        return x, y

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x_train, y_train = sample(256)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
    x_test, y_test = sample(128)
    return model.eval(), x_test, y_test


def small_model_batch():
    """A tiny seeded conv model with BatchNorm and Dropout (to check modes are restored) and a batch
    of 8 images (8, 3, 5, 5) in [0, 1] with labels in 0..3."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 25, 4))
    gen = torch.Generator().manual_seed(4)
    return model, torch.rand(8, 3, 5, 5, generator=gen), torch.randint(0, 4, (8,), generator=gen)


def seeded_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
