"""The report's text sections: summary cards, phenomena checks, the paper's tables, the adaptive
evaluation with its checks, and per-class accuracy. Each function returns an HTML fragment
(a <section> with an id the table of contents links to), or '' when the report has no such data.
"""

from __future__ import annotations

from typing import Any

from defendr_cli.core.evaluation.adaptive.plan import SUITE_NOTES
from defendr_cli.core.evaluation.html.page import esc
from defendr_cli.core.evaluation.html.summary import ModelSummary, pct
from defendr_cli.core.evaluation.html.tables import simple_table, table_html

# what each sanity check guards against (README, "Reading the adaptive evaluation")
CHECK_MEANING = {
    "randomized": "a randomized model must be attacked with EOT and classified over several draws",
    "logits-output": "attacks need logits; probabilities or log-probabilities can hide the gradient",
    "zero-gradients": "images whose input gradient is exactly zero cannot be attacked by gradients",
    "black-box-beats-white-box": "a gradient-free or transferred attack broke images every white-box attack "
                                 "missed: the gradients are masked",
    "monotone-in-eps": "accuracy must not rise with a larger eps",
    "monotone-in-steps": "accuracy must not rise with more attack steps",
    "monotone-in-restarts": "accuracy must not rise with more restarts",
    "eps0-equals-clean": "an attack with eps = 0 must change nothing",
    "large-eps-near-zero": "a very large eps (64/255) must drive accuracy to about 0%",
}
STATUS_TEXT = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def badge(status: str, text: str | None = None) -> str:
    status = status if status in STATUS_TEXT else "warn"
    return f'<span class="badge {status}">{esc(text or STATUS_TEXT[status])}</span>'


