"""Checkpoints rebuilt into modules: `load_model` and the table of builders, one per kind.

A builder turns a validated checkpoint (core.io.checkpoint_record.Checkpoint) into an nn.Module:

    builder(checkpoint, context: BuildContext) -> nn.Module

`BuildContext` carries the workspace (to resolve referenced checkpoints), the device, and
`load`, the function that loads another checkpoint: composite kinds (a denoiser's target
classifier, an ensemble's members) call `context.load(path)` instead of importing this module,
which keeps the import graph free of circles. A new kind is one builder function plus one entry
in `KIND_BUILDERS`.

A classifier config is {"arch", "num_classes", "image_size"} plus optionally
"defense": {"name": "random-resize-pad", "variant": ..., "passes": ...}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError, MissingArtefactError
from defendr_cli.core.io.checkpoint import check_complete, read_checkpoint_and_fingerprint
from defendr_cli.core.io.checkpoint_record import Checkpoint, DataRecord
from defendr_cli.core.models.defenses import wrap_defense
from defendr_cli.core.models.denoised import build_denoised
from defendr_cli.core.models.ensemble import build_ensemble
from defendr_cli.core.models.finite import guard_finite_logits
from defendr_cli.core.models.imported import build_imported
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.workspace import Workspace


@dataclass
class LoadedModel:
    """A checkpoint rebuilt into a module (eval mode, on the requested device)."""

    name: str
    path: Path
    fingerprint: str
    kind: str
    module: nn.Module
    checkpoint: Checkpoint


@dataclass
class BuildContext:
    """What a kind builder may use: the workspace (None: paths only), the device, and `load`,
    which loads another checkpoint by name or path on the same device (through `memo` when given)."""

    workspace: Workspace | None
    device: torch.device
    memo: dict[Path, "LoadedModel"] | None = None

    def load(self, ref: str | Path) -> "LoadedModel":
        return load_model(self.workspace, ref, device=self.device, memo=self.memo)


def build_classifier_from_checkpoint(checkpoint: Checkpoint, context: BuildContext) -> nn.Module:
    """Kind 'classifier': build_classifier(config) + state_dict (+ the config's optional defense)."""
    config = checkpoint.config
    try:
        module = build_classifier(config["arch"], int(config["num_classes"]))
    except (KeyError, InputError) as exc:
        raise CorruptArtefactError(f"checkpoint '{checkpoint.name}' has an unusable config {config!r}") from exc
    try:
        module.load_state_dict(checkpoint.state_dict)
    except (KeyError, RuntimeError) as exc:
        raise CorruptArtefactError(f"checkpoint '{checkpoint.name}': weights do not fit {config['arch']}: "
                                   f"{str(exc).splitlines()[0]}") from exc
    defense = config.get("defense")
    if defense and defense.get("name", "none") != "none":
        module = wrap_defense(module, defense, int(config["image_size"]))
    return module.to(context.device)


def build_randomized(checkpoint: Checkpoint, context: BuildContext) -> nn.Module:
    """Kind 'randomized': a classifier checkpoint whose config carries a 'defense' spec."""
    if not checkpoint.config.get("defense"):
        raise CorruptArtefactError(f"randomized checkpoint '{checkpoint.name}' has no config['defense']")
    return build_classifier_from_checkpoint(checkpoint, context)


KindBuilder = Callable[[Checkpoint, BuildContext], nn.Module]
KIND_BUILDERS: dict[str, KindBuilder] = {
    "classifier": build_classifier_from_checkpoint,
    "randomized": build_randomized,
    "denoised": build_denoised,
    "ensemble": build_ensemble,
    "imported": build_imported,
}


def kind_builder(kind: str) -> KindBuilder:
    """The builder of `kind`; CorruptArtefactError for a kind this version does not know."""
    if kind not in KIND_BUILDERS:
        raise CorruptArtefactError(f"unknown checkpoint kind '{kind}' (known: {', '.join(sorted(KIND_BUILDERS))})")
    return KIND_BUILDERS[kind]


def model_hint(ref: str) -> str:
    """The commands that make a model called `ref` (used in missing-model errors)."""
    return f"defendr train {ref} (or defendr train METHOD --name {ref})"


def load_model(workspace: Workspace | None, ref: str | Path, device: torch.device = torch.device("cpu"), *,
               memo: dict[Path, LoadedModel] | None = None) -> LoadedModel:
    """Resolve `ref` (name in models/ or a path), read, rebuild and return the model in eval mode.

    memo: loaded models by checkpoint path, shared by one evaluation so that a model named several
    times (alone, wrapped by a defense, as an ensemble member or a denoiser's classifier) is read and
    built once; the returned module is then shared, so callers must not change it in place."""
    if workspace is None:
        path = Path(ref)
        if not path.is_file():
            raise MissingArtefactError(f"no checkpoint at {path}", hint=f"make it with: {model_hint(str(ref))}")
    else:
        path = workspace.resolve("model", ref, hint=model_hint(str(ref)))
    if memo is not None and path.resolve() in memo:
        return memo[path.resolve()]
    checkpoint, fingerprint = read_checkpoint_and_fingerprint(path)  # one read: the hash is of what was loaded
    check_complete(checkpoint, str(path))
    try:
        module = kind_builder(checkpoint.kind)(checkpoint, BuildContext(workspace, device, memo))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        # a payload of the right keys but odd contents (a config value of the wrong type, a tensor of
        # the wrong shape) fails deep inside a builder: at this artefact boundary that is "corrupt"
        raise CorruptArtefactError(f"checkpoint {path} cannot be rebuilt: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    module = guard_finite_logits(module.to(device).eval(), checkpoint.name)
    loaded = LoadedModel(checkpoint.name, path, fingerprint, checkpoint.kind, module, checkpoint)
    if memo is not None:
        memo[path.resolve()] = loaded
    return loaded


def check_matches_cache(data: DataRecord, name: str, class_ids: list[str], image_size: int, *,
                        cache_name: str = "the cache") -> None:
    """MismatchError when the model `name`, made for `data`, was trained on other classes or
    another image size."""
    own_ids = list(data.class_ids or [])
    if own_ids and own_ids != list(class_ids):
        detail = f"{len(own_ids)} vs {len(class_ids)} classes" if len(own_ids) != len(class_ids) \
            else "same count, different classes or order"
        raise MismatchError(f"model '{name}' was trained on other classes than {cache_name} ({detail})")
    own_size = data.image_size
    if own_size is not None and int(own_size) != int(image_size):
        raise MismatchError(f"model '{name}' was trained on {own_size}px images, {cache_name} has {image_size}px")


def check_checkpoint_against_cache(checkpoint: Checkpoint, cache_info: Any, *, name: str | None = None) -> None:
    """check_matches_cache with a core.io.reader CacheInfo (class_ids, image_size, path); `name`:
    the model's name in messages (default the checkpoint's)."""
    check_matches_cache(checkpoint.data, name or checkpoint.name, list(cache_info.class_ids),
                        int(cache_info.image_size), cache_name=f"cache '{Path(cache_info.path).stem}'")
