"""The `attack` stage's typed config and result, their validation against the attack's spec, and
the names and attributes of the sets a run writes.

Nothing here branches on attack names: which options an attack takes, its default step size and
how its sets are named come from its `AttackSpec` (core/attacks/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from defendr_cli import __version__
from defendr_cli.core.attacks.base import normalize_target_mode
from defendr_cli.core.attacks.eps import EPS_SPACES, EpsValue
from defendr_cli.core.attacks.registry import ATTACKS, AttackSpec, attack_names, get_attack
from defendr_cli.core.attacks.set_names import attack_set_label
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.adv_schema import AttackRunSettings
from defendr_cli.core.io.adversarial import STORAGE_DTYPES
from defendr_cli.core.io.cache import SPLITS
from defendr_cli.core.workspace import labelled_set_name

# The options with their own command-line flags (and their own AttackStageConfig fields).
FLAGS = {"steps": "--steps", "step_size": "--step-size", "random_start": "--random-start", "restarts": "--restarts"}
# Flag values that ask for nothing an attack without the option would do differently.
_NEUTRAL = {"random_start": lambda value: not value, "restarts": lambda value: (value or 1) <= 1}
_START_FLAGS = ("random_start", "restarts")


@dataclass(frozen=True, kw_only=True)
class AttackStageConfig(AttackRunSettings):
    """Everything `defendr attack` needs. eps values and step_size are in `eps_space` units.

    The run's settings are the AttackRunSettings fields; steps, step_size, random_start, restarts:
    None means the attack's default (and is required for an attack that does not take the
    option), step_size a single number. options: the attack's other keyword options
    (e.g. {'eot': 4}), values typed or as text ('4'), typed by `validate_config`. spec: the
    resolved attack, set by `validate_config` (the stage reads it instead of looking the name up).
    """

    attack: str
    eps: list[EpsValue]
    eps_space: str = "pixel"
    model: str = "baseline"
    data: str | None = None
    splits: list[str] = field(default_factory=lambda: ["test"])
    batch_size: int = 64
    dtype: str = "float16"
    resume: bool = False
    force: bool = False
    seed: int = 0
    preview: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    spec: AttackSpec | None = field(default=None, repr=False, compare=False)

    @property
    def attack_spec(self) -> AttackSpec:
        """The resolved attack of a validated config (`validate_config` sets it)."""
        if self.spec is None:
            raise ValueError("attack config not validated: call validate_config(config) first")
        return self.spec


@dataclass
class AttackSetResult:
    """One written (or already present) set. Accuracies and success rate are fractions in [0, 1]."""

    name: str
    path: Path
    split: str
    eps_label: str
    eps: float | list[float]
    count: int
    clean_accuracy: float
    adv_accuracy: float
    success_rate: float
    status: str  # 'written', 'resumed' or 'kept' (already complete, --resume)
    preview: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "split": self.split, "eps_label": self.eps_label,
                "eps": self.eps, "count": self.count, "clean_accuracy": self.clean_accuracy,
                "adv_accuracy": self.adv_accuracy, "success_rate": self.success_rate, "status": self.status,
                "preview": str(self.preview) if self.preview else None}


def parse_option_pairs(pairs: list[str]) -> dict[str, str]:
    """['eot=4', 'rho=0.75'] -> {'eot': '4', 'rho': '0.75'} (typed later by `validate_config`)."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not value.strip():
            raise InputError(f"cannot read option '{pair}': give NAME=VALUE, e.g. eot=4")
        if key in options:
            raise InputError(f"option {key} is given twice")
        options[key] = value.strip()
    return options


