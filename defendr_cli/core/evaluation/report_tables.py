"""The report's tables, laid out from a TransferResult and an AdaptiveResult.

Transfer: the paper's Tables 1-6. Adaptive: the sweep, the sanity checks and transfer vs adaptive
accuracy at the same eps. Accuracies are fractions in [0, 1] (formatted as % by `Table`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from defendr_cli.core.evaluation.results import AdaptiveResult, AdaptiveRow, ComparisonRow, TransferResult, TransferRow
from defendr_cli.core.evaluation.tables import Table


def transfer_tables(result: TransferResult) -> list[Table]:
    """The paper's tables from a `run_transfer` result.

    Table 1 (one per adversarial set): rows models, columns No Adv / 50% Adv / 100% Adv.
    Table 2: models x adversarial sets (100% adversarial). Table 3: ensemble rows.
    Table 4: models with a known training attack x attacks. Tables 5-6: best / worst classes.
    """
    tables: list[Table] = []
    sets = result.adv_sets
    rows = result.models
    singles = [r for r in rows if not r.is_ensemble]
    ensembles = [r for r in rows if r.is_ensemble]
    if not sets:
        table = Table("table1-clean", "Table 1. Single architecture performance (no adversarial test set evaluated)",
                      ["Model", "Trained on", "No Adv. Ex."], percent_columns={2},
                      caption="Accuracy (%) on the clean test split.")
        for r in rows:
            table.add(r.name, r.train_attack or "-", r.clean)
        tables.append(table)
    for s in sets:
        table = Table(f"table1-{s.name}", f"Table 1. Single architecture performance (adv. ex.: {s.name})",
                      ["Model", "Trained on", "No Adv. Ex.", "50% Adv. Ex.", "100% Adv. Ex."], percent_columns={2, 3, 4},
                      caption="Accuracy (%) on the clean test split, with a seeded half of the images replaced "
                              "by their adversarial copies, and on the adversarial copies only.")
        for r in singles + ensembles:
            cell = r.sets[s.name]
            table.add(r.name, r.train_attack or "-", r.clean, cell.adv50, cell.adv100)
        tables.append(table)
    if sets:
        table = Table("table2-attacks", "Table 2. Attack effectiveness (tested on 100% adv. ex.)",
                      ["Model", "Clean"] + [s.label for s in sets],
                      caption="Accuracy (%) on each cached adversarial test set.")
        for r in singles + ensembles:
            table.add(r.name, r.clean, *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    if ensembles:
        table = Table("table3-ensembles", "Table 3. Model ensemble accuracy",
                      ["Ensemble", "Clean"] + [s.label for s in sets],
                      caption="Accuracy (%) of ensembles (probabilities averaged over members).")
        for r in ensembles:
            table.add(" + ".join(r.members) or r.name, r.clean, *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    trained = [r for r in rows if r.train_attack]
    if trained and sets:
        table = Table("table4-cross-attack", "Table 4. Model robustness against other attacks (100% adv. ex.)",
                      ["Model (trained on)"] + [s.label for s in sets],
                      caption="Rows: models and the attack of their training data; columns: attack tested.")
        for r in trained:
            table.add(f"{r.name} ({r.train_attack})", *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    per_class = result.per_class
    if per_class:
        for entries, word, number in ((per_class.best, "Best", 5), (per_class.worst, "Worst", 6)):
            table = Table(f"table{number}-{word.lower()}-classes",
                          f"Table {number}. Top {len(entries)} {word.lower()} predicted classes "
                          f"({per_class.model} on {per_class.set})",
                          ["Class label", "Class", "Accuracy", "Images"], percent_columns={2})
            for e in entries:
                table.add(e.index, e.name, e.accuracy, e.count)
            tables.append(table)
    return tables


def attack_labels(adaptive: AdaptiveResult) -> list[str]:
    """The per-attack columns over every model, in first-seen order ('pgd' first when present)."""
    labels: list[str] = []
    for m in adaptive.models:
        labels += [a for a in m.attacks if a not in labels]
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
    columns = ["Model", "Suite", "eps", "Clean", "Transfer"] + [_column_name(a) for a in labels]
    columns += ["Robust", "All draws", "Ensemble route", "Checks"]
    percent = set(range(3, 5 + len(labels) + 2))
    table = Table("adaptive-suite", "Adaptive evaluation: attack suite through the whole defense", columns,
                  percent_columns=percent,
                  caption=f"Accuracy (%) on {adaptive.settings.subset} seeded test images. Transfer: the paper's "
                          "protocol (the cached set at this eps with the lowest accuracy, same images). Each suite "
                          "column is the accuracy after that attack ran on the images still standing; PGD is the "
                          "step/restart sweep's own worst case. Robust: per-image worst case over everything "
                          "(randomized models: mean over draws; All draws: correct in every draw). Ensemble route: "
                          "combined output vs sum of members' losses, the one that broke more images.")
    for m in adaptive.models:
        for label in m.robust:
            route = m.route.get(label)
            route_text = None
            if route:
                route_text = f"{route['winner']} ({route['wins']['combined']} vs {route['wins']['member-loss']})"
            table.add(m.name, m.suite or "pgd", label, m.clean, _transfer_at(m, m.eps_of(label), transfer),
                      *(m.attacks.get(a, {}).get(label) for a in labels), m.robust[label], m.all_draws.get(label),
                      route_text, checks_summary(m))
    return table


def _column_name(label: str) -> str:
    return {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "apgd-dlr": "APGD-DLR",
            "square": "Square"}.get(label, label)


def adaptive_tables(adaptive: AdaptiveResult, transfer: TransferResult | None = None) -> list[Table]:
    """Suite table, PGD sweep table (when a sweep ran), sanity table and (with a transfer result)
    transfer-vs-adaptive table."""
    tables = [suite_table(adaptive, transfer)]
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
            match = next((label for label in m.robust if _eps_matches(m.eps_of(label), s.eps)), None)
            transfer_all = t.sets[s.name].adv100
            out.append(ComparisonRow(model=m.name, set=s.name, eps_label=s.eps_label, transfer_all=transfer_all,
                                     transfer=(m.transfer or {}).get(s.name, transfer_all),
                                     adaptive=m.robust[match] if match else None))
    return out
