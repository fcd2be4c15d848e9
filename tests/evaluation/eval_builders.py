"""Tiny artefacts for evaluation tests, built with the project's own writers (seeded, CPU, seconds).

write_cache: a synthetic clean cache (4 classes, 16 px); train_classifier: a tinycnn trained a
few hundred steps; save_classifier: its checkpoint; write_adv_set: an FGSM/PGD test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from defendr_cli.core.attacks import fgsm, pgd
from defendr_cli.core.io.adversarial import AdvSetWriter
from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.data.synthetic import synthetic_classes
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.io.checkpoint import save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.workspace import Workspace

SIZE = 16
CLASSES = 4


COLOURS = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9], [0.9, 0.9, 0.1],
                    [0.9, 0.1, 0.9], [0.1, 0.9, 0.9]])


def easy_images(label: int, count: int, seed: int) -> np.ndarray:
    """uint8 (count, 3, SIZE, SIZE): a square of class colour `label` at a random place on grey noise."""
    rng = np.random.default_rng([seed, label, count])
    out = rng.uniform(0.35, 0.65, size=(count, 3, SIZE, SIZE))
    for i in range(count):
        side = int(rng.integers(6, 10))
        top, left = rng.integers(0, SIZE - side, size=2)
        out[i, :, top:top + side, left:left + side] = COLOURS[label][:, None, None] + rng.normal(0, 0.05, (3, 1, 1))
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def write_cache(ws: Workspace, name: str = "synth", *, classes: int = CLASSES, train: int = 40, test: int = 10,
                seed: int = 0, class_offset: int = 0) -> Path:
    """data/<name>.h5 with `train` and `test` easy images per class (val: 2 per class)."""
    path = ws.path_for("data", name)
    infos = synthetic_classes(classes + class_offset)[class_offset:]
    counts = {"train": train * classes, "val": 2 * classes, "test": test * classes}
    with CacheWriter(path, image_size=SIZE, resize="stretch", class_ids=[c.class_id for c in infos],
                     class_names=[c.name for c in infos], split_counts=counts, seed=seed,
                     source="easy test images", source_kind="synthetic") as writer:
        for split, per_class, offset in (("train", train, 0), ("val", 2, 1), ("test", test, 2)):
            images = np.concatenate([easy_images(k + class_offset, per_class, seed * 10 + offset)
                                     for k in range(classes)])
            labels = np.repeat(np.arange(classes), per_class)
            writer.append(split, images, labels, [f"{split}-{i}" for i in range(len(labels))])
    return path


def train_classifier(cache: Path, *, arch: str = "tinycnn", steps: int = 60, seed: int = 0) -> torch.nn.Module:
    """A classifier trained with Adam on the cache's train split (eval mode on return)."""
    torch.manual_seed(seed)
    info = read_cache_info(cache)
    model = build_classifier(arch, info.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with SplitReader(cache, "train") as reader:
        images, labels = reader.read(np.arange(len(reader))), torch.as_tensor(reader.labels)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(labels), (32,), generator=generator)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def save_classifier(ws: Workspace, name: str, module: torch.nn.Module, cache: Path, *, arch: str = "tinycnn",
                    method: str = "baseline", hparams: dict | None = None, defense: dict | None = None) -> Path:
    info = read_cache_info(cache)
    config = {"arch": arch, "num_classes": info.num_classes, "image_size": info.image_size}
    if defense:
        config["defense"] = defense
    payload = {
        "format": "defendr-checkpoint", "version": 1, "kind": "classifier", "name": name,
        "summary": f"{name} test model", "method": method, "config": config,
        "state_dict": module.state_dict(),
        "data": {"name": info.name, "fingerprint": info.fingerprint, "class_ids": info.class_ids,
                 "class_names": info.class_names, "image_size": info.image_size},
        "hparams": hparams or {}, "history": [], "best": {},
        "provenance": {"seed": 0, "software_version": "test", "created": "now", "parents": []},
    }
    return save_checkpoint(ws.path_for("model", name), Checkpoint.from_payload(payload))


def write_adv_set(ws: Workspace, model: torch.nn.Module, cache: Path, *, attack: str = "fgsm", eps: float = 8 / 255,
                  eps_label: str = "8/255", steps: int | None = None, source: str = "baseline",
                  split: str = "test", name: str | None = None) -> Path:
    """adv/<name>.h5: `attack` examples of the whole `split` against `model` (float16)."""
    from defendr_cli.core.workspace import adv_set_name

    info = read_cache_info(cache)
    name = name or adv_set_name(attack, eps_label, source, split, steps=steps)
    with SplitReader(cache, split) as reader:
        images, labels = reader.read(np.arange(len(reader))), torch.as_tensor(reader.labels)
    if attack == "fgsm":
        result = fgsm(model, images, labels, eps)
    else:
        result = pgd(model, images, labels, eps, steps=steps or 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean_pred, adv_pred = model(images).argmax(1), model(result.adv).argmax(1)
    params = {"name": name, "attack": attack, "eps": float(eps), "eps_label": eps_label, "eps_space": "pixel",
              "steps": steps, "split": split, "source_model": source, "source_model_fingerprint": "test",
              "clean_fingerprint": info.fingerprint, "clean_cache": info.name, "image_size": info.image_size,
              "dtype": "float16", "count": len(labels), "seed": 0}
    path = ws.path_for("adv", name)
    with AdvSetWriter(path, count=len(labels), image_shape=images.shape[1:], dtype="float16", params=params) as w:
        w.write(0, result.adv, labels=labels, clean_indices=torch.arange(len(labels)), success=result.success,
                clean_pred=clean_pred, adv_pred=adv_pred, targets=None)
        w.finish({"success_rate": float(result.success.float().mean()), "summary": name})
    return path


def model_fingerprint(path: Path) -> str:
    return file_fingerprint(path)
