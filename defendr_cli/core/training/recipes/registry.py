"""The table of training methods: name -> RecipeSpec (core/training/recipes/base.py).

    get_recipe("alp")                         the RecipeSpec, or InputError naming the known methods
    recipe_names()                            every registered method, in table order
    register_recipe(spec) / unregister_recipe(name)
    train_options("alp", {"pair_weight": 0.3, "epochs": 2}, where="...")   strict: unknown key -> InputError
    options_from_dict(flat)                   lenient rebuild of TrainOptions.to_dict() (checkpoints, resume)
    build_recipe(options, context)            spec.factory(options, context) with the method's options filled in

To add a method: write recipes/<name>.py with its MethodOptions dataclass, its Recipe and a
module-level SPEC, then add the module to BUILTIN_RECIPES below.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from defendr_cli.core.errors import InputError
from defendr_cli.core.training.options import SHARED_FIELDS, TrainOptions
from defendr_cli.core.training.recipes import adv, alp, baseline, clp, dunet, lsq
from defendr_cli.core.training.recipes.base import Recipe, RecipeSpec, TrainContext

BUILTIN_RECIPES: tuple[RecipeSpec, ...] = (baseline.SPEC, adv.SPEC, alp.SPEC, clp.SPEC, lsq.SPEC, dunet.SPEC)
RESERVED_NAMES = frozenset({"ctx", "device", "precision", "as_json", "method_options"})

RECIPES: dict[str, RecipeSpec] = {spec.name: spec for spec in BUILTIN_RECIPES}


def register_recipe(spec: RecipeSpec) -> None:
    """Make `defendr train NAME` and profile `methods.NAME` use `spec` (replacing one of that name)."""
    clash = sorted((set(SHARED_FIELDS) | RESERVED_NAMES) & {f.name for f in fields(spec.options_class)})
    if clash:
        raise ValueError(f"options of recipe '{spec.name}' reuse shared or reserved names: {', '.join(clash)}")
    RECIPES[spec.name] = spec


def unregister_recipe(name: str) -> None:
    RECIPES.pop(name, None)


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> RecipeSpec:
    if name not in RECIPES:
        raise InputError(f"unknown training method '{name}': use one of {', '.join(RECIPES)}")
    return RECIPES[name]


def method_option_names(name: str) -> list[str]:
    """The option names `name` takes besides the shared ones (e.g. ['pair_weight'] for clp)."""
    return [f.name for f in fields(get_recipe(name).options_class)]


def train_options(method: str, values: dict[str, Any], *, where: str = "") -> TrainOptions:
    """TrainOptions of `method` from flat values (shared and method fields side by side).

    A key that is neither a shared field nor one of the method's options raises InputError naming
    the method and its allowed options (`where` says where the values came from, e.g.
    'profile methods.alp'). The result is validated.
    """
    own = set(method_option_names(method))
    unknown = sorted(set(values) - own - set(SHARED_FIELDS))
    if unknown:
        prefix = f"{where}: " if where else ""
        shared = ", ".join(f for f in SHARED_FIELDS if f != "method")
        raise InputError(f"{prefix}method '{method}' does not take {', '.join(unknown)} "
                         f"(its own options: {', '.join(sorted(own)) or 'none'}; shared: {shared})")
    return _split(method, values).validate()


def options_from_dict(values: dict[str, Any]) -> TrainOptions:
    """Rebuild TrainOptions from `TrainOptions.to_dict()` (keys the method does not know are ignored)."""
    return _split(str(values.get("method", "baseline")), values)


def _split(method: str, values: dict[str, Any]) -> TrainOptions:
    """TrainOptions(method, shared values, the method's options class of its values); other keys dropped."""
    options_class = get_recipe(method).options_class
    own = set(method_option_names(method))
    shared = {k: v for k, v in values.items() if k in SHARED_FIELDS and k != "method"}
    return TrainOptions(method=method, method_options=options_class(**{k: v for k, v in values.items() if k in own}),
                        **shared)


def with_method_options(options: TrainOptions) -> TrainOptions:
    """`options` with method_options filled in (the method's defaults when None); InputError when
    they are not the method's options class."""
    spec = get_recipe(options.method)
    if options.method_options is None:
        return replace(options, method_options=spec.options_class())
    if not isinstance(options.method_options, spec.options_class):
        raise InputError(f"method '{options.method}' needs {spec.options_class.__name__}, "
                         f"got {type(options.method_options).__name__}")
    return options


def build_recipe(options: TrainOptions, context: TrainContext) -> Recipe:
    """The method's Recipe for a run (options resolved: arch, epochs and batch size set)."""
    return get_recipe(options.method).factory(with_method_options(options), context)
