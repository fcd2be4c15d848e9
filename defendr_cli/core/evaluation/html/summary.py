"""One summary per model (clean, transfer and adaptive robust accuracy, checks, cost) and the
headline sentence its evidence supports.

Accuracies are fractions in [0, 1]. For a model attacked adaptively all three figures are on the
same seeded subset of test images (the adaptive suite table's row at the model's first eps);
otherwise clean is on the whole test split and transfer is the 100%-adversarial accuracy on the
primary cached set. The headline rules, in order: near chance when clean (the figure on the card)
is at most NEAR_CHANCE x chance; "transfer only" without an adaptive attack; "do not quote" when a
check failed; "robust only to transferred attacks" / "broken" when the adaptive figure is at most
BROKEN; "holds" when it keeps at least HOLDS of the clean accuracy (saying so when transfer
overstates it); "overstated by transfer" when transfer exceeds it by OVERSTATED or more; else "weakly
robust".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NEAR_CHANCE = 1.5  # clean accuracy at most this many times chance: the figures mean nothing yet
BROKEN = 0.05  # adaptive robust accuracy at or below 5%: the defense is broken
OVERSTATED = 0.10  # transfer above adaptive by 10 points or more: transfer overstates robustness
HOLDS = 0.5  # adaptive robust accuracy at least half the clean accuracy: the defense holds


@dataclass
class ModelSummary:
    """What a card shows; `problems` are the checks that did not pass: (status, name, detail)."""

    name: str
    kind: str
    clean: float | None
    transfer: float | None
    robust: float | None
    images: int | None
    eps_label: str | None
    transfer_label: str | None
    all_draws: float | None = None
    other_eps: dict[str, float] = field(default_factory=dict)  # adaptive robust accuracy at the other eps
    counts: dict[str, int] = field(default_factory=lambda: {"pass": 0, "warn": 0, "fail": 0})
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    cost: list[str] = field(default_factory=list)
    headline: str = ""

    @property
    def status(self) -> str:
        """'fail', 'warn', 'pass' (attacked adaptively, every check passed) or 'none' (not attacked)."""
        if self.counts["fail"]:
            return "fail"
        if self.counts["warn"]:
            return "warn"
        return "pass" if self.robust is not None else "none"


def pct(value: float | None) -> str:
    """'46.0%' (one decimal) or 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def suite_row(results: dict, model: str, eps_label: str) -> list[Any] | None:
    """The adaptive suite table's row of `model` at `eps_label` (results.json 'tables')."""
    table = next((t for t in results.get("tables") or [] if t.get("key") == "adaptive-suite"), None)
    if table is None:
        return None
    return next((r for r in table["rows"] if r[0] == model and r[2] == eps_label), None)


def _training_cost(results: dict, name: str) -> list[str]:
    stages = ((results.get("timing") or {}).get("stages")) or []
    stage = next((s for s in stages if s.get("id") == f"train:{name}" and s.get("status") == "ran"), None)
    return [f"training {stage['seconds']:.1f} s wall, {stage['cpu_seconds']:.1f} s CPU"] if stage else []


def passes_text(suite: str | None, eps_label: str, forward: int, backward: int, images: int) -> str:
    """'adaptive standard at 8/255: 1.2345 M passes (0.8000 M forward + 0.4345 M backward), 2469.0 per image':
    passes counted at the model, summed over the subset's `images`; per image = total / images."""
    total = forward + backward
    return (f"adaptive {suite or 'suite'} at {eps_label}: {total / 1e6:.4f} M passes ({forward / 1e6:.4f} M forward "
            f"+ {backward / 1e6:.4f} M backward), {total / max(images, 1):.1f} per image")


def _adaptive_cost(row: dict, images: int) -> list[str]:
    """One line per eps from the row's counted `passes` (results.json), the suite's total over its attacks."""
    out = []
    for label, passes in (row.get("passes") or {}).items():
        total = passes.get("total") or {}
        if "forward" in total and "backward" in total:
            out.append(passes_text(row.get("suite"), label, int(total["forward"]), int(total["backward"]), images))
    return out


def headline_eps(results: dict, row: dict) -> str | None:
    """The eps label a card shows: the primary cached set's eps when the model was attacked at it, else its first."""
    transfer = results.get("transfer") or {}
    primary = next((s for s in transfer.get("adv_sets") or [] if s.get("name") == transfer.get("primary_set")), None)
    robust = row.get("robust") or {}
    if primary and primary.get("eps_label") in robust:
        return primary["eps_label"]
    return next(iter(robust), None)


def _summary_adaptive(results: dict, row: dict) -> ModelSummary:
    label = headline_eps(results, row)
    table_row = suite_row(results, row["name"], label) if label else None
    transfer = table_row[4] if table_row and len(table_row) > 4 else None
    subset = (results.get("adaptive") or {}).get("subset") or []
    summary = ModelSummary(name=row["name"], kind=row.get("kind", ""), clean=row.get("clean"), transfer=transfer,
                           robust=(row.get("robust") or {}).get(label), images=len(subset) or None, eps_label=label,
                           transfer_label=f"worst cached set at {label}" if transfer is not None else None,
                           all_draws=(row.get("all_draws") or {}).get(label),
                           other_eps={k: v for k, v in (row.get("robust") or {}).items() if k != label})
    for check in row.get("checks") or []:
        status = str(check.get("status", "pass"))
        summary.counts[status] = summary.counts.get(status, 0) + 1
        if status != "pass":
            summary.problems.append((status, str(check.get("name")), str(check.get("detail", ""))))
    summary.cost = _adaptive_cost(row, len(subset))
    return summary


