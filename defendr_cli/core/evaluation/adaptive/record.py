"""The suite's per-image record: `ImageOutcomes` as rows of core.io.per_image_record, and back.

One record per model and eps, `per_image-<model>-<eps>.h5` (and `.csv`) next to the report
(`record_filename`). Rows, per image (schema: docs/per_image_record.md):

- draw 0: the cascade's decision (one seeded pass per stage): one row per attack of the suite
  (then 'member-loss' for ensembles and 'pgd' for the PGD sweep): `broken` when that attack broke
  the image (for the cascade: the first one that did), its run (`restart`) and `iteration`, the
  margin and perturbation norms after the attack's stage, the passes it spent on the image.
- draws 1..D (randomized models only): the final images classified in draw d; the same rows,
  except that the cascade's last attack also counts as breaking an image that held the cascade
  but is misclassified in that draw, and its `margin` is the final image's margin in that draw
  (the sign of that margin, signed zero included, is the draw's verdict).

So an image is robust in the record (correct before and unbroken in every row) exactly when it is
in the report's robust mask: the robust accuracy of a deterministic model, the all-draws accuracy
of a randomized one. `SuiteRecord` writes the record chunk by chunk (rank 0) and restores the
chunks an interrupted run finished, so `--resume` attacks only the rest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defendr_cli.core.errors import CorruptArtefactError, MismatchError
from defendr_cli.core.evaluation.adaptive.outcomes import ImageOutcomes
from defendr_cli.core.io.per_image_record import (PerImageRecord, PerImageRecordWriter, RecordHeader,
                                                  load_per_image_record, partial_record_path, to_csv)

RECORD_PREFIX = "per_image"


def record_filename(model_name: str, eps_label: str) -> str:
    """'per_image-<model>-<eps>.h5' with every character outside [A-Za-z0-9._+-] as '_' ('8/255' -> '8_255')."""
    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._+-]", "_", text)
    return f"{RECORD_PREFIX}-{clean(model_name)}-{clean(eps_label)}.h5"


def rows_digest(rows: np.ndarray) -> str:
    """sha256 (16 hex digits) of the subset's split rows, for the record's header."""
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class OutcomeLayout:
    """How outcomes map to rows: attacks (cascade first, then routes), how many are the cascade's,
    gradient_free per cascade attack, draws (final draws of a randomized model; 0 if deterministic)."""

    attacks: tuple[str, ...]
    cascade: int
    gradient_free: tuple[bool, ...]
    draws: int


def _draw_verdict(margin: np.ndarray) -> np.ndarray:
    """A draw's verdict from its stored margin: > 0, or +0.0 (a tie the argmax resolved to the label)."""
    return (margin > 0) | ((margin == 0) & ~np.signbit(margin))


