"""What the adaptive suite runs: suites as data, and the `SuitePlan` a user chose.

Suites (`SUITES`) are lists of `SuiteEntry(label, attack registry name, params)`; `--attacks` picks
entries of `ATTACK_ENTRIES` (or plain registry names) for a 'custom' suite. `resolve_suite` turns
entries into the cascade's `SuiteAttack`s through `core.attacks.registry.build_attack`.
`SuitePlan` holds the command-line choices (suite name, attacks, Square's queries, EOT, draws, the
PGD sweep's grids) and resolves them per model ('auto' is 'rand' for a randomized model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.registry import build_attack, get_attack
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack
from defendr_cli.core.runtime import Runtime

SUITE_NAMES = ("auto", "standard", "fast", "rand", "quick", "custom")
DEFAULT_DRAWS = 10
DEFAULT_RAND_EOT = 20
DEFAULT_PGD_EOT = 30
PGD_LABEL = "pgd"  # in --attacks: the PGD step/restart sweep, which may be added to any suite


@dataclass(frozen=True)
class SuiteEntry:
    """An attack of a suite as data: `label` (column), `attack` (registry name), `params` (without eps)."""

    label: str
    attack: str
    params: dict[str, Any] = field(default_factory=dict)


# Known attack labels for suites and `--attacks`; a registry name not listed here runs with its defaults.
ATTACK_ENTRIES: dict[str, SuiteEntry] = {
    "apgd-ce": SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 100}),
    "apgd-dlr": SuiteEntry("apgd-dlr", "apgd", {"loss": "dlr", "steps": 100}),
    "apgd-t": SuiteEntry("apgd-t", "apgd-t", {"steps": 100, "n_target_classes": 9}),
    "fab-t": SuiteEntry("fab-t", "fab-t", {"steps": 100, "n_target_classes": 9}),
    "square": SuiteEntry("square", "square", {"n_queries": 5000}),
    "pgd": SuiteEntry("pgd", "pgd", {"steps": 20}),
    "fgsm": SuiteEntry("fgsm", "fgsm", {}),
}

SUITES: dict[str, tuple[SuiteEntry, ...]] = {
    # AutoAttack 'standard' (version 'standard' of auto-attack): APGD-CE (100 steps), APGD-T (DLR, 9 targets,
    # 100 steps), FAB-T (9 targets, 100 steps), Square (5000 queries), each on the images still standing.
    "standard": (ATTACK_ENTRIES["apgd-ce"], ATTACK_ENTRIES["apgd-t"], ATTACK_ENTRIES["fab-t"],
                 ATTACK_ENTRIES["square"]),
    # AutoAttack 'rand': APGD-CE and APGD-DLR, gradients averaged over 20 draws (EOT).
    "rand": (SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 100, "eot": DEFAULT_RAND_EOT}),
             SuiteEntry("apgd-dlr", "apgd", {"loss": "dlr", "steps": 100, "eot": DEFAULT_RAND_EOT})),
    # CPU-sized 'standard' (quick profile): ~20 + 3 x 20 gradients and 300 queries per image.
    # Screening suite (issue 21): AutoAttack's APGD-CE and APGD-T at 100 steps, each image dropped as soon
    # as it is broken (early_stop), APGD-T on the top-4 targets instead of 9, no FAB-T, Square 1000
    # queries instead of 5000. A screening evaluation, not a replacement for 'standard' (FAST_NOTE).
    "fast": (SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 100, "early_stop": True}),
             SuiteEntry("apgd-t", "apgd-t", {"steps": 100, "n_target_classes": 4, "early_stop": True}),
             SuiteEntry("square", "square", {"n_queries": 1000})),
    "quick": (SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 20}),
              SuiteEntry("apgd-t", "apgd-t", {"steps": 20, "n_target_classes": 3}),
              SuiteEntry("square", "square", {"n_queries": 300})),
}


FAST_NOTE = ("'fast' is a screening evaluation: its robust accuracy was within 0.5 points of 'standard' "
             "on the models of benchmarks/bench_fast.py at a fraction of the passes; for a claim in a paper, "
             "run 'standard'.")
# what a suite is and is not, stated next to its figures in report.md and report.html
SUITE_NOTES = {"fast": FAST_NOTE}


def choose_suite(name: str, stochastic: bool) -> str:
    """'auto' -> 'rand' for a randomized model, else 'standard'; other names are checked and returned."""
    key = name.strip().lower()
    if key not in SUITE_NAMES:
        raise InputError(f"unknown suite '{name}': use one of {', '.join(SUITE_NAMES)}")
    if key == "auto":
        return "rand" if stochastic else "standard"
    return key


def suite_entries(name: str, *, stochastic: bool = False, attacks: Sequence[str] = (),
                  overrides: dict[str, dict[str, Any]] | None = None) -> list[SuiteEntry]:
    """The entries of suite `name` ('auto' resolved with `stochastic`; 'custom' from `attacks`, labels of
    ATTACK_ENTRIES or plain registry names). `overrides` {label: params} replaces parameters per
    attack, e.g. {'square': {'n_queries': 1000}} or {'*': {'eot': 10}} for every attack."""
    key = choose_suite(name, stochastic)
    if key == "custom":
        if not attacks:
            raise InputError("--suite custom needs --attacks, e.g. --attacks apgd-ce,square")
        entries = [ATTACK_ENTRIES.get(a.strip().lower(), SuiteEntry(a.strip().lower(), a.strip().lower()))
                   for a in attacks if a.strip()]
    else:
        if attacks:
            raise InputError(f"--attacks picks the attacks of --suite custom, not of '{key}'")
        entries = list(SUITES[key])
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise InputError(f"an attack is repeated in the suite: {', '.join(labels)}")
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(labels) - {"*"})
    if unknown:
        raise InputError(f"parameters given for attacks not in the suite: {', '.join(unknown)}")
    return [SuiteEntry(e.label, e.attack, {**e.params, **overrides.get("*", {}), **overrides.get(e.label, {})})
            for e in entries]


def resolve_suite(entries: Sequence[SuiteEntry], eps: EpsLike, *, runtime: Runtime | None = None,
                  common: dict[str, Any] | None = None) -> list[SuiteAttack]:
    """SuiteAttacks from entries: `build_attack(entry.attack, eps=eps, **entry.params)` called with the
    generator and runtime. `common` (e.g. {'eot': 10, 'restarts': 2} from command-line flags)
    overrides the entries' parameters for every attack that accepts the parameter and is skipped
    for the others (Square takes no eot). Parameters are validated now (InputError for unknown
    attacks or parameters)."""
    out = []
    for entry in entries:
        spec = get_attack(entry.attack)
        params = {**entry.params, **{k: v for k, v in (common or {}).items() if spec.accepts(k)}}
        attack = build_attack(entry.attack, eps=eps, **params)

        def run(model, images, labels, generator, _attack=attack):
            return _attack(model, images, labels, generator=generator, runtime=runtime)

        out.append(SuiteAttack(entry.label, run, gradient_free=spec.gradient_free))
    return out


@dataclass(frozen=True)
class SuitePlan:
    """What to run: `suite` name ('auto' | 'standard' | 'fast' | 'rand' | 'quick' | 'custom'); `attacks` for
    custom ('pgd' means the PGD step/restart sweep and may be added to any suite);
    `square_queries` overrides Square's queries; `eot` gradient samples for randomized models
    (None: 20 for the suite, 30 for the PGD sweep); `draws` final random draws; `steps` /
    `restarts` the PGD sweep's grids."""

    suite: str = "auto"
    attacks: tuple[str, ...] = ()
    square_queries: int | None = None
    eot: int | None = None
    draws: int = DEFAULT_DRAWS
    steps: tuple[int, ...] = (10, 100)
    restarts: tuple[int, ...] = (1, 5)

    @property
    def pgd_sweep(self) -> bool:
        return PGD_LABEL in self.attacks

    @property
    def sweep_steps(self) -> list[int]:
        """The PGD sweep's steps, each once, ascending."""
        return sorted(set(self.steps))

    @property
    def sweep_restarts(self) -> list[int]:
        return sorted(set(self.restarts))

    def suite_eot(self, stochastic: bool) -> int:
        """Gradient samples of the suite's attacks: `eot` (default 20) for a randomized model, else 1."""
        return (self.eot or DEFAULT_RAND_EOT) if stochastic else 1

    def pgd_eot(self, stochastic: bool) -> int:
        """Gradient samples of the PGD sweep: `eot` (default 30) for a randomized model, else 1."""
        return (self.eot or DEFAULT_PGD_EOT) if stochastic else 1

    @property
    def cascade_attacks(self) -> list[str]:
        return [a for a in self.attacks if a != PGD_LABEL]

    def suite_name(self) -> str:
        """'auto' with attacks given means 'custom'."""
        name = self.suite.strip().lower()
        return "custom" if name == "auto" and self.attacks else name

    def entries(self, stochastic: bool) -> tuple[str, list[SuiteEntry]]:
        """(resolved suite name, its entries; empty for a custom suite of 'pgd' alone)."""
        name = choose_suite(self.suite_name(), stochastic)
        if name == "custom" and not self.cascade_attacks:
            if not self.pgd_sweep:
                raise InputError("--suite custom needs --attacks, e.g. --attacks apgd-ce,square")
            return name, []
        overrides: dict[str, dict[str, Any]] = {}
        if self.square_queries is not None:
            if self.square_queries < 1:
                raise InputError(f"--square-queries must be at least 1, got {self.square_queries}")
            overrides["square"] = {"n_queries": self.square_queries}
        entries = suite_entries(name, stochastic=stochastic, attacks=self.cascade_attacks if name == "custom" else ())
        return name, [replace(e, params={**e.params, **overrides[e.label]}) if e.label in overrides else e
                      for e in entries]

    def check(self) -> None:
        if self.draws < 1 or (self.eot is not None and self.eot < 1):
            raise InputError("--draws and --eot must be positive integers")
        if self.pgd_sweep and (not self.steps or min(self.steps) < 1 or not self.restarts or min(self.restarts) < 1):
            raise InputError("--steps and --restarts must be positive integers")
        self.entries(False)
        self.entries(True)


