"""Inference-time defenses that wrap any classifier, chosen by a small JSON-able spec.

A spec is a dict stored in a checkpoint's `config["defense"]` or built from CLI flags:

    {"name": "random-resize-pad", "variant": "paper" | "competition", "passes": int}

`wrap_defense(module, spec, image_size)` returns the wrapped nn.Module (pixels in [0, 1] ->
logits, or log-probabilities when the defense averages several passes). `defense_spec(...)`
builds and validates a spec from user input (e.g. `--defense random-resize-pad --variant
competition --passes 30`). `describe_defense(spec)` is a one-line text for summaries.

Checkpoint kind "randomized" (core.models.loading) is a classifier payload whose config carries
a "defense" spec; the classifier builder wraps it with `wrap_defense`.
"""

from __future__ import annotations

from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.models.randomization import VARIANTS, RandomResizePad

DEFENSE_NAMES = ("random-resize-pad",)


def defense_spec(name: str, variant: str = "paper", passes: int | None = None) -> dict:
    """A validated spec; `passes` defaults to the variant's (paper 1, competition 30)."""
    if name not in DEFENSE_NAMES:
        raise InputError(f"unknown defense '{name}': use one of {', '.join(DEFENSE_NAMES)}")
    if variant not in VARIANTS:
        raise InputError(f"unknown randomization variant '{variant}': use one of {', '.join(VARIANTS)}")
    passes = VARIANTS[variant].default_passes if passes is None else int(passes)
    if passes < 1:
        raise InputError(f"--passes must be at least 1, got {passes}")
    return {"name": name, "variant": variant, "passes": passes}


def wrap_defense(module: nn.Module, spec: dict, image_size: int) -> nn.Module:
    """`module` wrapped by the defense `spec` (validated) for inputs of `image_size` pixels."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise InputError(f"a defense spec must be a dict with a 'name', got {spec!r}")
    checked = defense_spec(spec["name"], spec.get("variant", "paper"), spec.get("passes"))
    return RandomResizePad(module, image_size, variant=checked["variant"], passes=checked["passes"])


def describe_defense(spec: dict | None) -> str:
    """'random-resize-pad (competition, 30 passes)' or 'none'."""
    if not spec:
        return "none"
    passes = spec.get("passes", 1)
    return f"{spec['name']} ({spec.get('variant', 'paper')}, {passes} pass{'es' if passes != 1 else ''})"
