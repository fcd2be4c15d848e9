"""The paper's Tables 1-6, laid out from a TransferResult (accuracies as fractions in [0, 1],
formatted as % by `Table`)."""

from __future__ import annotations

from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.transfer.results import AdvSetSummary, PerClass, TransferResult, TransferRow


def transfer_tables(result: TransferResult) -> list[Table]:
    """The paper's tables from a `run_transfer` result.

    Table 1 (one per adversarial set): rows models, columns No Adv / 50% Adv / 100% Adv.
    Table 2: models x adversarial sets (100% adversarial). Table 3: ensemble rows.
    Table 4: models with a known training attack x attacks. Tables 5-6: best / worst classes.
    """
    sets = result.adv_sets
    ordered = [r for r in result.models if not r.is_ensemble] + [r for r in result.models if r.is_ensemble]
    tables = _table1(result.models, ordered, sets)
    if sets:
        table = Table("table2-attacks", "Table 2. Attack effectiveness (tested on 100% adv. ex.)",
                      ["Model", "Clean"] + [s.label for s in sets],
                      caption="Accuracy (%) on each cached adversarial test set.")
        for r in ordered:
            table.add(r.name, r.clean, *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    ensembles = [r for r in result.models if r.is_ensemble]
    if ensembles:
        table = Table("table3-ensembles", "Table 3. Model ensemble accuracy",
                      ["Ensemble", "Clean"] + [s.label for s in sets],
                      caption="Accuracy (%) of ensembles (probabilities averaged over members).")
        for r in ensembles:
            table.add(" + ".join(r.members) or r.name, r.clean, *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    trained = [r for r in result.models if r.train_attack]
    if trained and sets:
        table = Table("table4-cross-attack", "Table 4. Model robustness against other attacks (100% adv. ex.)",
                      ["Model (trained on)"] + [s.label for s in sets],
                      caption="Rows: models and the attack of their training data; columns: attack tested.")
        for r in trained:
            table.add(f"{r.name} ({r.train_attack})", *(r.sets[s.name].adv100 for s in sets))
        tables.append(table)
    return tables + _class_tables(result.per_class)


def _table1(rows: list[TransferRow], ordered: list[TransferRow], sets: list[AdvSetSummary]) -> list[Table]:
    """One Table 1 per set (single models first, then ensembles); a clean-only one without sets."""
    if not sets:
        table = Table("table1-clean", "Table 1. Single architecture performance (no adversarial test set evaluated)",
                      ["Model", "Trained on", "No Adv. Ex."], percent_columns={2},
                      caption="Accuracy (%) on the clean test split.")
        for r in rows:
            table.add(r.name, r.train_attack or "-", r.clean)
        return [table]
    tables = []
    for s in sets:
        table = Table(f"table1-{s.name}", f"Table 1. Single architecture performance (adv. ex.: {s.name})",
                      ["Model", "Trained on", "No Adv. Ex.", "50% Adv. Ex.", "100% Adv. Ex."], percent_columns={2, 3, 4},
                      caption="Accuracy (%) on the clean test split, with a seeded half of the images replaced "
                              "by their adversarial copies, and on the adversarial copies only.")
        for r in ordered:
            cell = r.sets[s.name]
            table.add(r.name, r.train_attack or "-", r.clean, cell.adv50, cell.adv100)
        tables.append(table)
    return tables


def _class_tables(per_class: PerClass | None) -> list[Table]:
    """Tables 5-6: the headline model's best and worst classes on the primary set."""
    if not per_class:
        return []
    tables = []
    for entries, word, number in ((per_class.best, "Best", 5), (per_class.worst, "Worst", 6)):
        table = Table(f"table{number}-{word.lower()}-classes",
                      f"Table {number}. Top {len(entries)} {word.lower()} predicted classes "
                      f"({per_class.model} on {per_class.set})",
                      ["Class label", "Class", "Accuracy", "Images"], percent_columns={2})
        for e in entries:
            table.add(e.index, e.name, e.accuracy, e.count)
        tables.append(table)
    return tables
