"""Paired Grad-CAM for clean test images and their adversarial copies (paper Figures 12-14).

`gradcam_pairs(model, data_path, adv_path, out_dir, ...)` picks `count` test images (by default
ones the model classifies correctly when clean and wrongly when attacked, in a seeded order),
computes Grad-CAM maps for each explain target of the model (core.explain.gradcam) on both
versions, and writes one PNG grid per target plus gradcam.json into `out_dir`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.predictions import predict
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.evaluation.transfer.inputs import check_adv_set
from defendr_cli.core.explain.figures import PairedCam, paired_grid_png
from defendr_cli.core.explain.gradcam import GradCAM, explain_targets
from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime

SELECTIONS = ("fooled", "all")


def choose_rows(clean_ok: np.ndarray, adv_ok: np.ndarray, count: int, select: str, seed: int) -> tuple[np.ndarray, int]:
    """Positions (into the adversarial set) to explain, and how many fooled images exist.

    'fooled': correct when clean, wrong when attacked; when fewer exist, the rest is filled with
    other correctly classified images, then any. 'all': any images. Seeded order, sorted output.
    """
    if select not in SELECTIONS:
        raise InputError(f"unknown --select '{select}': use one of {', '.join(SELECTIONS)}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 12])).permutation(len(clean_ok))
    fooled = clean_ok & ~adv_ok
    if select == "all":
        chosen = order[:count]
    else:
        ranked = sorted(order.tolist(), key=lambda i: (not fooled[i], not clean_ok[i]))
        chosen = np.asarray(ranked[:count], dtype=np.int64)
    return np.sort(chosen), int(fooled.sum())


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def cam_maps(target, images: torch.Tensor, runtime: Runtime, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps (N, H, W) in [0, 1] and predictions (N,) of one explain target, batch by batch."""
    maps, preds = [], []
    with GradCAM(target.module, target.layer) as cam:
        for start in range(0, len(images), batch_size):
            m, p = cam(runtime.to_device(images[start : start + batch_size]))
            maps.append(m.numpy())
            preds.append(p.numpy())
    return np.concatenate(maps), np.concatenate(preds)


def gradcam_pairs(model: EvalModel, data_path: Path, adv_path: Path, out_dir: Path, *, runtime: Runtime,
                  count: int = 16, select: str = "fooled", seed: int = 0, batch_size: int = 32,
                  reporter: Reporter | None = None) -> dict:
    """Write paired Grad-CAM grids for `model` into `out_dir`; return what was done (JSON-able)."""

    if count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    reporter = reporter or NullReporter()
    cache_info = read_cache_info(data_path)
    names = list(cache_info.class_names)
    with SplitReader(data_path, "test") as clean_reader, AdvSetReader(adv_path) as adv_reader:
        labels = np.asarray(adv_reader.labels, dtype=np.int64)
        clean_rows = np.asarray(adv_reader.clean_indices, dtype=np.int64)
        check_adv_set(adv_reader.info, cache_info, labels, clean_rows, np.asarray(clean_reader.labels))
        clean_pred = predict(model.module, clean_reader.iter_batches(batch_size, indices=clean_rows), runtime,
                             seed=seed, total=len(clean_rows), reporter=reporter, description="clean predictions")
        adv_pred = predict(model.module, adv_reader.iter_batches(batch_size), runtime, seed=seed,
                           total=len(adv_reader), reporter=reporter, description="adversarial predictions")
        clean_ok = clean_pred.on_rows(clean_rows).preds == labels
        adv_ok = adv_pred.on_rows(clean_rows).preds == labels
        positions, fooled = choose_rows(clean_ok, adv_ok, count, select, seed)
        clean_images = clean_reader.read(clean_rows[positions])
        adv_images = adv_reader.read(positions)
    if select == "fooled" and fooled < len(positions):
        reporter.note(f"only {fooled} test images are correct-then-fooled; the grid is filled with other images")
    figures, targets = [], []
    out_dir = Path(out_dir)
    with reporter.task(f"Grad-CAM {model.name}", total=len(explain_targets(model.module, model.name))) as task:
        for target in explain_targets(model.module, model.name):
            clean_maps, clean_p = cam_maps(target, clean_images, runtime, batch_size)
            adv_maps, adv_p = cam_maps(target, adv_images, runtime, batch_size)
            rows = [PairedCam(clean_images[i].numpy(), adv_images[i].numpy(), clean_maps[i], adv_maps[i],
                              names[labels[p]], names[clean_p[i]], names[adv_p[i]], int(clean_rows[p]))
                    for i, p in enumerate(positions)]
            path = paired_grid_png(rows, out_dir / f"gradcam-{_safe(target.label)}.png",
                                   title=f"Grad-CAM {target.label}: clean vs {adv_reader.info.name}")
            figures.append(path.name)
            targets.append({"label": target.label, "figure": path.name,
                            "clean_pred": [names[c] for c in clean_p], "adv_pred": [names[a] for a in adv_p],
                            "mean_abs_difference": float(np.abs(adv_maps - clean_maps).mean())})
            task.advance(1)
    result = {"model": model.name, "adv_set": adv_reader.info.name, "select": select, "count": len(positions),
              "fooled_available": fooled, "rows": clean_rows[positions].tolist(),
              "true": [names[labels[p]] for p in positions], "targets": targets, "figures": figures,
              "files": [str(out_dir / f) for f in figures] + [str(out_dir / "gradcam.json")]}
    with atomic_path(out_dir / "gradcam.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