def _signed_margin(margin: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """margin with exact ties signed by the verdict (+0.0 correct, -0.0 wrong)."""
    margin = margin.astype(np.float32).copy()
    ties = margin == 0
    margin[ties] = np.where(correct[ties], np.float32(0.0), np.float32(-0.0))
    return margin


def outcome_rows(outcomes: ImageOutcomes, image_ids: np.ndarray, source_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The record's columns for `outcomes` (order: image, draw, attack). image_ids int64 (n,) split
    rows and source_ids (n,) of the outcomes' images."""
    n, a = len(outcomes), len(outcomes.attacks)
    broken = [outcomes.broken]
    margin = [outcomes.margin]
    if outcomes.stochastic:
        standing, last = outcomes.standing(), outcomes.cascade - 1
        for correct, draw_margin in zip(outcomes.draw_correct, outcomes.draw_margin):
            per_draw = outcomes.broken.copy()
            per_draw[last] |= standing & ~correct
            broken.append(per_draw)
            signed = outcomes.margin.copy()
            signed[last] = _signed_margin(draw_margin, correct)
            margin.append(signed)
    d = len(broken)
    broken_da = np.stack(broken)  # (D, A, n)
    first = np.where(broken_da.any(axis=1), broken_da.argmax(axis=1), -1)  # (D, n)
    names = np.array([*outcomes.attacks, ""])
    by_name = np.repeat(names[first][:, None, :], a, axis=1)  # (D, A, n)

    def per_row(values: np.ndarray) -> np.ndarray:  # (D, A, n) -> image-major (n * D * A,)
        return np.transpose(values, (2, 0, 1)).reshape(-1)

    def tile(values: np.ndarray) -> np.ndarray:  # (A, n) repeated over draws
        return per_row(np.broadcast_to(values, (d, a, n)))

    def per_image(values: np.ndarray | Sequence) -> np.ndarray:
        return np.repeat(np.asarray(values), d * a)

    return {"image": per_image(image_ids), "source_id": per_image(list(source_ids)),
            "label": per_image(outcomes.labels), "draw": np.tile(np.repeat(np.arange(d), a), n),
            "attack": np.tile(np.array(outcomes.attacks * d), n), "restart": tile(outcomes.restart),
            "correct_before": per_image(outcomes.clean), "broken": per_row(broken_da),
            "broken_by": per_row(by_name), "iteration": tile(outcomes.iteration), "margin": per_row(np.stack(margin)),
            "linf": tile(outcomes.linf), "l2": tile(outcomes.l2), "forward_passes": tile(outcomes.forward),
            "backward_passes": tile(outcomes.backward)}


def outcomes_from_rows(columns: dict[str, np.ndarray], positions: np.ndarray, image_ids: np.ndarray,
                       layout: OutcomeLayout) -> ImageOutcomes:
    """The ImageOutcomes of images `image_ids` (split rows, at subset `positions`) from a record's
    columns, written by `outcome_rows` with `layout`. CorruptArtefactError when rows are missing."""
    a, d = len(layout.attacks), layout.draws + 1
    attack_index = {name: i for i, name in enumerate(layout.attacks)}
    image_pos = {int(image): i for i, image in enumerate(image_ids)}
    keep = np.isin(columns["image"], image_ids)
    picked = {k: v[keep] for k, v in columns.items()}
    if picked["image"].shape[0] != len(image_ids) * a * d:
        raise CorruptArtefactError("the per-image record holds a partial set of rows for some image",
                                   hint="start a fresh evaluation (without --resume)")
    slot = (np.array([image_pos[int(i)] for i in picked["image"]]) * d + picked["draw"]) * a + \
        np.array([attack_index[str(name)] for name in picked["attack"]])
    order = np.argsort(slot)
    grid = {k: v[order].reshape(len(image_ids), d, a) for k, v in picked.items()}

    def first_draw(key: str) -> np.ndarray:
        return np.ascontiguousarray(grid[key][:, 0, :].T)  # (A, n)

    draw_margin = np.ascontiguousarray(grid["margin"][:, 1:, layout.cascade - 1].T) if layout.draws else None
    return ImageOutcomes(
        np.asarray(positions, dtype=np.int64), grid["label"][:, 0, 0].astype(np.int64), list(layout.attacks),
        layout.cascade, list(layout.gradient_free), grid["correct_before"][:, 0, 0].astype(bool),
        first_draw("broken").astype(bool), first_draw("restart").astype(np.int64),
        first_draw("iteration").astype(np.int64), first_draw("margin").astype(np.float32),
        first_draw("linf").astype(np.float32), first_draw("l2").astype(np.float32),
        first_draw("forward_passes").astype(np.int64), first_draw("backward_passes").astype(np.int64),
        draw_correct=None if draw_margin is None else _draw_verdict(draw_margin),
        draw_margin=None if draw_margin is None else draw_margin.astype(np.float32))


class SuiteRecord:
    """The per-image record of one model at one eps while the suite runs.

    path: the final file; header: what it is of (a resumed record must match it); image_ids int64
    (N,) and source_ids (N,): the subset's split rows and their source ids; layout: see
    OutcomeLayout. Only the writing process (`write`, rank 0) touches the files.
    """

    def __init__(self, path: Path, header: RecordHeader, image_ids: np.ndarray, source_ids: Sequence[str],
                 layout: OutcomeLayout, *, resume: bool, write: bool) -> None:
        self.path, self.header, self.layout = Path(path), header, layout
        self.image_ids, self.source_ids = np.asarray(image_ids, dtype=np.int64), list(source_ids)
        self.resume, self.write = resume, write
        self._saved: PerImageRecord | None = self._load_saved() if (resume and write) else None
        self._writer: PerImageRecordWriter | None = None

    def _load_saved(self) -> PerImageRecord | None:
        """The interrupted run's rows when they were written for this very evaluation, else None."""
        partial = partial_record_path(self.path)
        if not partial.exists():
            return None
        try:
            saved = load_per_image_record(partial, allow_incomplete=True)
        except (CorruptArtefactError, MismatchError, OSError):
            return None
        return saved if saved.header.matches(self.header) else None

    def restored(self, bounds: Sequence[tuple[int, int]]) -> dict[int, ImageOutcomes]:
        """{chunk index: outcomes} of the chunks [start, stop) (subset positions) the saved record
        finished completely (writer only; other ranks get them broadcast)."""
        if self._saved is None:
            return {}
        done = set(np.unique(self._saved.columns["image"]).tolist())
        out = {}
        for index, (start, stop) in enumerate(bounds):
            ids = self.image_ids[start:stop]
            if ids.size and all(int(i) in done for i in ids):
                out[index] = outcomes_from_rows(self._saved.columns, np.arange(start, stop), ids, self.layout)
        return out

    def add(self, parts: Sequence[ImageOutcomes]) -> None:
        """Append the rows of finished chunks (writer only; opens the partial file on first use)."""
        if not self.write or not parts:
            return
        if self._writer is None:
            self._writer = PerImageRecordWriter(self.path, self.header, force=True, fresh=self._saved is None)
        for part in parts:
            ids = self.image_ids[part.positions]
            if set(ids.tolist()) & set(self._writer.finished.tolist()):
                continue  # restored from the interrupted run: its rows are in the file already
            self._writer.append(outcome_rows(part, ids, [self.source_ids[p] for p in part.positions]))

    def finish(self) -> Path | None:
        """Finalize `path` and write its CSV twin (writer only); returns the record's path."""
        if not self.write:
            return None
        if self._writer is None:
            self._writer = PerImageRecordWriter(self.path, self.header, force=True, fresh=self._saved is None)
        path = self._writer.finalize()
        to_csv(load_per_image_record(path), path.with_suffix(".csv"))
        return path

    def close(self) -> None:
        """Leave the partial file for a resume (after an error)."""
        if self._writer is not None:
            self._writer.close()
