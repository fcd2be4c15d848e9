"""The labels and names of adversarial sets, made here and nowhere else, and never parsed back.

A set's *label* says which attack made it with which settings: `<attack>-eps<eps>[n]<suffix>`,
where `n` marks eps given in normalized space and the suffix is the attack's own
(`AttackSpec.suffix`: '-s10', '-r2', '-eot4', ...) followed by the run's: '-trand'/'-tll'
(targeted), '-pred' (predicted labels), '-<loss>' (a loss other than ce). Its *name* is
`<label>-<source model>-<split>` (core/workspace.py formats both). The `attack` stage names the
sets it writes with `attack_set_label`; reports label a set with `label_of_set`, from the
attributes the set stores, so both agree for every registered attack (e.g. 'apgd-t-eps8_255-s100').
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from defendr_cli.core.attacks.registry import ATTACKS, ALIASES, AttackSpec, get_attack
from defendr_cli.core.io.adversarial import AdvSetInfo
from defendr_cli.core.workspace import adv_set_label, labelled_set_name

# the options the stage records under their own attribute names (AdvSetInfo fields)
_STANDARD_OPTIONS = ("steps", "random_start", "restarts")


def attack_set_label(attack: str | AttackSpec, eps_label: str, *, eps_space: str = "pixel", options: Mapping[str, Any] | None = None,
                     targeted: str = "none", label_mode: str = "true", loss: str = "ce") -> str:
    """The label of the sets `attack` (a registered name or its resolved spec) makes at eps
    `eps_label` (as given, e.g. '8/255') with `options` (the attack's own options as the stage
    passes them: steps, restarts, eot, ...).

    Example: attack_set_label('pgd', '8/255', options={'steps': 10}) == 'pgd-eps8_255-s10'.
    """
    spec = attack if isinstance(attack, AttackSpec) else get_attack(attack)
    extra = spec.suffix(options or {})
    if targeted != "none":
        extra += "-tll" if targeted == "least-likely" else "-trand"
    if label_mode == "predicted":
        extra += "-pred"
    if loss != "ce":
        extra += f"-{loss}"
    return adv_set_label(spec.name, eps_label, eps_space=eps_space, extra=extra)


def _stored_options(info: AdvSetInfo) -> dict[str, Any]:
    """The attack's own options as the set records them (standard ones as AdvSetInfo fields,
    the others under their own names), absent ones left out."""
    spec = get_attack(info.attack)
    stored = {**info.extra, **{key: getattr(info, key) for key in _STANDARD_OPTIONS}}
    return {key: stored[key] for key in spec.options if key != "step_size" and stored.get(key) is not None}


def label_of_set(info: AdvSetInfo) -> str | None:
    """The label of a stored set, from its attributes (attack, eps label, eps space, options,
    targeted, label mode, loss); None when its attack is not registered in this build."""
    if info.attack not in ATTACKS and info.attack not in ALIASES:
        return None
    return attack_set_label(info.attack, info.eps_label, eps_space=info.eps_space, options=_stored_options(info),
                            targeted=info.targeted, label_mode=info.label_mode, loss=info.loss)


def sibling_set_name(info: AdvSetInfo, split: str) -> str | None:
    """The name the same attack settings give the set of another split (a train set's val twin);
    None when the set's attack is not registered in this build."""
    label = label_of_set(info)
    return None if label is None else labelled_set_name(label, info.source_model, split)
