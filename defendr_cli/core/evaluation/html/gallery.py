"""The report's gallery: a few test images of one cached adversarial set, and what each model predicts.

    write_gallery(folder, models, data_path, adv_path, runtime) -> folder/gallery/gallery.json

From a seeded pool of POOL rows of the set, every model classifies the clean image and its
adversarial copy; the COUNT images that the most models get right when clean and wrong when
attacked are kept (distinct true classes first). Written into folder/gallery/: per image
row<r>-clean.png, row<r>-adv.png and row<r>-perturbation.png (the perturbation stretched to the
full range: 0.5 + d / (2 max|d|), grey = unchanged; images wider than MAX_SIDE pixels are scaled
down), and gallery.json:

    {'set', 'attack', 'eps_label', 'source_model', 'images': [{'row', 'true', 'perturbation_max',
     'clean', 'adv', 'perturbation'}], 'models': [{'name', 'clean_pred': [names], 'adv_pred': [names]}]}

`perturbation_max` is max |adv - clean| in pixel units ([0, 1]).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from defendr_cli.core.atomic import atomic_path, write_bytes_atomic
from defendr_cli.core.io.adversarial import AdvSetReader, read_adv_info
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.runtime import Runtime

COUNT = 4
POOL = 16
MAX_SIDE = 160
GALLERY_DIR = "gallery"


class NamedModel(Protocol):
    name: str
    module: torch.nn.Module  # pixels (N,3,H,W) in [0,1] -> logits (N,K)


@torch.no_grad()
def predict_classes(module: torch.nn.Module, images: torch.Tensor, runtime: Runtime, seed: int) -> np.ndarray:
    """argmax classes (N,) of `module` on images (N,3,H,W) in [0,1]; a randomized model draws from `seed`."""
    module.eval()
    devices = [runtime.device] if runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with runtime.autocast():
            logits = module(runtime.to_device(images))
    return logits.argmax(dim=1).cpu().numpy()


def choose_images(labels: np.ndarray, fooled: np.ndarray, count: int) -> list[int]:
    """Pool positions to show: most models fooled first (fooled (N,) counts), distinct labels first."""
    order = sorted(range(len(labels)), key=lambda i: -int(fooled[i]))
    chosen, seen = [], set()
    for i in order:
        if len(chosen) < count and int(labels[i]) not in seen:
            chosen.append(i)
            seen.add(int(labels[i]))
    chosen += [i for i in order if i not in chosen][: count - len(chosen)]
    return chosen


def png_bytes(image: np.ndarray) -> bytes:
    """(3,H,W) in [0,1] -> PNG bytes (scaled down when wider or taller than MAX_SIDE)."""
    pixels = (np.clip(np.transpose(image, (1, 2, 0)), 0, 1) * 255 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels)
    if max(picture.size) > MAX_SIDE:
        picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def stretched(delta: np.ndarray) -> np.ndarray:
    """A perturbation (3,H,W) mapped to [0,1]: 0.5 + delta / (2 max|delta|); all grey when delta is 0."""
    scale = float(np.abs(delta).max())
    return np.full_like(delta, 0.5) if scale == 0.0 else np.clip(0.5 + delta / (2.0 * scale), 0.0, 1.0)


def _read_pool(data_path: Path, adv_path: Path, pool: int, seed: int):
    with AdvSetReader(adv_path) as adv_reader, SplitReader(data_path, "test") as clean_reader:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 22]))
        positions = np.sort(rng.permutation(len(adv_reader))[:pool])
        rows = np.asarray(adv_reader.clean_indices, dtype=np.int64)[positions]
        labels = np.asarray(adv_reader.labels, dtype=np.int64)[positions]
        return rows, labels, clean_reader.read(rows), adv_reader.read(positions)


def write_gallery(folder: Path, models: Sequence[NamedModel], data_path: Path, adv_path: Path, runtime: Runtime,
                  *, count: int = COUNT, pool: int = POOL, seed: int = 0) -> Path:
    """Write folder/gallery/ (images and gallery.json) for `models` on the set at `adv_path`; return the JSON path."""
    names = list(read_cache_info(data_path).class_names)
    info = read_adv_info(adv_path)
    rows, labels, clean, adv = _read_pool(data_path, adv_path, max(pool, count), seed)
    preds = {m.name: (predict_classes(m.module, clean, runtime, seed), predict_classes(m.module, adv, runtime, seed))
             for m in models}
    fooled = sum(((c == labels) & (a != labels)).astype(int) for c, a in preds.values())
    chosen = choose_images(labels, np.asarray(fooled) if len(preds) else np.zeros(len(labels)), count)
    out = Path(folder) / GALLERY_DIR
    for stale in out.glob("row*-*.png"):
        stale.unlink()
    entries = []
    for i in chosen:
        delta = (adv[i] - clean[i]).numpy()
        files = {"clean": clean[i].numpy(), "adv": adv[i].numpy(), "perturbation": stretched(delta)}
        entry = {"row": int(rows[i]), "true": names[int(labels[i])], "perturbation_max": float(np.abs(delta).max())}
        for kind, picture in files.items():
            entry[kind] = f"row{int(rows[i])}-{kind}.png"
            write_bytes_atomic(out / entry[kind], png_bytes(picture))
        entries.append(entry)
    gallery = {"set": info.name, "attack": info.attack, "eps_label": info.eps_label, "source_model": info.source_model,
               "images": entries,
               "models": [{"name": name, "clean_pred": [names[int(c[i])] for i in chosen],
                           "adv_pred": [names[int(a[i])] for i in chosen]} for name, (c, a) in preds.items()]}
    with atomic_path(out / "gallery.json") as tmp:
        tmp.write_text(json.dumps(gallery, indent=2), encoding="utf-8")
    return out / "gallery.json"
