"""Results people can exchange: one RobustBench-style JSON per model, `robustbench-<model>.json`.

RobustBench's model entries give the clean and robust ('autoattack') accuracy in percent, the
threat model, eps and the number of forward passes. Each entry here gives the same (accuracies as
percentages with two decimals, and as fractions in [0, 1]), for the model's first eps (the
smallest of the sweep), plus every eps under `evaluations`, the suite that ran with every budget,
the counted passes, the images, the seed and the software versions. Eps are in pixel units
(images in [0, 1]); the norm is 'Linf' (every attack of the suites is L-inf).
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from defendr_cli import __version__
from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult, AdaptiveRow, EpsPoint
from defendr_cli.core.evaluation.jsonable import jsonable

ROBUSTBENCH_FORMAT = "defendr-robustbench-style"
NORM = "Linf"


def robustbench_filename(model_name: str) -> str:
    """'robustbench-<model>.json', characters outside [A-Za-z0-9._+-] as '_'."""
    return f"robustbench-{re.sub(r'[^A-Za-z0-9._+-]', '_', model_name)}.json"


def versions() -> dict[str, str]:
    """The software that produced the numbers."""
    return {"defendr": __version__, "torch": torch.__version__, "python": platform.python_version()}


@dataclass(frozen=True)
class RobustBenchEntry:
    """One model: `content` is the JSON object (see the module docstring)."""

    model: str
    content: dict

    def to_dict(self) -> dict:
        return dict(self.content)


def _evaluation(row: AdaptiveRow, point: EpsPoint, count: int) -> dict:
    passes = point.passes if point.passes is not None else {}
    total = passes.get("total", {"forward": 0, "backward": 0})
    return {"eps_label": point.label, "eps": jsonable(row.eps_of(point.label)), "robust_accuracy": point.robust,
            "robust_acc": f"{100 * point.robust:.2f}", "all_draws_accuracy": point.all_draws,
            "after_attack": {a: point.attacks.get(a) for a in row.attack_labels()},
            "number_forward_passes": total["forward"], "number_backward_passes": total["backward"],
            "forward_passes_per_image": total["forward"] / max(count, 1),
            "backward_passes_per_image": total["backward"] / max(count, 1),
            "passes": passes, "per_image_record": point.record}


def robustbench_entry(adaptive: AdaptiveResult, row: AdaptiveRow, dataset: str) -> RobustBenchEntry:
    """The entry of one model row of an adaptive result evaluated on `dataset` (a name)."""
    count = adaptive.settings.subset
    evaluations = [_evaluation(row, point, count) for point in row.points]
    first = evaluations[0] if evaluations else {}
    content = {
        "format": ROBUSTBENCH_FORMAT, "name": row.name, "kind": row.kind, "dataset": dataset,
        "threat_model": NORM, "norm": NORM, "eps": first.get("eps"), "eps_label": first.get("eps_label"),
        "clean_acc": f"{100 * row.clean:.2f}", "autoattack_acc": first.get("robust_acc"),
        "clean_accuracy": row.clean, "robust_accuracy": first.get("robust_accuracy"), "n_examples": count,
        "number_forward_passes": first.get("number_forward_passes"),
        "number_backward_passes": first.get("number_backward_passes"),
        "suite": {"name": row.suite, "attacks": [a for a in row.budgets], "budgets": row.budgets,
                  "draws": adaptive.settings.suite.get("draws") if adaptive.settings.suite else None,
                  "eot": row.eot},
        "randomized": row.stochastic, "seed": adaptive.seed, "versions": versions(), "evaluations": evaluations}
    return RobustBenchEntry(row.name, jsonable(content))


def robustbench_entries(adaptive: AdaptiveResult | None, dataset: str) -> list[RobustBenchEntry]:
    """One entry per model row that ran a suite (none without an adaptive result)."""
    if adaptive is None:
        return []
    return [robustbench_entry(adaptive, row, dataset) for row in adaptive.models if row.points]


def write_robustbench(folder: Path, entries: list[RobustBenchEntry]) -> list[Path]:
    """Write `robustbench-<model>.json` per entry into `folder` (atomically); returns the paths."""
    paths = []
    for entry in entries:
        path = Path(folder) / robustbench_filename(entry.model)
        with atomic_path(path, force=True) as tmp:
            Path(tmp).write_text(json.dumps(entry.to_dict(), indent=2), encoding="utf-8")
        paths.append(path)
    return paths