def validate_config(config: AttackStageConfig) -> AttackStageConfig:
    """Canonical attack name, defaults filled in, options the attack does not take rejected."""
    spec = get_attack(config.attack)
    if not config.eps:
        raise InputError("give at least one eps with --eps")
    if config.eps_space not in EPS_SPACES:
        raise InputError(f"unknown eps space '{config.eps_space}': use pixel or normalized")
    if config.label_mode not in ("true", "predicted"):
        raise InputError(f"unknown label mode '{config.label_mode}': use true or predicted")
    targeted = normalize_target_mode(config.targeted)
    if targeted == "given":
        raise InputError("the attack stage takes --targeted none, random or least-likely")
    if spec.accepts("loss") and config.loss not in spec.losses:
        raise InputError(f"unknown loss '{config.loss}': use one of {', '.join(spec.losses)}")
    if not spec.accepts("loss") and config.loss != "ce":
        raise InputError(f"{spec.name} optimises its own objective: it does not take --loss")
    if not spec.accepts("targeted") and targeted != "none":
        raise InputError(f"{spec.name} has no targeted mode: it does not take --targeted")
    if config.dtype not in STORAGE_DTYPES:
        raise InputError(f"unknown --dtype '{config.dtype}': use float16 or uint8")
    if config.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    splits = list(dict.fromkeys(config.splits))
    if not splits:
        raise InputError(f"--split names no split: give one or more of {', '.join(SPLITS)}, e.g. test or train,val,test")
    for split in splits:
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    given = {key: getattr(config, key) for key in FLAGS if getattr(config, key) is not None}
    _check_flags(spec, given)
    standard = {key: getattr(config, key) for key in FLAGS}
    for key in ("steps", "random_start", "restarts"):
        if key in spec.options and standard[key] is None:
            standard[key] = spec.defaults.get(key)
    if "steps" in spec.options and standard["steps"] < 1:
        raise InputError("--steps must be at least 1")
    if "restarts" in spec.options and standard["restarts"] < 1:
        raise InputError("--restarts must be at least 1")
    if config.step_size is not None and not config.step_size > 0:
        raise InputError("--step-size must be > 0")
    return replace(config, attack=spec.name, eps=list(config.eps), targeted=targeted, splits=splits,
                   options=_typed_options(spec, config.options), spec=spec, **standard)


def _check_flags(spec: AttackSpec, given: dict[str, Any]) -> None:
    """InputError for a flag the attack does not take (a neutral value is accepted where the attack
    has options of its own: --no-random-start or --restarts 1 for an attack without random start)."""
    rejected = [key for key in given if key not in spec.options]
    if rejected and not spec.options:
        raise InputError(f"{spec.name} is a single step: it does not take {', '.join(FLAGS[k] for k in rejected)}")
    rejected = [key for key in rejected if not (key in _NEUTRAL and _NEUTRAL[key](given[key]))]
    if not rejected:
        return
    if not spec.stochastic and all(key in _START_FLAGS for key in rejected):
        takers = [name for name in attack_names() if any(k in ATTACKS[name].options for k in _START_FLAGS)]
        raise InputError(f"{spec.name} starts at the clean image: --random-start and --restarts are for "
                         f"{', '.join(takers)}")
    raise InputError(f"{spec.name} does not take {', '.join(FLAGS[k] for k in rejected)}"
                     f" (it takes {', '.join(FLAGS.get(k, k) for k in spec.options)})")


def _typed_options(spec: AttackSpec, options: dict[str, Any]) -> dict[str, Any]:
    """The attack's other options typed like their defaults, those equal to the default dropped,
    in the order of the attack's signature."""
    typed: dict[str, Any] = {}
    for key, value in options.items():
        if key in FLAGS:
            raise InputError(f"give {key} with {FLAGS[key]}, not as an option")
        if isinstance(value, str) or key not in spec.options:  # parse_option rejects unknown keys
            typed[key] = spec.parse_option(key, str(value))
        else:
            typed[key] = value
    for key, value in typed.items():
        spec.check_option(key, value)
    return {key: typed[key] for key in spec.options
            if key in typed and not (key in spec.defaults and typed[key] == spec.defaults[key])}


