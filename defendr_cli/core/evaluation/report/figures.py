"""The report's figures from its results: which PNGs a report holds and their captions
(core.evaluation.report.plots draws them)."""

from __future__ import annotations

from pathlib import Path

from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.report import plots
from defendr_cli.core.evaluation.report.adaptive_tables import comparison_rows
from defendr_cli.core.evaluation.transfer.results import TransferResult


def report_figures(folder: Path, transfer: TransferResult | None, adaptive: AdaptiveResult | None) -> list[tuple[str, Path]]:
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
            curves[m.name] = [(0.0, m.clean)] + [(eps_scalar(m.eps_of(p.label)), p.robust) for p in m.points
                                                 if m.eps_of(p.label) is not None]
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
