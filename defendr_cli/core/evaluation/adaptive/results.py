"""The adaptive protocol's results as dataclasses: one `AdaptiveRow` per attacked model.

`to_dict()` gives the JSON content stored in results.json (key names and order fixed: reports
compare across runs). Accuracies are fractions in [0, 1]; eps in pixel units (`StoredEps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from defendr_cli.core.evaluation.checks import Check
from defendr_cli.core.evaluation.jsonable import StoredEps, jsonable


@dataclass(frozen=True)
class GridPoint:
    """One configuration of the adaptive sweep and the accuracy it leaves on the subset."""

    eps_label: str
    eps: StoredEps
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

    Suite runs (core.evaluation.adaptive.run) also fill, each written only when set: `suite` (the
    suite used: 'standard', 'fast', 'rand', 'quick', 'custom'; None for the PGD sweep alone), `eps_values`
    {eps label -> eps in pixel units}, `all_draws` {eps label -> share of images correct in every
    draw} and `draws` {eps label -> accuracy per draw} (randomized models), `route` {eps label ->
    {'winner', 'wins', 'combined', 'member_loss'}} (ensembles: which attack route broke more),
    `budgets` {attack label -> {'attack': registry name, every parameter it ran with}} (the suite's
    version with every budget), `passes` {eps label -> {attack label -> {'forward', 'backward':
    passes counted at the model, summed over the subset; 'images': images it attacked}, 'total':
    {'forward', 'backward'}}} and `records` {eps label -> file name of the per-image record next to
    the report} (core.evaluation.adaptive.record).
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
    checks: list[Check] = field(default_factory=list)
    attacks: dict[str, dict[str, float]] = field(default_factory=dict)
    suite: str | None = None
    eps_values: dict[str, StoredEps] = field(default_factory=dict)
    all_draws: dict[str, float] = field(default_factory=dict)
    draws: dict[str, list[float]] = field(default_factory=dict)
    route: dict[str, dict] = field(default_factory=dict)
    budgets: dict[str, dict] = field(default_factory=dict)
    passes: dict[str, dict] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)

    def eps_of(self, label: str) -> StoredEps | None:
        """The eps (pixel units) of an eps label, from `eps_values` or the PGD grid."""
        if label in self.eps_values:
            return self.eps_values[label]
        return next((g.eps for g in self.grid if g.eps_label == label), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdaptiveRow":
        """The row that `to_dict` wrote (floats round-trip exactly through JSON)."""
        return cls(
            name=data["name"], kind=data["kind"], stochastic=data["stochastic"], eot=data["eot"], clean=data["clean"],
            grid=[GridPoint(g["eps_label"], g["eps"], g["steps"], g["restarts"], g["accuracy"]) for g in data["grid"]],
            robust=data["robust"], transfer=data["transfer"], eps0_accuracy=data["eps0_accuracy"],
            large_eps_accuracy=data["large_eps_accuracy"], checks=[Check.from_dict(c) for c in data["checks"]],
            attacks=data.get("attacks", {}), suite=data.get("suite"), eps_values=data.get("eps_values", {}),
            all_draws=data.get("all_draws", {}), draws=data.get("draws", {}), route=data.get("route", {}),
            budgets=data.get("budgets", {}), passes=data.get("passes", {}), records=data.get("records", {}))

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "stochastic": self.stochastic, "eot": self.eot,
               "clean": self.clean, "grid": [g.to_dict() for g in self.grid], "robust": self.robust,
               "transfer": self.transfer, "eps0_accuracy": self.eps0_accuracy,
               "large_eps_accuracy": self.large_eps_accuracy, "checks": [c.to_dict() for c in self.checks]}
        if self.attacks:
            out["attacks"] = self.attacks
        for key in ("suite", "eps_values", "all_draws", "draws", "route", "budgets", "passes", "records"):
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
