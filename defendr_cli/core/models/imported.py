"""Imported classifiers: a torchvision or timm architecture, or a torch.export program, as a Defendr model.

`ImportedClassifier`: pixels (N, 3, H, W) in [0, 1] -> Normalize(mean, std) (or nothing) -> the
imported network -> logits (N, K); with a class map (core.models.class_map) the logits are
restricted to the cache's classes in cache order, (N, C). `.last_conv_stage` is the Grad-CAM
layer, found by dotted path inside the network (InputError when the model has none).

Grad-CAM layer defaults (`default_cam_layer`): torchvision resnet/resnext/wide_resnet `layer4`;
densenet, vgg, alexnet, efficientnet, convnext, mobilenet, squeezenet `features`; regnet
`trunk_output`; mnasnet `layers`; shufflenet `conv5`; googlenet `inception5b`; inception_v3
`Mixed_7c`. timm: the last entry of the model's `feature_info` (e.g. `layer4`, `stages.3`).
Vision transformers (torchvision vit/swin/maxvit, timm vit/deit/...) have no (N, C, h, w) map:
no default; `--cam-layer` must name a layer whose output is a 4-D feature map (checked at import).
An exported program has no Python class: its layer is looked up by the same names in the
unflattened module (or given with --cam-layer); without one, Grad-CAM is unavailable.

Checkpoint kind "imported" (written by core.stages.import_model): config {"source":
"torchvision"|"timm"|"exported", "arch", "num_outputs", "normalize": {"name", "mean", "std"} or
None, "cam_layer", "class_map": ClassMap dict or None, "exported": {"file", "fingerprint"} or
None}; state_dict = the network's weights (empty for an exported program, whose weights live in
models/<file>.pt2, checked by fingerprint on load).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import torch
from torch import nn

from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError, MissingArtefactError
from defendr_cli.core.fingerprint import bytes_fingerprint
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.models.exported import exported_module, load_exported_bytes, read_exported_bytes
from defendr_cli.core.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from defendr_cli.core.workspace import Workspace

SOURCES = ("torchvision", "timm", "exported")
TIMM_INSTALL = 'timm is not installed: pip install "defendr-cli[timm]"'
_TORCHVISION_CAM = (("resnet", "layer4"), ("resnext", "layer4"), ("wide_resnet", "layer4"),
                    ("densenet", "features"), ("vgg", "features"), ("alexnet", "features"),
                    ("efficientnet", "features"), ("convnext", "features"), ("mobilenet", "features"),
                    ("squeezenet", "features"), ("regnet", "trunk_output"), ("mnasnet", "layers"),
                    ("shufflenet", "conv5"), ("googlenet", "inception5b"), ("inception", "Mixed_7c"))
_EXPORTED_CAM_NAMES = ("layer4", "features", "trunk_output", "stages", "layers", "conv5")


def find_layer(net: nn.Module, dotted: str) -> nn.Module:
    """The submodule at `dotted` ('layer4', 'features.7', 'blocks.11.norm1'); InputError if absent."""
    try:
        layer = net.get_submodule(dotted)
    except AttributeError as exc:
        top = ", ".join(name for name, _ in list(net.named_children())[:8])
        raise InputError(f"no layer '{dotted}' in the model (top-level modules: {top})") from exc
    return layer


class ImportedClassifier(nn.Module):
    """normalize -> net -> optional restriction to `class_index` (see module docstring)."""

    def __init__(self, net: nn.Module, *, normalize: dict | None, class_index: list[int] | None = None,
                 cam_layer: str | None = None, cam_note: str = "", frozen_mode: bool = False) -> None:
        super().__init__()
        self.normalize = Normalize(tuple(normalize["mean"]), tuple(normalize["std"])) if normalize else nn.Identity()
        self.net = net
        self.register_buffer("class_index", torch.tensor(class_index, dtype=torch.long) if class_index else None,
                             persistent=False)
        self.cam_layer = cam_layer
        self.cam_note = cam_note
        self.frozen_mode = frozen_mode  # an exported graph has its train/eval behaviour baked in

    @property
    def last_conv_stage(self) -> nn.Module:
        if not self.cam_layer:
            raise InputError(f"this imported model has no Grad-CAM layer ({self.cam_note or 'none found'}); "
                             f"import it again with --cam-layer dotted.module.path")
        return find_layer(self.net, self.cam_layer)

    @property
    def num_classes(self) -> int | None:
        return None if self.class_index is None else int(self.class_index.numel())

    def train(self, mode: bool = True) -> "ImportedClassifier":
        if not self.frozen_mode:
            return super().train(mode)
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.normalize(x))
        if self.class_index is not None:
            logits = logits.index_select(1, self.class_index)
        return logits


def normalization(spec: str) -> dict | None:
    """'imagenet' | 'none' | 'm1,m2,m3/s1,s2,s3' -> {"name", "mean", "std"} or None (no normalization)."""
    text = spec.strip().lower()
    if text == "none":
        return None
    if text == "imagenet":
        return {"name": "imagenet", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    try:
        mean_text, std_text = text.split("/")
        mean = [float(v) for v in mean_text.split(",")]
        std = [float(v) for v in std_text.split(",")]
    except ValueError as exc:
        raise InputError(f"--normalize '{spec}': use imagenet, none or m1,m2,m3/s1,s2,s3") from exc
    if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean + std) or not min(std) > 0:
        raise InputError(f"--normalize '{spec}': three finite means and three finite positive stds are needed")
    return {"name": "custom", "mean": mean, "std": std}


def import_timm():
    """The timm module, or InputError saying how to install it (an optional extra)."""
    try:
        return importlib.import_module("timm")  # optional heavy dependency: imported only when asked for
    except ImportError as exc:
        raise InputError(TIMM_INSTALL) from exc


def build_network(source: str, arch: str, num_classes: int | None = None) -> nn.Module:
    """A randomly initialised torchvision/timm network (default head size when num_classes is None)."""
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": int(num_classes)}
    if source == "torchvision":
        import torchvision.models as tvm

        try:
            return tvm.get_model(arch, weights=None, **kwargs)
        except ValueError as exc:
            names = tvm.list_models(module=tvm)
            close = [n for n in names if n.startswith(arch[:3])][:6] or names[:6]
            raise InputError(f"unknown torchvision architecture '{arch}' (e.g. {', '.join(close)})") from exc
    if source == "timm":
        timm = import_timm()
        try:
            return timm.create_model(arch, pretrained=False, **kwargs)
        except RuntimeError as exc:
            raise InputError(f"unknown timm architecture '{arch}': {str(exc).splitlines()[0]}") from exc
    raise InputError(f"unknown architecture source '{source}': use torchvision:NAME or timm:NAME")


def default_cam_layer(source: str, arch: str | None, net: nn.Module) -> tuple[str | None, str]:
    """(dotted path of the default Grad-CAM layer or None, a note saying why)."""
    if source == "torchvision" and arch:
        for prefix, layer in _TORCHVISION_CAM:
            if arch.startswith(prefix):
                return layer, f"{layer} (last convolutional stage of {arch})"
        return None, f"torchvision '{arch}' has no convolutional feature map (a transformer?)"
    if source == "timm":
        info = getattr(net, "feature_info", None)
        if info:
            layer = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
            return layer, f"{layer} (last entry of timm feature_info)"
        return None, f"timm '{arch}' lists no feature_info"
    names = {name for name, _ in net.named_children()}
    for candidate in _EXPORTED_CAM_NAMES:
        if candidate in names:
            return candidate, f"{candidate} (found by name in the unflattened program)"
    return None, "an exported program has no Python class and no known stage name was found"


def network_from_config(config: dict, workspace: Workspace | None) -> tuple[nn.Module, bool]:
    """(network, frozen_mode) of an imported checkpoint's config (exported: checked by fingerprint)."""
    if config["source"] != "exported":
        return build_network(config["source"], config["arch"], int(config["num_outputs"])), False
    workspace = workspace or Workspace.from_option(None)
    reference = config["exported"]
    path = workspace.models_dir / reference["file"]
    if not path.is_file():
        raise MissingArtefactError(f"the exported program {path} of this imported model is missing",
                                   hint="import it again with: defendr import NAME --exported FILE --force")
    data = read_exported_bytes(path)  # read once: the bytes hashed are the bytes loaded
    fingerprint = bytes_fingerprint(data)
    if fingerprint != reference["fingerprint"]:
        raise MismatchError(f"the exported program {path} changed since it was imported "
                            f"(fingerprint {fingerprint}, recorded {reference['fingerprint']})")
    module, _ = exported_module(load_exported_bytes(data, path))
    return module, True


def build_imported(checkpoint: Checkpoint, context) -> ImportedClassifier:
    """Builder of kind 'imported': network from config + state_dict, normalization, class map.

    `context` is a core.models.loading.BuildContext (workspace, device).
    """
    workspace, device = context.workspace, context.device
    config = checkpoint.config
    try:
        net, frozen = network_from_config(config, workspace)
        if config["source"] != "exported":
            net.load_state_dict(checkpoint.state_dict, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CorruptArtefactError(f"imported model '{checkpoint.name}' cannot be rebuilt: "
                                   f"{str(exc).splitlines()[0]}") from exc
    class_map = config.get("class_map") or {}
    module = ImportedClassifier(net, normalize=config.get("normalize"), class_index=class_map.get("indices"),
                                cam_layer=config.get("cam_layer"), cam_note=config.get("cam_note", ""),
                                frozen_mode=frozen)
    return module.to(device)

