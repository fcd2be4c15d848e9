"""Evaluation results as dataclasses: the transfer protocol's and the adaptive protocol's.

Readers (tables, report, plots, the reproduce report) use attributes; `to_dict()` gives the
JSON content stored in results.json (key names and order fixed: reports compare across runs).
Accuracies are fractions in [0, 1]; a value that cannot be computed (no image) is None.
eps values are in pixel units: a float, or a per-channel list of 3 floats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from defendr_cli.core.evaluation.metrics import eps_scalar

Eps = float | list[float]


__all__ = ["eps_scalar", "jsonable", "SanityCheck", "AdvSetSummary", "SetScores", "TransferRow", "ClassRow",
           "PerClass", "Confusion", "DataSummary", "TransferResult", "GridPoint", "AdaptiveRow",
           "AdaptiveSettings", "AdaptiveResult", "ComparisonRow"]


def jsonable(value: Any) -> Any:
    """Dataclasses, tensors, arrays and numpy numbers as plain JSON values; NaN floats as None."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if isinstance(value, (dict,)):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if hasattr(value, "__dataclass_fields__"):
        return jsonable(asdict(value))
    return value


# ------------------------------------------------------------------------------- transfer protocol

@dataclass(frozen=True)
class AdvSetSummary:
    """What a report shows of one cached adversarial test set (label: 'pgd-eps8_255-s10')."""

    name: str
    attack: str
    eps: Eps
    eps_label: str
    eps_space: str
    steps: int | None
    source_model: str
    split: str
    count: int
    success_rate: float | None
    dtype: str
    label: str

    def to_dict(self) -> dict:
        return {"name": self.name, "attack": self.attack, "eps": self.eps, "eps_label": self.eps_label,
                "eps_space": self.eps_space, "steps": self.steps, "source_model": self.source_model,
                "split": self.split, "count": self.count, "success_rate": self.success_rate, "dtype": self.dtype,
                "label": self.label}


@dataclass(frozen=True)
class SetScores:
    """One model on one adversarial set: 'clean' on the set's rows, 'fooled' the fraction of
    correctly classified rows the attack flips (None when none was correct)."""

    count: int
    clean: float | None
    adv50: float | None
    adv100: float | None
    fooled: float | None

    def to_dict(self) -> dict:
        return {"count": self.count, "clean": self.clean, "adv50": self.adv50, "adv100": self.adv100,
                "fooled": self.fooled}


@dataclass
class TransferRow:
    """One evaluated model: its description, clean accuracy on the whole test split, and per set."""

    name: str
    kind: str
    fingerprint: str
    method: str | None
    train_attack: str | None
    defense: dict | None
    members: list[str]
    clean: float | None
    sets: dict[str, SetScores] = field(default_factory=dict)

    @property
    def is_ensemble(self) -> bool:
        return self.kind == "ensemble" or bool(self.members)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint, "method": self.method,
                "train_attack": self.train_attack, "defense": self.defense, "members": self.members,
                "clean": self.clean, "sets": {k: v.to_dict() for k, v in self.sets.items()}}


@dataclass(frozen=True)
class ClassRow:
    """One class in the best/worst tables: index, name, accuracy in [0, 1], images."""

    index: int
    name: str
    accuracy: float | None
    count: int

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "accuracy": self.accuracy, "count": self.count}


@dataclass
class PerClass:
    """Best/worst classes of `model` on `set` (100% adversarial) and per-class accuracies (K,)."""

    model: str
    set: str
    best: list[ClassRow]
    worst: list[ClassRow]
    clean_accuracy: list[float | None]
    adv_accuracy: list[float | None]

    def to_dict(self) -> dict:
        return {"model": self.model, "set": self.set, "best": [r.to_dict() for r in self.best],
                "worst": [r.to_dict() for r in self.worst], "clean_accuracy": self.clean_accuracy,
                "adv_accuracy": self.adv_accuracy}


@dataclass
class Confusion:
    """K x K counts: rows the prediction on the clean image, columns on its adversarial copy."""

    model: str
    set: str
    matrix: list[list[int]]

    def to_dict(self) -> dict:
        return {"model": self.model, "set": self.set, "rows": "clean prediction", "cols": "adversarial prediction",
                "matrix": self.matrix}


@dataclass(frozen=True)
class DataSummary:
    path: str
    fingerprint: str
    num_classes: int
    class_names: list[str]
    test_count: int
    image_size: int

    def to_dict(self) -> dict:
        return {"path": self.path, "fingerprint": self.fingerprint, "num_classes": self.num_classes,
                "class_names": self.class_names, "test_count": self.test_count, "image_size": self.image_size}


