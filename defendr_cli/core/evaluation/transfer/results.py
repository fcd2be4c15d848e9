"""The transfer protocol's results as dataclasses (the paper's Tables 1-6 are laid out from them).

Readers (tables, report, plots, the reproduce report) use attributes; `to_dict()` gives the JSON
content stored in results.json (key names and order fixed: reports compare across runs).
Accuracies are fractions in [0, 1]; a value that cannot be computed (no image) is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from defendr_cli.core.evaluation.jsonable import StoredEps, jsonable


@dataclass(frozen=True)
class AdvSetSummary:
    """What a report shows of one cached adversarial test set (label: 'pgd-eps8_255-s10')."""

    name: str
    attack: str
    eps: StoredEps
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
