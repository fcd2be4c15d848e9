"""Suites compared on the same images: this run's adaptive rows beside other reports' rows that ran
another suite (e.g. `fast` beside `standard`) on the same models, clean cache and test images.

One evaluate run holds one suite per model, so `defendr evaluate --suite fast` and `--suite standard`
are two runs into two report folders. When a run writes its report it reads the other report
folders' results.json (`sibling_results`) and, for every model and eps that another report attacked
with a different suite on exactly the same images, adds the `suite-comparison` table. A pair is
compared only when all of these agree: the clean cache's fingerprint, the adaptive subset (the same
test rows in the same order: same seed and size), the model's name and checkpoint fingerprint, the
eps label and its eps (pixel units). The report that ran first has no such table; the later one does.
"""

from __future__ import annotations

import json
from pathlib import Path

from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult, AdaptiveRow
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.transfer.results import TransferResult

RESULTS_FILE = "results.json"


def sibling_results(reports_dir: Path, own_name: str) -> list[tuple[str, dict]]:
    """(report name, results.json content) of every other report folder under `reports_dir` that has an
    adaptive result; unreadable or invalid results.json files are skipped (they compare with nothing)."""
    out = []
    for path in sorted(Path(reports_dir).glob(f"*/{RESULTS_FILE}")):
        if path.parent.name == own_name:
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(results, dict) and isinstance(results.get("adaptive"), dict):
            out.append((path.parent.name, results))
    return out


def _fingerprints(results: dict) -> tuple[str | None, dict[str, str]]:
    transfer = results.get("transfer") or {}
    models = {m.get("name"): m.get("fingerprint") for m in transfer.get("models") or [] if isinstance(m, dict)}
    return (transfer.get("data") or {}).get("fingerprint"), models


def _same_eps(a, b) -> bool:
    return a is not None and b is not None and json.dumps(a) == json.dumps(b)


def _pass_cells(passes: dict, images: int) -> tuple[str, str]:
    total = (passes or {}).get("total") or {}
    if "forward" not in total or "backward" not in total:
        return "-", "-"
    count = total["forward"] + total["backward"]
    return f"{count / 1e6:.4f}", f"{count / max(images, 1):.1f}"


def suite_comparison(adaptive: AdaptiveResult, transfer: TransferResult,
                     siblings: list[tuple[str, dict]]) -> Table | None:
    """The comparison table (module docstring), or None when no other report matches. Rows: this run's
    row ('this report') then each matching report's, per model and eps; accuracies are fractions."""
    table = Table("suite-comparison", "Suites compared on the same images",
                  ["Model", "eps", "Suite", "Report", "Robust", "Passes fwd+bwd (M)", "Passes / image"],
                  percent_columns={4},
                  caption=f"The same {adaptive.settings.subset} seeded test images, clean cache, checkpoint and eps "
                          "in every row of a model; passes counted at the model (the suite's attacks only). A "
                          "screening suite's robust accuracy may stand above the full suite's.")
    fingerprints = {m.name: m.fingerprint for m in transfer.models}
    images = len(adaptive.subset)
    for name, results in siblings:
        data_fingerprint, models = _fingerprints(results)
        other = results["adaptive"]
        if data_fingerprint != transfer.data.fingerprint or other.get("subset") != adaptive.subset:
            continue
        for row in adaptive.models:
            match = next((m for m in other.get("models") or [] if m.get("name") == row.name), None)
            if (match is None or not row.suite or match.get("suite") in (None, row.suite)
                    or models.get(row.name) is None or models.get(row.name) != fingerprints.get(row.name)):
                continue
            _add_pair(table, row, match, name, images)
    return table if table.rows else None


def _add_pair(table: Table, row: AdaptiveRow, match: dict, report: str, images: int) -> None:
    for point in row.points:
        label = point.label
        if label not in (match.get("robust") or {}) or not _same_eps(row.eps_of(label),
                                                                      (match.get("eps_values") or {}).get(label)):
            continue
        if not any(r[:4] == [row.name, label, row.suite, "this report"] for r in table.rows):
            table.add(row.name, label, row.suite, "this report", point.robust, *_pass_cells(point.passes, images))
        table.add(row.name, label, match["suite"], report, match["robust"][label],
                  *_pass_cells((match.get("passes") or {}).get(label), images))
