"""Reproduction profiles: settings as data (JSON files shipped in defendr_cli/profiles/).

A profile is a nested dict. `--set key.sub=value` overrides any leaf; the value is parsed as JSON
when it can be (numbers, lists, true/false/null), else kept as a string. The resolved settings are
written into the report so a run can be repeated exactly.
"""

from __future__ import annotations

import copy
import json
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
        node[leaf] = value
    return result


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