def attack_options(config: AttackStageConfig) -> dict[str, Any]:
    """The keyword options a validated run passes to the attack function (all but step_size,
    which is per eps): steps, random_start and restarts where the attack takes them, then `options`."""
    spec = config.attack_spec
    standard = {key: getattr(config, key) for key in ("steps", "random_start", "restarts") if key in spec.options}
    return {**standard, **config.options}


def set_label(config: AttackStageConfig, eps: EpsValue) -> str:
    """The label of the set a validated run writes for `eps` (core/attacks/set_names.py):
    `<attack>-eps<eps>[n]<attack suffix><run suffix>`, the attack's suffix (`AttackSpec.suffix`,
    e.g. '-s10-r2'), then '-trand'/'-tll' (targeted), '-pred' (predicted labels) and '-<loss>'
    (a loss other than ce)."""
    return attack_set_label(config.attack_spec, eps.label, eps_space=config.eps_space, options=attack_options(config),
                            targeted=config.targeted, label_mode=config.label_mode, loss=config.loss)


def set_name(config: AttackStageConfig, eps: EpsValue, model_name: str, split: str) -> str:
    """`<label>-<model>-<split>`: the name of the set a validated run writes (see `set_label`)."""
    return labelled_set_name(set_label(config, eps), model_name, split)


@dataclass(frozen=True)
class PlannedSet:
    """One set a run will write (or keep): its name, label, split and eps label."""

    name: str
    label: str
    split: str
    eps_label: str


def planned_sets(config: AttackStageConfig, model_name: str) -> list[PlannedSet]:
    """The sets `run_attack(config)` writes when the model's name is `model_name`, split by split
    and eps by eps (its order); validates `config` first (InputError as `run_attack`)."""
    config = validate_config(config)
    return [PlannedSet(set_name(config, eps, model_name, split), set_label(config, eps), split, eps.label)
            for split in config.splits for eps in config.eps]


def as_attr(value: float | torch.Tensor) -> float | list[float]:
    """A pixel-unit eps or step size as an HDF5 attribute value: float, or a per-channel list."""
    return value.tolist() if isinstance(value, torch.Tensor) else float(value)


def recorded_step_size(config: AttackStageConfig, eps_pixel: float | torch.Tensor,
                       step_size: float | torch.Tensor | None) -> float | list[float] | None:
    """The step size used, in pixel units (the attack's default when not given); None for an
    attack without one."""
    spec = config.attack_spec
    if "step_size" not in spec.options:
        return None
    if step_size is None:
        if spec.default_step_size is None:
            return None
        step_size = spec.default_step_size(eps_pixel, config.steps)
    return as_attr(step_size)


def set_attributes(config: AttackStageConfig, eps: EpsValue, eps_pixel: float | torch.Tensor,
                   step_size: float | torch.Tensor | None, name: str, split: str, model_name: str,
                   model_fingerprint: str, cache_info: Any, precision: str) -> dict[str, Any]:
    """Attributes that determine a set's content (a partial file resumes only when they match);
    the attack's other options are recorded under their own names."""
    attrs = {
        "name": name, "attack": config.attack, "eps": as_attr(eps_pixel), "eps_label": eps.label,
        "eps_space": config.eps_space, "eps_given": eps.value, "steps": config.steps,
        "step_size": recorded_step_size(config, eps_pixel, step_size),
        "random_start": config.random_start, "restarts": config.restarts, "label_mode": config.label_mode,
        "targeted": config.targeted, "loss": config.loss, "seed": config.seed, "batch_size": config.batch_size,
        "precision": precision,
        "split": split, "source_model": model_name, "source_model_fingerprint": model_fingerprint,
        "clean_cache": cache_info.name, "clean_fingerprint": cache_info.fingerprint,
        "image_size": cache_info.image_size, "software_version": __version__,
    }
    clash = sorted(set(config.options) & set(attrs))
    if clash:
        raise ValueError(f"attack {config.attack}: option {', '.join(clash)} has the name of a set attribute")
    return {**attrs, **config.options}
