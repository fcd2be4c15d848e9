"""Helpers for training tests: a tiny synthetic clean cache and noise "adversarial" sets of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.data.synthetic import generate_class_images, synthetic_classes

TINY_COUNTS = {"train": 12, "val": 4, "test": 4}  # per class


def write_tiny_cache(path: Path, *, num_classes: int = 3, image_size: int = 16, seed: int = 0,
                     per_class: dict[str, int] = TINY_COUNTS) -> Path:
    classes = synthetic_classes(num_classes)
    counts = {split: n * num_classes for split, n in per_class.items()}
    with CacheWriter(path, image_size=image_size, resize="stretch", class_ids=[c.class_id for c in classes],
                     class_names=[c.name for c in classes], split_counts=counts, seed=seed,
                     source=f"synthetic (seed {seed})", source_kind="synthetic", force=True) as writer:
        start = 0
        for split, n in per_class.items():
            for k in range(num_classes):
                images = generate_class_images(k, n, image_size, seed, start=start)
                writer.append(split, images, [k] * n, [f"syn-{k}-{start + j}" for j in range(n)])
            start += n
    return path


def write_noise_adv_set(workspace, cache_path: Path, name: str, *, split: str = "train", eps: float = 0.05,
                        seed: int = 1) -> Path:
    """An adversarial-set file whose 'attack' is random sign noise of size eps (enough for data tests)."""
    from defendr_cli.core.io.adversarial import AdvSetWriter

    info = read_cache_info(cache_path)
    final = workspace.path_for("adv", name)
    with SplitReader(cache_path, split) as reader:
        clean = reader.read(np.arange(len(reader)))
        labels = torch.as_tensor(np.asarray(reader.labels))
    generator = torch.Generator().manual_seed(seed)
    adv = (clean + eps * torch.sign(torch.randn(clean.shape, generator=generator))).clamp(0, 1)
    params = {"name": name, "attack": "noise", "eps": eps, "eps_label": str(eps), "eps_space": "pixel",
              "split": split, "source_model": "none", "source_model_fingerprint": "",
              "clean_fingerprint": info.fingerprint, "seed": seed}
    writer = AdvSetWriter(final, count=len(labels), image_shape=clean.shape[1:], dtype="float16", params=params)
    n = len(labels)
    writer.write(0, adv, labels=labels, clean_indices=torch.arange(n), success=torch.zeros(n, dtype=torch.bool),
                 clean_pred=labels, adv_pred=labels, targets=None)
    return writer.finish({"success_rate": 0.0})