@dataclass
class TransferResult:
    """The transfer protocol over every model and cached adversarial test set (sorted by attack, eps)."""

    seed: int
    data: DataSummary
    adv_sets: list[AdvSetSummary]
    models: list[TransferRow]
    primary_set: str | None
    headline_model: str | None
    per_class: PerClass | None = None
    confusion: Confusion | None = None
    cache_hits: int = 0
    cache_misses: int = 0

    def model(self, name: str) -> TransferRow | None:
        return next((m for m in self.models if m.name == name), None)

    def adv_set(self, name: str) -> AdvSetSummary | None:
        return next((s for s in self.adv_sets if s.name == name), None)

    def to_dict(self) -> dict:
        return jsonable({
            "protocol": "transfer", "seed": self.seed, "data": self.data.to_dict(),
            "adv_sets": [s.to_dict() for s in self.adv_sets], "models": [m.to_dict() for m in self.models],
            "primary_set": self.primary_set, "headline_model": self.headline_model,
            "per_class": self.per_class.to_dict() if self.per_class else None,
            "confusion": self.confusion.to_dict() if self.confusion else None,
            "cache": {"hits": self.cache_hits, "misses": self.cache_misses},
        })


# ------------------------------------------------------------------------------- adaptive protocol

@dataclass(frozen=True)
class SanityCheck:
    """name: check id; status: 'pass' | 'fail' | 'warn'; detail: one human-readable line."""

    name: str
    status: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class GridPoint:
    """One configuration of the adaptive sweep and the accuracy it leaves on the subset."""

    eps_label: str
    eps: Eps
    steps: int
    restarts: int
    accuracy: float

    def to_dict(self) -> dict:
        return {"eps_label": self.eps_label, "eps": self.eps, "steps": self.steps, "restarts": self.restarts,
                "accuracy": self.accuracy}


@dataclass
class AdaptiveRow:
    """One model under the adaptive protocol (accuracies on the seeded subset).

    robust: eps label -> worst case per image over the grid at that eps; transfer: cached set name
    -> accuracy on the subset's copies. `attacks` holds further per-attack columns (attack name ->
    {eps label -> accuracy}); it is written to results.json only when some attack filled it, so a
    new attack suite adds columns there without changing the existing keys.

    Suite runs (core.evaluation.adaptive_suite) also fill, each written only when set: `suite` (the
    suite used: 'standard', 'rand', 'quick', 'custom'; None for the PGD sweep alone), `eps_values`
    {eps label -> eps in pixel units}, `all_draws` {eps label -> share of images correct in every
    draw} and `draws` {eps label -> accuracy per draw} (randomized models), `route` {eps label ->
    {'winner', 'wins', 'combined', 'member_loss'}} (ensembles: which attack route broke more).
    """

    name: str
    kind: str
    stochastic: bool
    eot: int
    clean: float
    grid: list[GridPoint]
    robust: dict[str, float]
    transfer: dict[str, float]
    eps0_accuracy: float
    large_eps_accuracy: float
    checks: list[SanityCheck] = field(default_factory=list)
    attacks: dict[str, dict[str, float]] = field(default_factory=dict)
    suite: str | None = None
    eps_values: dict[str, Eps] = field(default_factory=dict)
    all_draws: dict[str, float] = field(default_factory=dict)
    draws: dict[str, list[float]] = field(default_factory=dict)
    route: dict[str, dict] = field(default_factory=dict)

    def eps_of(self, label: str) -> Eps | None:
        """The eps (pixel units) of an eps label, from `eps_values` or the PGD grid."""
        if label in self.eps_values:
            return self.eps_values[label]
        return next((g.eps for g in self.grid if g.eps_label == label), None)

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "stochastic": self.stochastic, "eot": self.eot,
               "clean": self.clean, "grid": [g.to_dict() for g in self.grid], "robust": self.robust,
               "transfer": self.transfer, "eps0_accuracy": self.eps0_accuracy,
               "large_eps_accuracy": self.large_eps_accuracy, "checks": [c.to_dict() for c in self.checks]}
        if self.attacks:
            out["attacks"] = self.attacks
        for key in ("suite", "eps_values", "all_draws", "draws", "route"):
            if getattr(self, key):
                out[key] = jsonable(getattr(self, key))
        return out


@dataclass(frozen=True)
class AdaptiveSettings:
    eps: list[str]
    steps: list[int]
    restarts: list[int]
    eot: int
    subset: int
    large_eps: float
    near_zero: float
    suite: dict | None = None  # suite runs: {'name', 'attacks', 'params', 'draws', 'pgd_sweep'}

    def to_dict(self) -> dict:
        out = {"eps": self.eps, "steps": self.steps, "restarts": self.restarts, "eot": self.eot,
               "subset": self.subset, "large_eps": self.large_eps, "near_zero": self.near_zero}
        if self.suite is not None:
            out["suite"] = jsonable(self.suite)
        return out


@dataclass
class AdaptiveResult:
    """The adaptive sweep over every model; `subset` the test rows used."""

    seed: int
    subset: list[int]
    settings: AdaptiveSettings
    models: list[AdaptiveRow]

    def model(self, name: str) -> AdaptiveRow | None:
        return next((m for m in self.models if m.name == name), None)

    def to_dict(self) -> dict:
        return {"protocol": "adaptive", "seed": self.seed, "subset": self.subset,
                "settings": self.settings.to_dict(), "models": [m.to_dict() for m in self.models]}


@dataclass(frozen=True)
class ComparisonRow:
    """Per model and cached set: transfer accuracy (whole test split and the adaptive subset's copies)
    beside the adaptive worst case at that eps (None when the sweep had no such eps)."""

    model: str
    set: str
    eps_label: str
    transfer_all: float | None
    transfer: float | None
    adaptive: float | None
