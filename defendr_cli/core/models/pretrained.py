"""Pretrained backbone weights: a local torchvision state-dict file, or the torchvision weights API.

`--pretrained PATH` loads a torchvision ResNet state dict (e.g. `resnet18-f37072fd.pth`) into the
backbone; the 1000-class ImageNet head is dropped when its shape differs from ours, so the head
stays freshly initialised and sized to the cache's classes. `--pretrained imagenet` asks torchvision
for its default ImageNet weights (from the local torch hub cache, or downloaded when online); when
neither works the error names, in one line, the exact file to download, where to put it and how
to run without it. `frozen_random_backbone_warning` says what freezing a randomly initialised
backbone does (the training recipes pass it on as a note).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model_weights

from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError, MissingArtefactError, SourceError
from defendr_cli.core.io.zip_entries import check_zip_container, read_regular_file
from defendr_cli.core.models.finite import require_finite_tensors
from defendr_cli.core.models.weights_file import key_mismatch_text

HEAD_PREFIX = "fc."
WITHOUT_WEIGHTS = ("to run without them: --set model.pretrained=null --set model.freeze_backbone=false "
                   "(defendr reproduce), or leave out --pretrained and --freeze-backbone (defendr train)")


def frozen_random_backbone_warning(arch: str, pretrained: str | os.PathLike | None,
                                   freeze_backbone: bool) -> str | None:
    """The warning for freezing a backbone that no weights file initialised, else None."""
    if not freeze_backbone or pretrained:
        return None
    return (f"warning: {arch} has no pretrained weights and its backbone is frozen: only its last stage and "
            "head will train, on features of randomly initialised layers that never learn (expect low "
            "accuracy); give pretrained weights, or train the whole network without freezing it")


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MissingArtefactError(f"no pretrained weights file at {path}",
                                   hint="pass a torchvision state-dict .pth file or 'imagenet'")
    data = read_regular_file(path, "pretrained weights")  # one read; its zip checked before torch inflates it
    check_zip_container(data, "pretrained weights", path)
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise CorruptArtefactError(f"cannot read pretrained weights {path}: {exc}") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CorruptArtefactError(f"{path} is not a state dict of tensors")
    require_finite_tensors(loaded, f"pretrained weights {path}")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def load_backbone_weights(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `net` (a torchvision-style model with an `fc` head).

    Head tensors whose shape differs from ours are skipped (our head keeps its own size); any other
    missing or unexpected key is a MismatchError naming a few of them.
    """
    own = net.state_dict()
    usable = {k: v for k, v in state.items()
              if not (k.startswith(HEAD_PREFIX) and k in own and own[k].shape != v.shape)}
    for key, value in usable.items():
        if key in own and own[key].shape != value.shape:
            raise MismatchError(f"pretrained weights {source}: '{key}' has shape {tuple(value.shape)}, "
                                f"the model expects {tuple(own[key].shape)} (wrong architecture?)")
    missing, unexpected = net.load_state_dict(usable, strict=False)
    missing = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if missing or unexpected:
        raise MismatchError(f"pretrained weights {source} do not fit this architecture: "
                            f"{key_mismatch_text(missing, unexpected)}")


def imagenet_weights_location(arch: str) -> tuple[str, Path]:
    """(download URL, torch hub cache path) of torchvision's default ImageNet weights for `arch`."""
    try:
        weights = get_model_weights(arch).DEFAULT
    except ValueError as exc:
        raise InputError(f"torchvision has no ImageNet weights for '{arch}'") from exc
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def missing_weights_line(arch: str) -> str:
    """One line: where to put torchvision's `arch` ImageNet file, and how to run without it."""
    url, cached = imagenet_weights_location(arch)
    return (f"ImageNet weights for {arch}: download {url} to {cached} (or pass the file as --pretrained PATH / "
            f"--set model.pretrained=PATH); {WITHOUT_WEIGHTS}")


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights for `arch`, from the hub cache or downloaded.

    Offline without the cached file: SourceError with `missing_weights_line` (one line).
    """
    url, cached = imagenet_weights_location(arch)
    if cached.is_file():
        return _state_dict_from_file(cached)
    try:
        return get_model_weights(arch).DEFAULT.get_state_dict(progress=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "could not fetch"
        raise SourceError(f"cannot download {url} ({type(exc).__name__}); {missing_weights_line(arch)}") from exc


def load_pretrained(net: nn.Module, arch: str, pretrained: str | os.PathLike) -> None:
    """Fill `net` (torchvision-style, `fc` head) from 'imagenet' or a local state-dict file."""
    if str(pretrained) == "imagenet":
        load_backbone_weights(net, imagenet_state_dict(arch), f"imagenet ({arch})")
        return
    path = Path(pretrained).expanduser()
    load_backbone_weights(net, _state_dict_from_file(path), str(path))
