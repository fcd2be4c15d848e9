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
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult
from defendr_cli.core.evaluation.report.adaptive_tables import adaptive_tables
from defendr_cli.core.evaluation.report.figures import report_figures
from defendr_cli.core.evaluation.report.markdown import report_markdown
from defendr_cli.core.evaluation.report.suite_compare import suite_comparison
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.report.transfer_tables import transfer_tables
from defendr_cli.core.evaluation.transfer.results import TransferResult
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


def all_tables(transfer: TransferResult | None, adaptive: AdaptiveResult | None,
               siblings: list[tuple[str, dict]] | None = None) -> list[Table]:
    """Every table of a report, paper tables first; with `siblings` (other reports' results.json,
    core.evaluation.report.suite_compare) the comparison with other suites on the same images."""
    tables = transfer_tables(transfer) if transfer else []
    if adaptive:
        compared = suite_comparison(adaptive, transfer, siblings) if transfer and siblings else None
        tables += adaptive_tables(adaptive, transfer) + ([compared] if compared is not None else [])
    return tables


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_report(folder: Path, *, name: str, transfer: TransferResult | None = None,
                 adaptive: AdaptiveResult | None = None,
                 settings: dict | None = None, extra: dict | None = None,
                 siblings: list[tuple[str, dict]] | None = None) -> ReportFiles:
    """Write results.json, tables/*.csv, the PNGs and report.md into `folder` (created). `extra`:
    further top-level results.json keys (JSON-able; e.g. 'robustbench'), added after the others;
    `siblings`: other reports' (name, results.json) to compare suites with (`all_tables`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = all_tables(transfer, adaptive, siblings)
    files = ReportFiles(folder, folder / RESULTS_FILE, folder / REPORT_FILE)
    for table in tables:
        files.csvs.append(_write_text(folder / "tables" / f"{table.key}.csv", table.to_csv()))
    figures = report_figures(folder, transfer, adaptive)
    files.figures = [p for _, p in figures]
    results = {"name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings or {},
               "transfer": transfer.to_dict() if transfer else None,
               "adaptive": adaptive.to_dict() if adaptive else None, "tables": [t.to_dict() for t in tables],
               "figures": [p.name for p in files.figures]}
    results.update({k: v for k, v in (extra or {}).items() if k not in results})
    _write_text(files.results, json.dumps(results, indent=2, default=str))
    _write_text(files.markdown, report_markdown(name, settings or {}, tables, figures, transfer, adaptive))
    return files


def read_results(folder: Path) -> dict:
    """The results.json of a report folder."""
    path = Path(folder) / RESULTS_FILE
    if not path.exists():
        raise MissingArtefactError(f"no report at {folder}", hint="make it with: defendr evaluate")
    return read_results_file(path)  # schema-checked, never a FIFO (core/io/report_file.py)
