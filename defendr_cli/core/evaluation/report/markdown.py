"""report.md: the tables (accuracies in %) with the figures embedded and the settings dumped."""

from __future__ import annotations

import json
from pathlib import Path

from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.transfer.results import TransferResult


def report_markdown(name: str, settings: dict, tables: list[Table], figures: list[tuple[str, Path]],
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