def entry_budget(entry: SuiteEntry, common: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an entry runs with, for reports: {'attack': registry name, **the attack's defaults (without
    eps and generic keywords), **entry.params, **the `common` parameters it accepts} (JSON-able)."""
    spec = get_attack(entry.attack)
    params = {k: v for k, v in spec.defaults.items() if isinstance(v, (int, float, str, bool)) or v is None}
    params.update(entry.params)
    params.update({k: v for k, v in (common or {}).items() if spec.accepts(k)})
    return {"attack": entry.attack, **{k: params[k] for k in sorted(params)}}


def member_entry(entries: Sequence[SuiteEntry]) -> SuiteEntry:
    """The attack of the ensemble's member-loss route: the suite's APGD-CE (its defaults otherwise)."""
    return next((e for e in entries if e.label == "apgd-ce"), ATTACK_ENTRIES["apgd-ce"])


def first_entry(entries: Sequence[SuiteEntry]) -> SuiteEntry:
    """The attack of the eps=0 and large-eps checks: the suite's first (APGD-CE for the PGD sweep alone)."""
    return entries[0] if entries else ATTACK_ENTRIES["apgd-ce"]


def cheap_entry(entry: SuiteEntry) -> SuiteEntry:
    """`entry` with the fewest steps or queries (2): an attack at eps 0 cannot move an image anyway."""
    spec = get_attack(entry.attack)
    return replace(entry, params={**entry.params, **{k: 2 for k in ("steps", "n_queries") if spec.accepts(k)}})


def early_stop_entry(entry: SuiteEntry) -> SuiteEntry:
    """`entry` stopping each image at its first adversarial iterate, when the attack can (APGD, APGD-T):
    for a check that only asks whether each image of a deterministic model breaks (the large-eps
    check), which then costs the steps until the image broke instead of every step."""
    spec = get_attack(entry.attack)
    return replace(entry, params={**entry.params, "early_stop": True}) if spec.accepts("early_stop") else entry


def column_name(label: str) -> str:
    """A suite column's header from its label: the attack's `AttackSpec.report_label`, with the loss
    when the entry picks one ('apgd-ce' -> 'APGD-CE', 'square' -> 'Square', 'pgd' -> 'PGD'); the
    label itself for an attack no longer registered."""
    entry = ATTACK_ENTRIES.get(label) or SuiteEntry(label, label)
    try:
        spec = get_attack(entry.attack)
    except InputError:
        return label
    loss = entry.params.get("loss")
    return f"{spec.report_label}-{str(loss).upper()}" if loss else spec.report_label
