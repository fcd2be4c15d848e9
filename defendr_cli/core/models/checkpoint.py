"""Model checkpoints: a self-describing dict saved with torch.save, read with weights_only=True.

Payload (DESIGN.md §3, docs/architecture.md):
    format "defendr-checkpoint", version, kind ("classifier", "denoised", "ensemble", ...), name,
    summary (one line for `defendr ls`), method, config (rebuilds the module with no CLI flags),
    state_dict, data {name, fingerprint, class_ids, class_names, image_size}, hparams,
    history (per-epoch dicts), best, provenance {seed, software_version, created,
    parents: [{role, name, fingerprint}]}.

Only tensors, numbers, strings, lists, dicts, bools and None may appear (weights_only loading
never unpickles code). Each kind has a builder registered with `register_kind(kind, builder)`,
`builder(payload, workspace=, device=) -> nn.Module`; this module registers "classifier".
A classifier config is {"arch", "num_classes", "image_size"} plus optionally
"defense": {"name": "random-resize-pad", "variant": ..., "passes": ...}.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError, MissingArtefactError
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.workspace import Workspace

CHECKPOINT_FORMAT = "defendr-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "kind", "name", "config")
TRAINING_METHODS = ("baseline", "adv", "alp", "clp", "lsq", "dunet")

KindBuilder = Callable[..., nn.Module]
_KIND_BUILDERS: dict[str, KindBuilder] = {}
# Modules that register kinds of other parts of the package; imported on first need.
_KIND_MODULES = ("defendr_cli.core.models.denoised", "defendr_cli.core.models.ensemble",
                 "defendr_cli.core.models.defenses", "defendr_cli.core.models.imported")


def register_kind(kind: str, builder: KindBuilder) -> None:
    """Register `builder(payload, workspace=Workspace|None, device=torch.device) -> nn.Module`."""
    _KIND_BUILDERS[kind] = builder


def kind_builder(kind: str) -> KindBuilder:
    if kind not in _KIND_BUILDERS:
        for module_name in _KIND_MODULES:
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
    if kind not in _KIND_BUILDERS:
        raise CorruptArtefactError(f"unknown checkpoint kind '{kind}' (known: {', '.join(sorted(_KIND_BUILDERS))})")
    return _KIND_BUILDERS[kind]


def save_checkpoint(path: Path | str, payload: dict[str, Any], force: bool = True) -> Path:
    """Write `payload` atomically to `path` (temporary file renamed when complete)."""
    _validate(payload, str(path))
    with atomic_path(Path(path), force=force) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with torch.load(weights_only=True) on the CPU and validate format and version."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtefactError(f"no checkpoint at {path}", hint="make it with: defendr train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/EOF errors of many kinds all mean "unreadable"
        raise CorruptArtefactError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    _validate(payload, str(path))
    return payload


def _validate(payload: Any, where: str) -> None:
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CorruptArtefactError(f"{where} is not a defendr checkpoint (format '{CHECKPOINT_FORMAT}')")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CorruptArtefactError(f"checkpoint {where} lacks {', '.join(missing)}")
    version = payload["version"]
    if not isinstance(version, int) or version < 1 or version > CHECKPOINT_VERSION:
        raise CorruptArtefactError(
            f"checkpoint {where} has version {version!r}; this defendr reads versions 1..{CHECKPOINT_VERSION}"
        )


@dataclass
class LoadedModel:
    """A checkpoint rebuilt into a module (eval mode, on the requested device)."""

    name: str
    path: Path
    fingerprint: str
    kind: str
    module: nn.Module
    payload: dict[str, Any]


def model_hint(ref: str) -> str:
    """The command that makes a model called `ref` (used in missing-model errors)."""
    return f"defendr train {ref}" if ref in TRAINING_METHODS else "defendr train METHOD --name NAME"


def load_model(workspace: Workspace | None, ref: str | Path, device: torch.device = torch.device("cpu")) -> LoadedModel:
    """Resolve `ref` (name in models/ or a path), read, rebuild and return the model in eval mode."""
    if workspace is None:
        path = Path(ref)
        if not path.is_file():
            raise MissingArtefactError(f"no checkpoint at {path}", hint=f"make it with: {model_hint(str(ref))}")
    else:
        path = workspace.resolve("model", ref, hint=model_hint(str(ref)))
    payload = read_checkpoint(path)
    fingerprint = file_fingerprint(path)
    builder = kind_builder(payload["kind"])
    module = builder(payload, workspace=workspace, device=device)
    module = module.to(device).eval()
    return LoadedModel(payload["name"], path, fingerprint, payload["kind"], module, payload)


def build_classifier_from_payload(payload: dict[str, Any], *, workspace: Workspace | None = None,
                                  device: torch.device = torch.device("cpu")) -> nn.Module:
    """Builder of kind 'classifier': build_classifier(config) + state_dict (+ optional defense)."""
    from defendr_cli.core.models.registry import build_classifier

    config = payload["config"]
    try:
        module = build_classifier(config["arch"], int(config["num_classes"]))
    except (KeyError, InputError) as exc:
        raise CorruptArtefactError(f"checkpoint '{payload['name']}' has an unusable config {config!r}") from exc
    try:
        module.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise CorruptArtefactError(f"checkpoint '{payload['name']}': weights do not fit {config['arch']}: "
                                   f"{str(exc).splitlines()[0]}") from exc
    defense = config.get("defense")
    if defense and defense.get("name", "none") != "none":
        from defendr_cli.core.models.defenses import wrap_defense

        module = wrap_defense(module, defense, int(config["image_size"]))
    return module.to(device)


register_kind("classifier", build_classifier_from_payload)


def check_matches_cache(payload: dict[str, Any], class_ids: list[str], image_size: int, *, cache_name: str = "the cache") -> None:
    """MismatchError when a checkpoint was trained on other classes or another image size."""
    data = payload.get("data") or {}
    name = payload.get("name", "?")
    own_ids = list(data.get("class_ids") or [])
    if own_ids and own_ids != list(class_ids):
        detail = f"{len(own_ids)} vs {len(class_ids)} classes" if len(own_ids) != len(class_ids) \
            else "same count, different classes or order"
        raise MismatchError(f"model '{name}' was trained on other classes than {cache_name} ({detail})")
    own_size = data.get("image_size")
    if own_size is not None and int(own_size) != int(image_size):
        raise MismatchError(f"model '{name}' was trained on {own_size}px images, {cache_name} has {image_size}px")


def check_checkpoint_against_cache(payload: dict[str, Any], cache_info: Any) -> None:
    """check_matches_cache with a core.data CacheInfo (class_ids, image_size, path)."""
    check_matches_cache(payload, list(cache_info.class_ids), int(cache_info.image_size),
                        cache_name=f"cache '{Path(cache_info.path).stem}'")