def _summary_transfer(transfer: dict, row: dict) -> ModelSummary:
    primary = transfer.get("primary_set")
    scores = (row.get("sets") or {}).get(primary) or {}
    adv_set = next((s for s in transfer.get("adv_sets") or [] if s.get("name") == primary), None)
    label = f"{adv_set['attack']} {adv_set['eps_label']}" if adv_set else primary
    return ModelSummary(name=row["name"], kind=row.get("kind", ""), clean=row.get("clean"),
                        transfer=scores.get("adv100"), robust=None,
                        images=(transfer.get("data") or {}).get("test_count"), eps_label=None,
                        transfer_label=label)


def model_summaries(results: dict) -> list[ModelSummary]:
    """One summary per model: transfer models in table order, then models only attacked adaptively."""
    transfer = results.get("transfer") or {}
    adaptive = {m["name"]: m for m in (results.get("adaptive") or {}).get("models") or []}
    rows = {m["name"]: m for m in transfer.get("models") or []}
    names = list(rows) + [n for n in adaptive if n not in rows]
    num_classes = (transfer.get("data") or {}).get("num_classes")
    out = []
    for name in names:
        if name in adaptive:
            summary = _summary_adaptive(results, adaptive[name])
        else:
            summary = _summary_transfer(transfer, rows[name])
        summary.cost = _training_cost(results, name) + summary.cost
        summary.headline = headline(summary, num_classes)
        out.append(summary)
    return out


def headline(s: ModelSummary, num_classes: int | None) -> str:
    """The one sentence the model's figures support (rules in the module docstring)."""
    chance = 1.0 / num_classes if num_classes else None
    if s.clean is None:
        return "No clean accuracy was measured: nothing can be said yet."
    if chance is not None and s.clean <= NEAR_CHANCE * chance:
        return (f"Near chance on clean images ({pct(s.clean)}, chance {pct(chance)}): "
                "its robustness figures mean nothing yet.")
    if s.robust is None:
        return (f"Transfer only: {pct(s.transfer)} on {s.transfer_label}; never attacked adaptively, so this "
                "does not bound an attacker who knows the model.")
    if s.counts["fail"]:
        failed = ", ".join(name for status, name, _ in s.problems if status == "fail")
        return f"Do not quote its robust accuracy ({pct(s.robust)} at {s.eps_label}): {failed} failed."
    gap = None if s.transfer is None else s.transfer - s.robust
    robust = pct(s.robust) + (f" (correct in every draw: {pct(s.all_draws)})" if s.all_draws is not None else "")
    if s.robust <= BROKEN:
        text = (f"Robust only to transferred attacks: {pct(s.transfer)} under transfer, {robust} under the "
                f"adaptive suite at {s.eps_label}." if gap is not None and gap >= OVERSTATED else
                f"Broken: the adaptive suite leaves {robust} at {s.eps_label}.")
    elif s.robust >= HOLDS * s.clean:
        text = f"Holds {robust} at {s.eps_label} under the adaptive suite (clean {pct(s.clean)})."
        if gap is not None and gap >= OVERSTATED:
            text = text[:-1] + f"; transfer ({pct(s.transfer)}) overstates it."
    elif gap is not None and gap >= OVERSTATED:
        text = (f"Overstated by transfer: {pct(s.transfer)} transfer vs {robust} adaptive at {s.eps_label}; "
                "quote the adaptive figure.")
    else:
        text = f"Weakly robust: {robust} at {s.eps_label} under the adaptive suite (clean {pct(s.clean)})."
    warned = [name for status, name, _ in s.problems if status == "warn"]
    if warned:
        text += f" {len(warned)} warning{'s' if len(warned) > 1 else ''}: {', '.join(warned)}."
    return text


def page_lede(summaries: list[ModelSummary]) -> str:
    """One sentence over every model: how many were attacked adaptively, the most robust, failed checks."""
    attacked = [s for s in summaries if s.robust is not None]
    if not summaries:
        return "No model results in this report."
    if not attacked:
        return (f"{len(summaries)} model{'s' if len(summaries) > 1 else ''}, evaluated with transferred attacks "
                "only: no figure here bounds an attacker who knows the model.")
    best = max(attacked, key=lambda s: (s.robust, -summaries.index(s)))
    text = (f"{len(attacked)} of {len(summaries)} models attacked adaptively; the most robust under adaptive attack "
            f"is {best.name} ({pct(best.robust)} at {best.eps_label}, clean {pct(best.clean)}).")
    failed = [s.name for s in summaries if s.status == "fail"]
    if failed:
        text += f" Failed checks on {', '.join(failed)}: do not quote their robust accuracy."
    return text
