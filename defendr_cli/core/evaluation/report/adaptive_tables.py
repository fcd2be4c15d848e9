"""The adaptive evaluation's tables: the suite, the PGD sweep, the sanity checks, and transfer vs
adaptive accuracy at the same eps. Accuracies are fractions in [0, 1] (formatted as % by `Table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from defendr_cli.core.evaluation.adaptive.plan import FAST_NOTE, column_name
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult, AdaptiveRow
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.transfer.results import TransferResult, TransferRow


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


def attack_labels(adaptive: AdaptiveResult) -> list[str]:
    """The per-attack columns over every model, in first-seen order ('pgd' first when present)."""
    labels: list[str] = []
    for m in adaptive.models:
        labels += [a for a in m.attack_labels() if a not in labels]
    return sorted(labels, key=lambda a: a != "pgd")


def checks_summary(row: AdaptiveRow) -> str:
    """'7 pass' or '6 pass, 1 warn (randomized)' or 'FAIL: large-eps-near-zero'."""
    fails = [c.name for c in row.checks if c.status == "fail"]
    warns = [c.name for c in row.checks if c.status == "warn"]
    if fails:
        return "FAIL: " + ", ".join(fails) + (f"; warn: {', '.join(warns)}" if warns else "")
    passed = sum(c.passed for c in row.checks)
    return f"{passed} pass" + (f", {len(warns)} warn ({', '.join(warns)})" if warns else "")


def _transfer_at(row: AdaptiveRow, eps, transfer: TransferResult | None) -> float | None:
    """The lowest transfer accuracy (subset copies) among the cached sets at this eps, if any."""
    if transfer is None or eps is None:
        return None
    values = [row.transfer[s.name] for s in transfer.adv_sets if s.name in row.transfer and _eps_matches(s.eps, eps)]
    return min(values) if values else None


def suite_table(adaptive: AdaptiveResult, transfer: TransferResult | None = None) -> Table:
    """One row per model and eps: clean, transfer, one column per attack, robust, draws, route, checks."""
    labels = attack_labels(adaptive)
    columns = ["Model", "Suite", "eps", "Clean", "Transfer"] + [column_name(a) for a in labels]
    columns += ["Robust", "All draws", "Ensemble route", "Checks"]
    percent = set(range(3, 5 + len(labels) + 2))
    table = Table("adaptive-suite", "Adaptive evaluation: attack suite through the whole defense", columns,
                  percent_columns=percent,
                  caption=f"Accuracy (%) on {adaptive.settings.subset} seeded test images. Transfer: the paper's "
                          "protocol (the cached set at this eps with the lowest accuracy, same images). Each suite "
                          "column is the accuracy after that attack ran on the images still standing; PGD is the "
                          "step/restart sweep's own worst case. Robust: per-image worst case over everything "
                          "(randomized models: mean over draws; All draws: correct in every draw). Ensemble route: "
                          "combined output vs sum of members' losses, the one that broke more images."
                          + (f" {FAST_NOTE}" if any(m.suite == "fast" for m in adaptive.models) else ""))
    for m in adaptive.models:
        for p in m.points:
            route_text = None
            if p.route is not None:
                route_text = f"{p.route.winner} ({p.route.wins['combined']} vs {p.route.wins['member-loss']})"
            table.add(m.name, m.suite or "pgd", p.label, m.clean, _transfer_at(m, m.eps_of(p.label), transfer),
                      *(p.attacks.get(a) for a in labels), p.robust, p.all_draws, route_text, checks_summary(m))
    return table


def budget_text(budget: dict) -> str:
    """'apgd: loss=ce, steps=100, restarts=1, ...' from a budget {'attack', parameters...}."""
    params = ", ".join(f"{k}={v}" for k, v in budget.items() if k != "attack")
    return f"{budget.get('attack', '?')}: {params}" if params else str(budget.get("attack", "?"))


def cost_table(adaptive: AdaptiveResult) -> Table:
    """Per model, eps and attack: the suite version with every budget, the accuracy after the attack
    and the forward/backward passes it spent (counted at the model), in millions and per image."""
    table = Table("adaptive-cost", "Adaptive suite: version, budgets and counted cost",
                  ["Model", "Suite", "eps", "Attack", "Budget", "Accuracy after", "Images attacked",
                   "Forward (M)", "Backward (M)", "Forward / image", "Backward / image"], percent_columns={5},
                  caption=f"Passes counted at the model (core.attacks.counting) over the {adaptive.settings.subset} "
                          "seeded test images; per image = total / images of the subset. Each attack runs on the "
                          "images still standing. The PGD sweep (when it ran) is not counted.")
    for m in adaptive.models:
        count = max(adaptive.settings.subset, 1)
        for p in (p for p in m.points if p.passes is not None):
            for attack, cost in p.passes.items():
                name = "Total" if attack == "total" else column_name(attack)
                budget = budget_text(m.budgets[attack]) if attack in m.budgets else "-"
                after = p.robust if attack == "total" else p.attacks.get(attack)
                table.add(m.name, m.suite, p.label, name, budget, after, cost.get("images", "-"),
                          f"{cost['forward'] / 1e6:.4f}", f"{cost['backward'] / 1e6:.4f}",
                          f"{cost['forward'] / count:.1f}", f"{cost['backward'] / count:.1f}")
    return table


def adaptive_tables(adaptive: AdaptiveResult, transfer: TransferResult | None = None) -> list[Table]:
    """Suite table, cost table (suites with counted passes), PGD sweep table (when a sweep ran),
    sanity table and (with a transfer result) transfer-vs-adaptive table."""
    tables = [suite_table(adaptive, transfer)]
    if any(p.passes is not None for m in adaptive.models for p in m.points):
        tables.append(cost_table(adaptive))
    sweep = Table("adaptive-sweep", "Adaptive white-box PGD through the whole defense",
                  ["Model", "EOT", "eps", "Steps", "Restarts", "Accuracy"], percent_columns={5},
                  caption=f"Accuracy (%) on {adaptive.settings.subset} seeded test images.")
    for m in adaptive.models:
        sweep.add(m.name, m.eot, "0 (clean)", "-", "-", m.clean)
        for g in m.grid:
            sweep.add(m.name, m.eot, g.eps_label, g.steps, g.restarts, g.accuracy)
    if any(m.grid for m in adaptive.models):
        tables.append(sweep)
    checks = Table("sanity-checks", "Sanity checks (gradient masking and evaluation checklist)",
                   ["Model", "Check", "Result", "Detail"])
    for m in adaptive.models:
        for c in m.checks:
            checks.add(m.name, c.name, c.status.upper(), c.detail)
    tables.append(checks)
    if transfer:
        compare = Table("adaptive-vs-transfer", "Transfer (paper) vs adaptive white-box accuracy at the same eps",
                        ["Model", "Adversarial set", "eps", "Transfer (all test)", "Transfer (subset)",
                         "Adaptive (subset, worst case)"], percent_columns={3, 4, 5},
                        caption="Transfer: the cached set (whole test split, and the adaptive subset's copies). "
                                "Adaptive: worst case per image over the step/restart sweep on the seeded subset, "
                                "attacking the whole defense.")
        for row in comparison_rows(adaptive, transfer):
            compare.add(row.model, row.set, row.eps_label, row.transfer_all, row.transfer, row.adaptive)
        tables.append(compare)
    return tables


def _eps_matches(a: Any, b: Any) -> bool:
    a_arr, b_arr = np.atleast_1d(np.asarray(a, dtype=np.float64)), np.atleast_1d(np.asarray(b, dtype=np.float64))
    if a_arr.shape != b_arr.shape and 1 not in (a_arr.size, b_arr.size):
        return False
    return bool(np.allclose(a_arr, b_arr, rtol=1e-4, atol=1e-6))


def comparison_rows(adaptive: AdaptiveResult, transfer: TransferResult) -> list[ComparisonRow]:
    """Per model and cached adversarial set: transfer accuracy beside the adaptive worst case at that eps.

    'transfer' is on the adaptive subset's copies when run_adaptive had the set, else on the whole
    test split ('transfer_all').
    """
    out = []
    by_name: dict[str, TransferRow] = {m.name: m for m in transfer.models}
    for m in adaptive.models:
        t = by_name.get(m.name)
        if t is None:
            continue
        for s in transfer.adv_sets:
            match = next((p for p in m.points if _eps_matches(m.eps_of(p.label), s.eps)), None)
            transfer_all = t.sets[s.name].adv100
            out.append(ComparisonRow(model=m.name, set=s.name, eps_label=s.eps_label, transfer_all=transfer_all,
                                     transfer=(m.transfer or {}).get(s.name, transfer_all),
                                     adaptive=match.robust if match is not None else None))
    return out
