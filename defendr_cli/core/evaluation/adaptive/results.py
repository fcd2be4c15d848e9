"""The adaptive protocol's results as dataclasses: one `AdaptiveRow` per attacked model, one
`EpsPoint` per eps it was attacked at.

`to_dict()` gives the JSON content stored in results.json (key names and order fixed: reports
compare across runs): the points are written as the row's per-eps maps keyed by eps label
('robust', 'attacks', 'eps_values', 'all_draws', 'draws', 'route', 'passes', 'records'), each in
the points' order, and `from_dict` reads them back. Accuracies are fractions in [0, 1]; eps in
pixel units (`StoredEps`).
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


@dataclass(frozen=True)
class EnsembleRoute:
    """Which attack route broke more of an ensemble at one eps (core.evaluation.adaptive.ensemble_route).

    winner: 'combined', 'member-loss' or 'tie'; wins: {'combined', 'member-loss', 'both',
    'neither'} image counts (clean-correct images); combined / member_loss: accuracy after the
    suite on the combined output / after the member-loss attack.
    """

    winner: str
    wins: dict[str, int]
    combined: float
    member_loss: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleRoute":
        return cls(winner=data["winner"], wins=data["wins"], combined=data["combined"],
                   member_loss=data["member_loss"])

    def to_dict(self) -> dict:
        return {"winner": self.winner, "wins": self.wins, "combined": self.combined, "member_loss": self.member_loss}


@dataclass(frozen=True)
class EpsPoint:
    """One model at one eps of the adaptive protocol.

    label: the eps label ('8/255'); robust: the per-image worst case over everything that ran;
    eps: the eps in pixel units (None in rows of the PGD sweep saved before suites, see
    `AdaptiveRow.eps_of`); attacks: {attack label: accuracy after it} (cumulative for the
    suite's attacks, 'pgd' the sweep's own worst case). Suite runs also fill, None otherwise:
    all_draws (share of images correct in every draw) and draws (accuracy per draw) for
    randomized models; route for ensembles; passes {attack label: {'forward', 'backward': passes
    counted at the model, summed over the subset; 'images': images it attacked}, 'total':
    {'forward', 'backward'}}; record: file name of the per-image record next to the report
    (core.evaluation.adaptive.record).
    """

    label: str
    robust: float
    eps: StoredEps | None = None
    attacks: dict[str, float] = field(default_factory=dict)
    all_draws: float | None = None
    draws: list[float] | None = None
    route: EnsembleRoute | None = None
    passes: dict[str, dict[str, int]] | None = None
    record: str | None = None


# results.json's per-eps maps written after 'attacks' (in this order, among 'suite' and 'budgets'):
# key -> the EpsPoint field it holds
_EPS_MAPS = {"eps_values": "eps", "all_draws": "all_draws", "draws": "draws", "route": "route", "passes": "passes",
             "records": "record"}
_OPTIONAL_KEYS = ("suite", "eps_values", "all_draws", "draws", "route", "budgets", "passes", "records")


def _points_from_dict(data: dict[str, Any]) -> list[EpsPoint]:
    """The EpsPoints of a row dict: one per label of 'robust', in its order, from every per-eps map."""
    robust: dict[str, float] = data["robust"]
    maps = {key: data.get(key) or {} for key in _EPS_MAPS}
    attacks: dict[str, dict[str, float]] = data.get("attacks") or {}
    stray = {label for values in (*maps.values(), *attacks.values()) for label in values} - set(robust)
    if stray:
        raise ValueError(f"adaptive row {data.get('name')!r}: eps {sorted(stray)} without a robust accuracy")
    points = []
    for label, value in robust.items():
        fields = {name: maps[key].get(label) for key, name in _EPS_MAPS.items()}
        if fields["route"] is not None:
            fields["route"] = EnsembleRoute.from_dict(fields["route"])
        points.append(EpsPoint(label=label, robust=value,
                               attacks={a: by_eps[label] for a, by_eps in attacks.items() if label in by_eps},
                               **fields))
    return points


@dataclass
class AdaptiveRow:
    """One model under the adaptive protocol (accuracies on the seeded subset).

    points: one EpsPoint per eps attacked, in the sweep's order (eps ascending), labels unique;
    grid: the PGD sweep's configurations; transfer: cached set name -> accuracy on the subset's
    copies. Suite runs (core.evaluation.adaptive.run) also fill `suite` (the suite used:
    'standard', 'fast', 'rand', 'quick', 'custom'; None for the PGD sweep alone) and `budgets`
    {attack label -> {'attack': registry name, every parameter it ran with}} (the suite's version
    with every budget). In results.json a per-attack column ('attacks': attack name -> {eps label
    -> accuracy}) and each per-eps map is written only when some point filled it, so a new attack
    suite adds columns there without changing the existing keys.
    """

    name: str
    kind: str
    stochastic: bool
    eot: int
    clean: float
    grid: list[GridPoint]
    points: list[EpsPoint]
    transfer: dict[str, float]
    eps0_accuracy: float
    large_eps_accuracy: float
    checks: list[Check] = field(default_factory=list)
    suite: str | None = None
    budgets: dict[str, dict] = field(default_factory=dict)

    def point(self, label: str) -> EpsPoint | None:
        """The point of an eps label (None when the model was not attacked at it)."""
        return next((p for p in self.points if p.label == label), None)

    def robust_at(self, label: str | None) -> float | None:
        """The robust accuracy at an eps label (None when the model was not attacked at it)."""
        point = None if label is None else self.point(label)
        return None if point is None else point.robust

    def set_point(self, point: EpsPoint) -> None:
        """Add `point`, replacing (in place) the point of the same label if there is one."""
        index = next((i for i, p in enumerate(self.points) if p.label == point.label), None)
        if index is None:
            self.points.append(point)
        else:
            self.points[index] = point

    def attack_columns(self) -> dict[str, dict[str, float]]:
        """{attack label: {eps label: accuracy after it}}, attacks in the order they first ran."""
        columns: dict[str, dict[str, float]] = {}
        for p in self.points:
            for attack, value in p.attacks.items():
                columns.setdefault(attack, {})[p.label] = value
        return columns

    def attack_labels(self) -> list[str]:
        """Every attack that filled a column at some eps, in the order they first ran."""
        return list(self.attack_columns())

    def eps_of(self, label: str) -> StoredEps | None:
        """The eps (pixel units) of an eps label, from its point or the PGD grid."""
        point = self.point(label)
        if point is not None and point.eps is not None:
            return point.eps
        return next((g.eps for g in self.grid if g.eps_label == label), None)

    def _eps_map(self, key: str) -> dict[str, Any]:
        name = _EPS_MAPS[key]
        return {p.label: getattr(p, name) for p in self.points if getattr(p, name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdaptiveRow":
        """The row that `to_dict` wrote (floats round-trip exactly through JSON)."""
        return cls(
            name=data["name"], kind=data["kind"], stochastic=data["stochastic"], eot=data["eot"], clean=data["clean"],
            grid=[GridPoint(g["eps_label"], g["eps"], g["steps"], g["restarts"], g["accuracy"]) for g in data["grid"]],
            points=_points_from_dict(data), transfer=data["transfer"], eps0_accuracy=data["eps0_accuracy"],
            large_eps_accuracy=data["large_eps_accuracy"], checks=[Check.from_dict(c) for c in data["checks"]],
            suite=data.get("suite"), budgets=data.get("budgets") or {})

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "stochastic": self.stochastic, "eot": self.eot,
               "clean": self.clean, "grid": [g.to_dict() for g in self.grid],
               "robust": {p.label: p.robust for p in self.points}, "transfer": self.transfer,
               "eps0_accuracy": self.eps0_accuracy, "large_eps_accuracy": self.large_eps_accuracy,
               "checks": [c.to_dict() for c in self.checks]}
        attacks = self.attack_columns()
        if attacks:
            out["attacks"] = attacks
        for key in _OPTIONAL_KEYS:
            value = getattr(self, key) if key in ("suite", "budgets") else self._eps_map(key)
            if value:
                out[key] = jsonable(value)
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
