"""Paired Grad-CAM for clean test images and their adversarial copies (paper Figures 12-14).

`gradcam_pairs(model, data_path, adv_path, out_dir, ...)` picks `count` test images (by default
ones the model classifies correctly when clean and wrongly when attacked, in a seeded order),
computes Grad-CAM maps for each explain target of the model (core.explain.gradcam) on both
versions, writes one PNG grid per target plus gradcam.json into `out_dir`, and returns a
`GradcamResult` (gradcam.json is its `report()`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class GradcamTarget:
    """One explained module (the model, or an ensemble member): its grid's file name, the predicted
    class names of the clean and the adversarial images, and the mean |adv map - clean map| (maps in [0, 1])."""

    label: str
    figure: str
    clean_pred: list[str]
    adv_pred: list[str]
    mean_abs_difference: float


@dataclass
class GradcamResult:
    """What one paired Grad-CAM run drew into `folder`: `count` test images of the adversarial set
    `adv_set` (clean split rows `rows`, true class names `true`), chosen by `select`
    (`fooled_available`: how many were correct-then-fooled), one grid per target; `files`: the
    grids and gradcam.json."""

    folder: Path
    model: str
    adv_set: str
    select: str
    count: int
    fooled_available: int
    rows: list[int]
    true: list[str]
    targets: list[GradcamTarget]
    figures: list[str]
    files: list[Path] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """gradcam.json's content (plain values)."""
        return {"model": self.model, "adv_set": self.adv_set, "select": self.select, "count": self.count,
                "fooled_available": self.fooled_available, "rows": self.rows, "true": self.true,
                "targets": [asdict(t) for t in self.targets], "figures": self.figures,
                "files": [str(f) for f in self.files]}

    def to_dict(self) -> dict[str, Any]:
        return {**self.report(), "folder": str(self.folder)}


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
                  reporter: Reporter | None = None) -> GradcamResult:
    """Write paired Grad-CAM grids and gradcam.json for `model` into `out_dir`; return what was drawn."""

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
            targets.append(GradcamTarget(target.label, path.name, [names[c] for c in clean_p],
                                         [names[a] for a in adv_p], float(np.abs(adv_maps - clean_maps).mean())))
            task.advance(1)
    result = GradcamResult(out_dir, model.name, adv_reader.info.name, select, len(positions), fooled,
                           clean_rows[positions].tolist(), [names[labels[p]] for p in positions], targets, figures,
                           [out_dir / f for f in figures] + [out_dir / "gradcam.json"])
    with atomic_path(out_dir / "gradcam.json") as tmp:
        tmp.write_text(json.dumps(result.report(), indent=2), encoding="utf-8")
    return result
