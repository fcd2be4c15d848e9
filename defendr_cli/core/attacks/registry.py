"""The attacks by name: one `AttackSpec` per attack, read by everything that handles attacks by name.

`build_attack('pgd', eps=8/255, steps=10)(model, images, labels)` is how the stages that attack
inside their loops (adversarial training, adaptive evaluation) call an attack; the `attack` stage
(core/stages/attack.py) reads the spec for which options an attack takes, its default step size,
whether it draws random numbers, and how its sets are named. Adding an attack: write its function
in its own module and add one `AttackSpec` to `_BUILT_IN` below (or call `register_attack`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from defendr_cli.core.attacks.apgd import apgd
from defendr_cli.core.attacks.apgd_t import apgd_t
from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.attacks.bim import bim
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.fab import fab, fab_t
from defendr_cli.core.attacks.fgsm import fgsm, fgsm_multi
from defendr_cli.core.attacks.losses import LOSSES
from defendr_cli.core.attacks.mifgsm import mifgsm
from defendr_cli.core.attacks.pgd import default_iterative_step_size, default_pgd_step_size, pgd
from defendr_cli.core.attacks.square import square
from defendr_cli.core.errors import InputError
from defendr_cli.core.ranges import Range


CALL_ARGS = ("model", "images", "labels")
# Keywords every caller may pass to any attack; they are not the attack's own options.
CALL_KEYWORDS = ("eps", "eps_list", "targeted", "targets", "label_mode", "loss", "generator", "runtime",
                 "eval_mode", "check_success")
# Keywords every attack function takes (generator too when stochastic). The stage passes
# targeted/targets and loss only to attacks whose function takes them.
REQUIRED_KEYWORDS = ("runtime",)
# The shared call keywords an attack may take besides eps and runtime; `AttackSpec.keywords`
# declares which ones its function takes (all of them unless declared otherwise).
STANDARD_KEYWORDS = ("targeted", "targets", "label_mode", "loss", "generator", "eval_mode", "check_success")
_NO_DEFAULT = inspect.Parameter.empty


def _format_value(value: Any) -> str:
    """Filename-safe text of an option value: 0.75 -> '0.75', 'dlr' -> 'dlr'."""
    return str(value).replace("/", "_").replace(" ", "")


@dataclass(frozen=True)
class AttackSpec:
    """One attack: its function and what the stages need to know about it.

    function: `(model, images (N, 3, H, W) in [0, 1], labels int64 (N,), eps (pixel units), *,
        targeted, targets, loss, runtime[, generator], **options) -> AttackResult`.
    aliases: other accepted spellings ('i-fgsm' for 'bim'), lower case.
    default_step_size: `(eps, steps) -> step size` in pixel units, recorded in a set's attributes
        when the user gives none (None: the attack has no step size, or records none).
    stochastic: the attack draws from `generator` (random start, random search); the stage then
        passes a seeded generator and restores its state before every eps.
    multi_eps: optional `(model, images, labels, eps_list, **same keywords) -> [AttackResult]` that
        attacks several eps at once (FGSM shares one gradient); the stage prefers it and calls it
        with check_success=False (it measures success on the stored images).
    name_suffix: optional `(options) -> str` appended after the eps in a set's name; `options`
        holds the attack's own options as the stage passes them (steps, restarts, ...). The default
        (`standard_name_suffix`) writes '-s<steps>', '-norand', '-r<restarts>' and '-<key><value>'
        for every other option that differs from its default; step_size never enters the name.
    losses: the values `loss` may take for this attack.
    gradient_free: the attack uses no gradient (score-based search such as Square): the adaptive
        evaluation's masking check counts an image it breaks, where every gradient attack failed,
        as a sign of masked gradients.
    description: one line for help texts.
    keywords: the shared call keywords (`STANDARD_KEYWORDS`) the function takes besides eps and
        runtime, declared; callers ask `accepts(keyword)` and pass only those. `register_attack`
        checks the declaration against the function once.
    report_label: the attack's name in report columns ('APGD', 'Square'); default: its name.
    option_ranges: {option: core.ranges.Range} for the attack's own numeric options; an int option
        without one must be >= 1 (it counts something: steps, queries, samples), a float option
        without one must be finite. Checked by `check_option` where options enter (the attack
        stage's validation behind `defendr attack --option KEY=VALUE`).

    The attack's own options and their defaults are read from the function's signature, once,
    here: the default is the one place an option's default lives.
    """

    name: str
    function: Callable[..., AttackResult]
    aliases: tuple[str, ...] = ()
    default_step_size: Callable[[EpsLike, int], EpsLike] | None = None
    stochastic: bool = False
    multi_eps: Callable[..., list[AttackResult]] | None = None
    name_suffix: Callable[[Mapping[str, Any]], str] | None = None
    losses: tuple[str, ...] = LOSSES
    gradient_free: bool = False
    description: str = ""
    keywords: tuple[str, ...] = STANDARD_KEYWORDS
    report_label: str = ""
    option_ranges: Mapping[str, Range] = field(default_factory=dict, compare=False)
    parameters: tuple[str, ...] = field(init=False, repr=False, compare=False)
    defaults: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        signature = inspect.signature(self.function)
        own = [p for p in signature.parameters.values() if p.name not in CALL_ARGS and p.name not in CALL_KEYWORDS]
        object.__setattr__(self, "parameters", ("eps", *self.keywords, "runtime", *(p.name for p in own)))
        object.__setattr__(self, "defaults", {p.name: p.default for p in own if p.default is not _NO_DEFAULT})
        object.__setattr__(self, "report_label", self.report_label or self.name)

    def accepts(self, keyword: str) -> bool:
        """The function takes `keyword` (a shared call keyword it declares, or one of its own options):
        accepts('loss') for a caller-chosen objective, accepts('targeted') for a targeted mode."""
        return keyword in self.parameters

    def check_option(self, key: str, value: Any) -> None:
        """InputError naming the option and its allowed range when `value` is outside it: an int
        below 1 or outside its declared range, a float that is not finite or outside its range
        (e.g. `--option eot=0`, `rho=nan`)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        allowed = self.option_ranges.get(key)
        if isinstance(value, int):
            allowed = allowed or Range(1)
            if not allowed.contains(value):
                raise InputError(f"option {key} of {self.name} must be an integer {allowed.describe()}, got {value}")
            return
        if not (allowed or Range()).contains(value):
            raise InputError(f"option {key} of {self.name} must be a finite number"
                             f"{(allowed or Range()).describe_bounds()}, got {value}")

    @property
    def options(self) -> tuple[str, ...]:
        """The attack's own keyword options (signature order), e.g. ('steps', 'step_size', ...)."""
        return tuple(p for p in self.parameters if p not in CALL_KEYWORDS)

    @property
    def iterative(self) -> bool:
        """Takes `steps` (the set summary counts them)."""
        return self.accepts("steps")

    def suffix(self, options: Mapping[str, Any]) -> str:
        """The name part after the eps for these options (see `name_suffix`)."""
        rule = self.name_suffix if self.name_suffix is not None else self.standard_suffix
        return rule(options)

    def standard_suffix(self, options: Mapping[str, Any]) -> str:
        """'-s<steps>', '-norand' (random start off where it is on by default), '-r<restarts>' (> 1),
        then '-<key><value>' for every other option given with a non-default value."""
        parts = []
        if "steps" in options:
            parts.append(f"-s{options['steps']}")
        if self.defaults.get("random_start") is True and options.get("random_start") is False:
            parts.append("-norand")
        if (options.get("restarts") or 1) > 1:
            parts.append(f"-r{options['restarts']}")
        for key in self.options:
            if key in ("steps", "step_size", "random_start", "restarts") or key not in options:
                continue
            value = options[key]
            if key in self.defaults and value == self.defaults[key]:
                continue
            label = key.replace("_", "")
            if isinstance(value, bool):
                parts.append(f"-{label}" if value else f"-no{label}")
            else:
                parts.append(f"-{label}{_format_value(value)}")
        return "".join(parts)

    def parse_option(self, key: str, text: str) -> Any:
        """An option's value from text ('4', '0.75', 'true', 'dlr'), typed like its default."""
        if key not in self.options:
            raise InputError(f"{self.name} does not take the option '{key}'"
                             + (f" (it takes {', '.join(self.options)})" if self.options else ""))
        default = self.defaults.get(key)
        text = str(text).strip()
        try:
            if isinstance(default, bool):
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(text)
                return lowered in ("true", "1", "yes", "on")
            if isinstance(default, int):
                return int(text)
            if isinstance(default, float):
                return float(text)
        except ValueError as exc:
            kind = type(default).__name__
            raise InputError(f"option {key} of {self.name} takes a value of type {kind}, got '{text}'") from exc
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                pass
        return text


ATTACKS: dict[str, AttackSpec] = {}
ALIASES: dict[str, str] = {}


def register_attack(spec: AttackSpec) -> AttackSpec:
    """Add `spec` to ATTACKS (its aliases to ALIASES); ValueError when a name is taken or the
    function lacks a keyword the stages pass."""
    taken = [key for key in (spec.name, *spec.aliases) if key in ATTACKS or key in ALIASES]
    if taken:
        raise ValueError(f"attack name {', '.join(taken)} is already registered")
    _check_declaration(spec)
    ATTACKS[spec.name] = spec
    for alias in spec.aliases:
        ALIASES[alias] = spec.name
    return spec


def _check_declaration(spec: AttackSpec) -> None:
    """ValueError unless the function takes eps, runtime (and generator when stochastic) and exactly
    the shared keywords `spec.keywords` declares, and every option range names an own option."""
    taken = set(inspect.signature(spec.function).parameters)
    required = (*REQUIRED_KEYWORDS, "eps", *(("generator",) if spec.stochastic else ()))
    missing = [key for key in required if key not in taken or key not in spec.parameters]
    if missing:
        raise ValueError(f"attack {spec.name}: its function must take {', '.join(missing)}")
    shared = tuple(key for key in STANDARD_KEYWORDS if key in taken)
    if set(spec.keywords) != set(shared):
        raise ValueError(f"attack {spec.name}: declare keywords={shared} (the shared keywords its function takes)")
    stray = sorted(set(spec.option_ranges) - set(spec.options))
    if stray:
        raise ValueError(f"attack {spec.name}: option_ranges names {', '.join(stray)}, not options of its function")


def unregister_attack(name: str) -> None:
    """Remove an attack and its aliases (tests that register a toy attack clean up with this)."""
    spec = ATTACKS.pop(name)
    for alias in spec.aliases:
        ALIASES.pop(alias, None)


def attack_names() -> list[str]:
    return sorted(ATTACKS)


def canonical_attack_name(name: str) -> str:
    """'PGD' -> 'pgd', 'i-fgsm' -> 'bim'; InputError for unknown names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ATTACKS:
        raise InputError(f"unknown attack '{name}': use one of {', '.join(attack_names())}")
    return key


def get_attack(name: str) -> AttackSpec:
    """The spec of `name` (any alias, any case); InputError for unknown names."""
    return ATTACKS[canonical_attack_name(name)]


def attack_parameters(name: str) -> list[str]:
    """Keyword parameters the attack accepts (besides model, images, labels): eps, its declared
    shared keywords, runtime, its own options."""
    return list(get_attack(name).parameters)


@dataclass
class Attack:
    """A configured attack: call it as `attack(model, images, labels, **overrides)`.

    `overrides` supplies per-call values such as `generator`, `targets` or `runtime`.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **overrides: Any) -> AttackResult:
        return ATTACKS[self.name].function(model, images, labels, **{**self.params, **overrides})


