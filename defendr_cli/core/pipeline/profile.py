"""Reproduction profiles: settings as data (JSON files shipped in defendr_cli/profiles/).

A profile is a nested dict. `--set key.sub=value` overrides any leaf; the value is parsed as JSON
when it can be (numbers, lists, true/false/null), else kept as a string, and must have the type of
the value it replaces (`typed_override`): an integer for an integer, a finite number for a number,
true/false for a flag, text for text (given as is), a list for a list; NaN and Infinity are refused
everywhere. So `--set train.epochs=abc` fails in one line before any stage runs. The resolved
settings are written into the report so a run can be repeated exactly.
"""

from __future__ import annotations

import copy
import json
import math
from importlib import resources
from typing import Any

from defendr_cli.core.errors import InputError

PROFILE_PACKAGE = "defendr_cli.profiles"


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package (file stems)."""
    folder = resources.files(PROFILE_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(name: str) -> dict[str, Any]:
    """The settings of profile `name` ('quick', 'paper'); InputError for an unknown name."""
    names = available_profiles()
    if name not in names:
        raise InputError(f"unknown profile '{name}': choose one of {', '.join(names)}")
    text = resources.files(PROFILE_PACKAGE).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3). Values are JSON when they parse, else strings."""
    if "=" not in text:
        raise InputError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise InputError(f"--set has an empty key in '{text}'")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path, value


def apply_overrides(settings: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `settings` with every `key.sub=value` applied; unknown keys are an InputError.

    Only existing keys can be set, so a typo ('trian.epochs') fails loudly instead of being ignored.
    """
    result = copy.deepcopy(settings)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"--set {text}: unknown setting '{'.'.join(path[: depth + 1])}'")
            node = node[part]
        leaf = path[-1]
        if not isinstance(node, dict) or leaf not in node:
            raise InputError(f"--set {text}: unknown setting '{'.'.join(path)}'")
        node[leaf] = typed_override(text, node[leaf], value)
    return result


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


# settings whose "none" is null: no weights file, the whole test split, the suite's own budget
NULLABLE_KEYS = frozenset({"model.pretrained", "evaluate.subset", "evaluate.square_queries", "evaluate.eot",
                           "evaluate.adaptive_models"})


def typed_override(text: str, current: Any, value: Any) -> Any:
    """`value` (parsed from `--set text`) checked against the type of the profile's `current` value;
    InputError naming the setting and the type it needs (see the module docstring)."""
    key, raw = text.split("=", 1)
    if _has_non_finite(value):
        raise InputError(f"--set {text}: NaN and Infinity are not allowed")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if current is None or (value is None and key.strip() in NULLABLE_KEYS):
        return value
    if isinstance(current, bool):
        ok, need = isinstance(value, bool), "true or false"
    elif isinstance(current, int):
        ok, need = is_number and isinstance(value, int), "a whole number"
    elif isinstance(current, float):
        ok, need, value = is_number, "a number", float(value) if is_number else value
    elif isinstance(current, str):  # '--set data.split=100' is the text '100', not the number
        ok, need = value is not None and not isinstance(value, (list, dict)), "text"
        value = value if isinstance(value, str) else raw.strip()
    elif isinstance(current, list):
        ok, need = isinstance(value, list), "a JSON list such as [5, 10]"
    else:
        ok, need = isinstance(value, dict), "a JSON object"
    if not ok:
        raise InputError(f"--set {text}: {key.strip()} needs {need} (the profile has {json.dumps(current)})")
    return value


def resolve_settings(profile: str, overrides: list[str], **edge: Any) -> dict[str, Any]:
    """Profile + overrides + command-line edge values (source, device, precision when given)."""
    settings = apply_overrides(load_profile(profile), overrides)
    settings["profile"] = profile
    for key, value in edge.items():
        if value is not None:
            _set_edge(settings, key, value)
    return settings


def _set_edge(settings: dict[str, Any], key: str, value: Any) -> None:
    if key == "source":
        settings["data"]["source"] = str(value)
    else:
        settings[key] = value