def section(anchor: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f"<p>{intro}</p>" if intro else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{intro_html}\n{body}\n</section>'


def _metric(label: str, value: float | None, note: str = "") -> str:
    shown = "n/a" if value is None else f"{100 * value:.1f}%"
    title = f' title="{esc(note)}"' if note else ""
    return f'<div class="metric"{title}><b>{esc(shown)}</b><span>{esc(label)}</span></div>'


def card(s: ModelSummary) -> str:
    """One model's card: three figures, check counts, cost, the headline sentence."""
    robust_label = f"adaptive {s.eps_label}" if s.eps_label else "adaptive: not run"
    metrics = (_metric("clean", s.clean) + _metric("transfer", s.transfer, s.transfer_label or "")
               + _metric(robust_label, s.robust))
    counts = " ".join(badge(k, f"{s.counts.get(k, 0)} {k}") for k in ("pass", "warn", "fail")
                      if s.counts.get(k, 0) or k == "pass") if s.robust is not None else \
        '<span class="muted small">no adaptive checks (not attacked adaptively)</span>'
    where = f"{s.images} test images" if s.images else ""
    if s.robust is not None and s.images:
        where = f"all three on the same {s.images} seeded test images"
    cost = f'<p class="small muted">cost: {esc("; ".join(s.cost))}</p>' if s.cost else ""
    if s.other_eps:
        others = ", ".join(f"{label} {pct(value)}" for label, value in s.other_eps.items())
        cost = f'<p class="small muted">adaptive at other eps: {esc(others)}</p>' + cost
    return (f'<div class="card {esc(s.status)}"><h3>{esc(s.name)} <span class="kind">{esc(s.kind)}</span></h3>'
            f'<div class="metrics">{metrics}</div><p class="small muted">{esc(where)}</p><p>{counts}</p>'
            f'<p class="headline">{esc(s.headline)}</p>{cost}</div>')


def cards_section(summaries: list[ModelSummary]) -> str:
    if not summaries:
        return ""
    body = '<div class="cards">' + "\n".join(card(s) for s in summaries) + "</div>"
    intro = ("Accuracy in %. <i>Transfer</i>: the paper's protocol (adversarial images made on another model); "
             "<i>adaptive</i>: the attack suite run through the whole defense, per-image worst case. "
             "Only the adaptive figure bounds an attacker who knows the model.")
    return section("summary", "Summary per model", body, intro)


def phenomena_section(phenomena: list[dict]) -> str:
    """The reproduce profile's phenomena checks (phenomena.json), PASS/FAIL with their detail."""
    if not phenomena:
        return ""
    rows = []
    for item in phenomena:
        suffix = "%" if item.get("unit") == "%" else " pts"
        value = "-" if item.get("value") is None else f"{100 * item['value']:.1f}{suffix}"
        rows.append([item.get("name"), value, f"{100 * item.get('threshold', 0):.1f}{suffix}",
                     "PASS" if item.get("passed") else "FAIL", item.get("detail", "")])
    table = simple_table("phenomena", "", ["Check", "Value", "Threshold", "Result", "Detail"], rows)
    html = table_html(table, cell=lambda i, row, v: f"<td>{badge(v.lower())}</td>" if i == 3 else None,
                      row_class=lambda row: "fail" if row[3] == "FAIL" else "")
    return section("phenomena", "Phenomena checks", html,
                   "What the profile must show (thresholds in its <code>checks</code> block); a failing check is "
                   "reported, never re-thresholded.")


def paper_tables_section(results: dict, extra: list[dict]) -> str:
    """Tables 1-6 of the paper as this run filled them (results.json tables 'table*'), then `extra`."""
    tables = [t for t in results.get("tables") or [] if str(t.get("key", "")).startswith("table")] + list(extra)
    if not tables:
        return ""
    return section("paper-tables", "The paper's tables", "\n".join(table_html(t) for t in tables),
                   "Accuracy in %, transfer protocol: every model on the cached adversarial test sets.")


def _checks_cell(row_by_name: dict[str, dict]):
    def cell(i: int, row: list[Any], value: Any) -> str | None:
        model = row_by_name.get(row[0])
        if i != len(row) - 1 or model is None:
            return None
        marks = [badge(c["status"], f"{c['status'].upper()} {c['name']}") for c in model.get("checks", [])
                 if c.get("status") != "pass"]
        passed = sum(1 for c in model.get("checks", []) if c.get("status") == "pass")
        return f'<td data-v="{len(marks)}">{badge("pass", f"{passed} pass")} {" ".join(marks)}</td>'
    return cell


def check_list(models: list[dict]) -> str:
    """Every check that did not pass, failures first, with its one-line detail and what it guards against."""
    items = [(c["status"], m["name"], c) for m in models for c in m.get("checks", []) if c.get("status") != "pass"]
    items.sort(key=lambda item: item[0] != "fail")
    if not items:
        return '<p>' + badge("pass", "all checks passed") + " on every model attacked adaptively.</p>"
    lines = [f"<li>{badge(status)} <b>{esc(model)}</b> · <code>{esc(c['name'])}</code>: {esc(c.get('detail', ''))}"
             f'<br><span class="small muted">{esc(CHECK_MEANING.get(c["name"], ""))}</span></li>'
             for status, model, c in items]
    return '<ul class="checks">' + "".join(lines) + "</ul>"


def _budget_text(budget: dict) -> str:
    """'apgd: loss=ce, steps=100, ...' from a budget {'attack', parameters...} (results.json `budgets`)."""
    params = ", ".join(f"{k}={v}" for k, v in budget.items() if k != "attack")
    return f"{budget.get('attack', '?')}: {params}" if params else str(budget.get("attack", "?"))


def suite_versions(models: list[dict]) -> str:
    """Per model that ran a suite: the suite's name and every attack with every budget it ran with, in
    order, then the suite's note (what a 'fast' screening run is and is not); '' when no model has budgets."""
    items, suites = [], []
    for m in models:
        budgets = m.get("budgets") or {}
        if not budgets:
            continue
        suites.append(m.get("suite"))
        attacks = "".join(f"<li><code>{esc(label)}</code> {esc(_budget_text(b))}</li>" for label, b in budgets.items())
        items.append(f"<li><b>{esc(m['name'])}</b>: suite <code>{esc(m.get('suite') or 'custom')}</code>, "
                     f'in this order<ul class="budgets">{attacks}</ul></li>')
    if not items:
        return ""
    notes = "".join(f'<p class="note"><b>{esc(name)}</b>: {esc(SUITE_NOTES[name])}</p>'
                    for name in dict.fromkeys(suites) if name in SUITE_NOTES)
    return '<h3>Suite version and budgets</h3><ul class="suites">' + "".join(items) + "</ul>" + notes


def adaptive_section(results: dict) -> str:
    """The suite table (per-attack columns, ensemble route, checks), what failed or warned and why,
    the PGD sweep, transfer vs adaptive, and the full sanity table."""
    adaptive = results.get("adaptive")
    if not adaptive:
        return ""
    models = adaptive.get("models") or []
    by_name = {m["name"]: m for m in models}
    tables = {t["key"]: t for t in results.get("tables") or []}
    parts = []
    if "adaptive-suite" in tables:
        parts.append(table_html(tables["adaptive-suite"], cell=_checks_cell(by_name),
                                row_class=lambda row: _worst(by_name.get(row[0]))))
    parts.append(suite_versions(models))
    for key in ("adaptive-cost", "suite-comparison"):
        if key in tables:
            parts.append(table_html(tables[key]))
    parts.append("<h3>Checks that did not pass</h3>" + check_list(models))
    for key in ("adaptive-sweep", "adaptive-vs-transfer"):
        if key in tables:
            parts.append(table_html(tables[key]))
    if "sanity-checks" in tables:
        parts.append(table_html(tables["sanity-checks"],
                                cell=lambda i, row, v: f"<td>{badge(str(v).lower())}</td>" if i == 2 else None,
                                row_class=lambda row: {"FAIL": "fail", "WARN": "warn"}.get(str(row[2]), "")))
    subset = len(adaptive.get("subset") or [])
    return section("adaptive", "Adaptive evaluation", "\n".join(parts),
                   f"Attacks through the whole defense on {subset} seeded test images. A row marked red has a "
                   "failed check: do not quote its robust number as it stands; amber marks a warning.")


def _worst(model: dict | None) -> str:
    statuses = {c.get("status") for c in (model or {}).get("checks", [])}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else ""


def per_class_section(results: dict) -> str:
    """Clean and adversarial accuracy of every class for the headline model on the primary set."""
    per_class = (results.get("transfer") or {}).get("per_class")
    names = ((results.get("transfer") or {}).get("data") or {}).get("class_names") or []
    if not per_class:
        return ""
    clean, adv = per_class.get("clean_accuracy") or [], per_class.get("adv_accuracy") or []
    rows = [[k, names[k] if k < len(names) else str(k), clean[k] if k < len(clean) else None,
             adv[k] if k < len(adv) else None] for k in range(max(len(clean), len(adv)))]
    rows = [r[:4] + [None if r[2] is None or r[3] is None else r[2] - r[3]] for r in rows]
    table = simple_table("per-class", f"{per_class['model']} on {per_class['set']}",
                         ["Class", "Name", "Clean", "Adversarial (100%)", "Drop"], rows, percent_columns=[2, 3, 4],
                         caption="Accuracy (%) per class on the whole test split; Drop = clean minus adversarial, "
                                 "in points. Click a header to sort.")
    return section("per-class", "Per-class accuracy", table_html(table))