def build_attack(name: str, **params: Any) -> Attack:
    """Validate `params` against the attack's signature (eps is required) and return an Attack."""
    key = canonical_attack_name(name)
    allowed = set(attack_parameters(key))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputError(f"attack '{key}' does not take {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})")
    if "eps" not in params:
        raise InputError(f"attack '{key}' needs eps")
    return Attack(key, dict(params))


_UNIT_INTERVAL = Range(0.0, 1.0, low_open=True)  # a fraction in (0, 1]

_BUILT_IN = (
    AttackSpec("fgsm", fgsm, multi_eps=fgsm_multi, report_label="FGSM", description="one signed-gradient step"),
    AttackSpec("bim", bim, aliases=("i-fgsm", "ifgsm"), default_step_size=default_iterative_step_size,
               report_label="BIM", description="iterative FGSM from the clean image"),
    AttackSpec("pgd", pgd, default_step_size=default_pgd_step_size, stochastic=True, report_label="PGD",
               description="projected gradient descent with random start and restarts"),
    AttackSpec("mifgsm", mifgsm, aliases=("mi-fgsm",), default_step_size=default_iterative_step_size,
               report_label="MI-FGSM", option_ranges={"decay": Range(0.0)}, description="momentum iterative FGSM"),
    AttackSpec("apgd", apgd, aliases=("auto-pgd", "apgd-ce"), stochastic=True, losses=("ce", "dlr"),
               report_label="APGD", option_ranges={"rho": _UNIT_INTERVAL},
               description="Auto-PGD (Croce & Hein 2020): step-size schedule, momentum, CE or DLR loss"),
    AttackSpec("apgd-t", apgd_t, aliases=("apgd_t", "apgdt"), stochastic=True,
               keywords=("label_mode", "generator", "eval_mode", "check_success"), report_label="APGD-T",
               option_ranges={"rho": _UNIT_INTERVAL},
               description="targeted APGD with the targeted DLR loss over the top-k other classes"),
    AttackSpec("square", square, stochastic=True, gradient_free=True,
               keywords=("targeted", "targets", "label_mode", "generator", "eval_mode", "check_success"),
               report_label="Square", option_ranges={"p_init": _UNIT_INTERVAL},
               description="Square Attack (Andriushchenko et al. 2020): score-based random search, no gradient"),
)
for _spec in _BUILT_IN:
    register_attack(_spec)

# FAB (issue 20), kept as its own block: AutoAttack's 'fab-t' (standard suite) and 'fab' (plus suite).
_FAB_KEYWORDS = ("label_mode", "generator", "eval_mode", "check_success")
# alpha_max bounds the step towards the original point, eta >= 1 overshoots, beta in (0, 1] the backward step.
_FAB_RANGES = {"alpha_max": _UNIT_INTERVAL, "eta": Range(1.0), "beta": _UNIT_INTERVAL}
_FAB = (
    AttackSpec("fab-t", fab_t, aliases=("fab_t", "fabt"), stochastic=True, keywords=_FAB_KEYWORDS,
               report_label="FAB-T", option_ranges=_FAB_RANGES,
               description="targeted FAB (Croce & Hein 2020): minimal L-inf adversarial per target, kept if inside eps"),
    AttackSpec("fab", fab, stochastic=True, keywords=_FAB_KEYWORDS, report_label="FAB",
               option_ranges=_FAB_RANGES,
               description="untargeted FAB (Croce & Hein 2020): minimal L-inf adversarial, kept if inside eps"),
)
for _spec in _FAB:
    register_attack(_spec)
