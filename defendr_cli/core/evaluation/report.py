"""A report folder: results.json, one CSV per table, PNG figures and report.md laid out like the paper.

    reports/<name>/results.json      {'name', 'created', 'settings', 'transfer', 'adaptive', 'tables'}
    reports/<name>/tables/<key>.csv  every table, accuracies as fractions
    reports/<name>/*.png             confusion matrix, accuracy vs eps, adaptive vs transfer
    reports/<name>/report.md         the tables (accuracies in %) with the PNGs embedded
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import MissingArtefactError
from defendr_cli.core.evaluation import plots
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.report_tables import adaptive_tables, comparison_rows, transfer_tables
from defendr_cli.core.evaluation.results import AdaptiveResult, TransferResult
from defendr_cli.core.evaluation.tables import Table
from defendr_cli.core.io.report_file import read_results_file

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"


@dataclass
class ReportFiles:
    folder: Path
    results: Path
    markdown: Path
    csvs: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def all_tables(transfer: TransferResult | None, adaptive: AdaptiveResult | None) -> list[Table]:
    """Every table of a report, paper tables first."""
    tables = transfer_tables(transfer) if transfer else []
    if adaptive:
        tables += adaptive_tables(adaptive, transfer)
    return tables


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _figures(folder: Path, transfer: TransferResult | None, adaptive: AdaptiveResult | None) -> list[tuple[str, Path]]:
    figures = []
    if transfer and transfer.confusion:
        c = transfer.confusion
        figures.append(("Figure 15. Confusion matrix between predictions on clean and adversarial images "
                        f"({c.model}, {c.set})",
                        plots.confusion_png(c.matrix, transfer.data.class_names, folder / "confusion.png",
                                            title=f"{c.model}: clean vs {c.set}")))
    if transfer and transfer.adv_sets:
        curves: dict[str, list[tuple[float, float]]] = {}
        for m in transfer.models:
            for s in transfer.adv_sets:
                points = curves.setdefault(f"{m.name} / {s.attack}" + (f" s{s.steps}" if s.steps else ""),
                                           [(0.0, m.clean)])
                points.append((eps_scalar(s.eps), m.sets[s.name].adv100))
        figures.append(("Accuracy vs eps, transfer protocol (eps 0 = clean)",
                        plots.accuracy_vs_eps_png(curves, folder / "accuracy-vs-eps.png",
                                                  title="Transfer: accuracy vs eps")))
    if adaptive:
        curves = {}
        for m in adaptive.models:
            eps_of_label = {label: eps_scalar(m.eps_of(label)) for label in m.robust if m.eps_of(label) is not None}
            curves[m.name] = [(0.0, m.clean)] + [(value, m.robust[label]) for label, value in eps_of_label.items()]
        figures.append(("Accuracy vs eps, adaptive evaluation (robust: worst case per image)",
                        plots.accuracy_vs_eps_png(curves, folder / "adaptive-accuracy-vs-eps.png",
                                                  title="Adaptive: accuracy vs eps")))
    if adaptive and transfer:
        rows = comparison_rows(adaptive, transfer)
        if rows:
            figures.append(("Transfer vs adaptive accuracy at the same eps",
                            plots.comparison_bars_png(rows, folder / "adaptive-vs-transfer.png",
                                                      title="Transfer (paper) vs adaptive white-box")))
    return figures


def _markdown(name: str, settings: dict, tables: list[Table], figures: list[tuple[str, Path]],
              transfer: TransferResult | None, adaptive: AdaptiveResult | None) -> str:
    lines = [f"# Defendr evaluation report: {name}", ""]
    if transfer:
        d = transfer.data
        lines += [f"Clean cache `{Path(d.path).name}` (fingerprint `{d.fingerprint}`), "
                  f"{d.num_classes} classes, {d.test_count} test images of {d.image_size} px. "
                  f"Seed {transfer.seed}. Accuracies in %.", ""]
        if transfer.adv_sets:
            lines += ["Adversarial test sets:", ""]
            lines += [f"- `{s.name}`: {s.attack}, eps {s.eps_label} ({s.eps_space}), "
                      f"steps {s.steps or '-'}, from `{s.source_model}`, {s.count} images, "
                      f"stored {s.dtype}" for s in transfer.adv_sets]
            lines.append("")
    if adaptive:
        failed = [(m.name, c.name, c.status) for m in adaptive.models for c in m.checks if not c.passed]
        lines += ["## Sanity checks: " + ("all passed" if not failed else
                                          ", ".join(f"{n} {c} {s.upper()}" for n, c, s in failed)), ""]
    for table in tables:
        lines += [table.to_markdown(), ""]
    for caption, path in figures:
        lines += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
    if settings:
        lines += ["## Settings", "", "```json", json.dumps(settings, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def write_report(folder: Path, *, name: str, transfer: TransferResult | None = None,
                 adaptive: AdaptiveResult | None = None,
                 settings: dict | None = None) -> ReportFiles:
    """Write results.json, tables/*.csv, the PNGs and report.md into `folder` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = all_tables(transfer, adaptive)
    files = ReportFiles(folder, folder / RESULTS_FILE, folder / REPORT_FILE)
    for table in tables:
        files.csvs.append(_write_text(folder / "tables" / f"{table.key}.csv", table.to_csv()))
    figures = _figures(folder, transfer, adaptive)
    files.figures = [p for _, p in figures]
    results = {"name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings or {},
               "transfer": transfer.to_dict() if transfer else None,
               "adaptive": adaptive.to_dict() if adaptive else None, "tables": [t.to_dict() for t in tables],
               "figures": [p.name for p in files.figures]}
    _write_text(files.results, json.dumps(results, indent=2, default=str))
    _write_text(files.markdown, _markdown(name, settings or {}, tables, figures, transfer, adaptive))
    return files


def read_results(folder: Path) -> dict:
    """The results.json of a report folder."""
    path = Path(folder) / RESULTS_FILE
    if not path.exists():
        raise MissingArtefactError(f"no report at {folder}", hint="make it with: defendr evaluate")
    return read_results_file(path)  # schema-checked, never a FIFO (core/io/report_file.py)
