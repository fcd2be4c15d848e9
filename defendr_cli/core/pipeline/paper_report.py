"""The reproduce report's extra sections: our numbers beside the paper's, and the phenomena checks.

The phenomena (issue: the quick profile must show them honestly, thresholds in the profile's
`checks` block) are computed from the evaluate results, stored in `phenomena.json` and appended to
`report.md` with a pass/fail mark. A failing check is reported, never hidden or re-thresholded.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult
from defendr_cli.core.evaluation.transfer.results import SetScores, TransferResult, TransferRow
from defendr_cli.core.io.report_file import read_phenomena_file
from defendr_cli.core.pipeline import stages as st

PAPER_TABLES = "paper_tables.json"
PHENOMENA_FILE = "phenomena.json"
SETTINGS_HEADING = "## Settings"
RAND_SUFFIX = "+random-resize-pad"

# paper Table 1 row -> our model row name
TABLE1_ROWS = {
    "Baseline, no adv. train": "baseline",
    "Baseline, adv. train": "adv",
    "CLP, no adv. train": "clp",
    "ALP, adv. train": "alp",
    "DUNET, adv. train": "dunet",
    "Randomization, no adv. train": "baseline" + RAND_SUFFIX,
    "Randomization, adv. train": "adv" + RAND_SUFFIX,
}
TABLE3_ROWS = {"ALP + CLP": "alp-clp", "DUNET + CLP": "dunet-clp", "DUNET + ALP": "dunet-alp",
               "DUNET + ALP + CLP": "dunet-alp-clp"}


def paper_tables() -> dict[str, Any]:
    text = resources.files("defendr_cli.core.pipeline").joinpath(PAPER_TABLES).read_text(encoding="utf-8")
    return json.loads(text)


def _rows_by_name(transfer: TransferResult) -> dict[str, TransferRow]:
    return {row.name: row for row in transfer.models}


def _cell(row: TransferRow | None, set_name: str) -> SetScores | None:
    return row.sets.get(set_name) if row else None


def reference_set(settings: dict[str, Any]) -> str | None:
    """The name of the profile's reference set (`checks.reference_set`, a label such as
    'fgsm-eps8_255') on the test split, as the attack stage names it."""
    return st.adv_set_name(settings, settings["checks"]["reference_set"], "test")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def phenomena(transfer: TransferResult, adaptive: AdaptiveResult | None,
              checks: dict[str, Any], ref: str | None) -> list[dict[str, Any]]:
    """The checks of the quick profile, each {'name', 'value', 'threshold', 'passed', 'detail'};
    `ref` is the name of the reference set (`reference_set`)."""
    rows = _rows_by_name(transfer)
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, threshold: float, detail: str, unit: str = "pts") -> None:
        passed = value is not None and value >= threshold
        out.append({"name": name, "value": value, "threshold": threshold, "unit": unit, "passed": bool(passed),
                    "detail": detail})

    base = rows.get("baseline")
    base_cell = _cell(base, ref)
    add("baseline clean accuracy", base.clean if base else None, checks["min_clean"],
        "clean test accuracy of the undefended baseline", unit="%")
    add(f"accuracy drop under {checks['reference_set']}",
        (base_cell.clean - base_cell.adv100) if base_cell else None, checks["min_drop"],
        "baseline clean minus 100%-adversarial accuracy on the same images")
    adv_cell = _cell(rows.get("adv"), ref)
    add("adversarial training gain",
        (adv_cell.adv100 - base_cell.adv100) if adv_cell and base_cell else None, checks["min_adv_gain"],
        f"'adv' minus 'baseline' accuracy on {ref}")
    ref_eps = next((s.eps_label for s in transfer.adv_sets if s.name == ref), None)
    for model in checks.get("adaptive_below_transfer", []):
        entry = adaptive.model(model) if adaptive else None
        gap = None
        if entry and ref in entry.transfer:
            robust = entry.robust_at(ref_eps)
            if robust is not None:
                gap = entry.transfer[ref] - robust
        add(f"adaptive attack beats transfer on {model}", gap, 1e-9,
            f"transfer accuracy on {ref} minus worst adaptive accuracy at eps {ref_eps} (same images)")
    control = checks.get("robust_control")
    if control:
        margin, detail = robust_control_margin(adaptive, control, ref_eps)
        add(f"robust control {control['model']} holds", margin, float(control["min_margin"]), detail)
    return out


def robust_control_margin(adaptive: AdaptiveResult | None, control: dict[str, Any],
                          eps_label: str | None) -> tuple[float | None, str]:
    """(robust accuracy of the control model minus the best paper defense's, at `eps_label`; a line
    naming both). None when the control or every defense is missing from the adaptive result."""
    name = control["model"]
    entry = adaptive.model(name) if adaptive else None
    if entry is None or entry.robust_at(eps_label) is None:
        return None, f"{name} has no adaptive robust accuracy at eps {eps_label}"
    others = {d: adaptive.model(d).robust_at(eps_label) for d in control.get("defenses", [])
              if adaptive.model(d) is not None and adaptive.model(d).robust_at(eps_label) is not None}
    if not others:
        return None, f"no paper defense was attacked adaptively at eps {eps_label}"
    best = max(others, key=others.get)
    robust = entry.robust_at(eps_label)
    return (robust - others[best],
            f"{name} adaptive robust {100 * robust:.1f}% minus the best paper defense "
            f"({best}, {100 * others[best]:.1f}%) at eps {eps_label}")


def _comparison_markdown(transfer: TransferResult, settings: dict[str, Any], ref: str | None) -> list[str]:
    paper = paper_tables()
    rows = _rows_by_name(transfer)
    lines = ["## Our numbers beside the paper's", "",
             f"Paper: {paper['source']}", "",
             f"Ours: profile `{settings.get('profile')}`, reference adversarial set `{ref}`. "
             "The paper's numbers are on ImageNet with a pretrained ResNet-101; ours come from the profile's "
             "data and model, so compare the direction and size of effects, not the values.", "",
             f"### {paper['table1']['title']}", "",
             "| Paper row | Our model | Paper clean / 50% / 100% | Ours clean / 50% / 100% |", "|---|---|---|---|"]
    for label, ours in TABLE1_ROWS.items():
        theirs = " / ".join(_paper(v) for v in paper["table1"]["rows"][label])
        row = rows.get(ours)
        cell = _cell(row, ref)
        mine = " / ".join(_pct(v) for v in ((row.clean, cell.adv50, cell.adv100) if cell else (None,) * 3))
        lines.append(f"| {label} | {ours if row else '(not run)'} | {theirs} | {mine} |")
    lines += ["", f"### {paper['table3']['title']}", "", "| Paper ensemble | Ours | Paper | Ours (100% adv.) |",
              "|---|---|---|---|"]
    for label, ours in TABLE3_ROWS.items():
        row = rows.get(ours)
        cell = _cell(row, ref)
        lines.append(f"| {label} | {ours if row else '(not run)'} | {_paper(paper['table3']['rows'][label][0])} | "
                     f"{_pct(cell.adv100) if cell else '-'} |")
    lines += ["", "Paper Tables 2 and 4 (attack strength and cross-attack robustness) correspond to our Table 2 and "
              "Table 4 above, with the profile's attacks as columns.", ""]
    return lines


def format_check_values(item: dict[str, Any]) -> tuple[str, str]:
    """('99.5%', '90.0%') or ('72.2 pts', '40.0 pts') for one phenomena check."""
    unit = item.get("unit", "pts")
    suffix = "%" if unit == "%" else " pts"
    value = "-" if item["value"] is None else f"{100 * item['value']:.1f}{suffix}"
    return value, f"{100 * item['threshold']:.1f}{suffix}"


def _gradcam_markdown(folder: Path) -> list[str]:
    grids = sorted((folder / "gradcam").glob("*.png"))
    if not grids:
        return []
    lines = ["## Grad-CAM (paper Figures 12-14)", "",
             "Clean image, its class-activation map, the adversarial image, its map and the difference; "
             "images the model got right and the attack fooled come first.", ""]
    lines += [f"![Grad-CAM {p.stem}](gradcam/{p.name})" for p in grids]
    return lines + [""]


def _phenomena_markdown(results: list[dict[str, Any]]) -> list[str]:
    lines = ["## Phenomena checks", "", "| Check | Value | Threshold | Result |", "|---|---|---|---|"]
    for item in results:
        value, threshold = format_check_values(item)
        mark = "PASS" if item["passed"] else "FAIL"
        lines.append(f"| {item['name']} | {value} | {threshold} | {mark} |")
    lines += ["", "Adaptive numbers are per-image worst cases over the attack suite (and the PGD sweep), on the "
              "adaptive subset; a defense "
              "whose adaptive accuracy is far below its transfer accuracy was only robust to attacks that could "
              "not see it (Athalye, Carlini & Wagner 2018).", ""]
    return lines


def write_paper_comparison(folder: Path, transfer: TransferResult, adaptive: AdaptiveResult | None,
                           settings: dict[str, Any]) -> list[Path]:
    """Append the comparison and phenomena sections to report.md; write phenomena.json."""
    folder = Path(folder)
    ref = reference_set(settings)
    results = phenomena(transfer, adaptive, settings["checks"], ref)
    path = folder / PHENOMENA_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    report = folder / "report.md"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    extra = "\n".join(_comparison_markdown(transfer, settings, ref) + _phenomena_markdown(results)
                      + _gradcam_markdown(folder))
    head, marker, tail = text.partition(SETTINGS_HEADING)  # our sections go before the settings dump
    text = f"{head.rstrip()}\n\n{extra}\n{marker}{tail}" if marker else f"{text.rstrip()}\n\n{extra}"
    with atomic_path(report) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return [path]


def read_phenomena(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / PHENOMENA_FILE
    return read_phenomena_file(path) if path.exists() else []
