"""`run_import(workspace, config) -> ImportResult`: a user's model as an ordinary Defendr checkpoint.

Writes models/NAME.pt of kind "imported" (see core.models.imported) that every stage loads with
no flags. An exported program is copied beside it as models/NAME.pt2 and referenced by
fingerprint: the workspace stays self-contained (it can be moved or shared whole), and a program
changed after import is refused on load instead of silently evaluated.

Binding to a cache happens at import time: with --data (or the workspace's only cache when
there is exactly one) the class map is resolved against that cache's class list and the
checkpoint records the cache's class ids, names and image size, like a trained model. Every
stage that later loads the model against a cache runs the usual check_checkpoint_against_cache,
so using it on a cache with other classes is a MismatchError rather than wrong logits. Binding
at load time instead would make a checkpoint's meaning depend on whichever cache is in use.
Without a cache the model is unbound: its K outputs must then equal the classes of the cache it
is evaluated on (checked by evaluate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from defendr_cli import __version__
from defendr_cli.core.atomic import check_writable, write_bytes_atomic
from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.fingerprint import bytes_fingerprint
from defendr_cli.core.io.reader import CacheInfo, read_cache_info
from defendr_cli.core.io.checkpoint import save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint, DataRecord, Provenance
from defendr_cli.core.models.class_map import ClassMap, read_class_map_file, resolve_class_map
from defendr_cli.core.models.exported import (exported_module, load_exported_bytes, read_exported_bytes,
                                              static_image_size)
from defendr_cli.core.models.imported import (ImportedClassifier, build_network, default_cam_layer, find_layer,
                                              normalization)
from defendr_cli.core.models.weights_file import head_outputs, load_strict, read_state_dict
from defendr_cli.core.workspace import Workspace, validate_name

PROBE_SIZE = 224


@dataclass
class ImportConfig:
    """What `defendr import` was given. arch: 'torchvision:NAME' | 'timm:NAME' (with weights) or None
    with exported (a .pt2). normalize: 'imagenet' | 'none' | 'm1,m2,m3/s1,s2,s3' | None (default:
    imagenet for torchvision, the model's own for timm, none for an exported program)."""

    name: str
    arch: str | None = None
    weights: Path | None = None
    exported: Path | None = None
    normalize: str | None = None
    class_map: Path | None = None
    data: str | None = None
    cam_layer: str | None = None
    image_size: int | None = None
    force: bool = False


@dataclass
class ImportResult:
    """The written checkpoint and what was decided (notes: one line each, for the user)."""

    name: str
    path: Path
    source: str
    arch: str | None
    num_outputs: int
    num_classes: int
    normalize: dict | None
    cam_layer: str | None
    cam_note: str
    class_map: ClassMap | None
    data_name: str | None
    image_size: int | None
    summary: str
    notes: list[str] = field(default_factory=list)


def _parse_arch(config: ImportConfig) -> tuple[str, str | None]:
    if (config.arch is None) == (config.exported is None):
        raise InputError("give either --arch SOURCE:NAME with --weights FILE, or --exported FILE.pt2")
    if config.exported is not None:
        if config.weights is not None:
            raise InputError("an exported program carries its own weights: drop --weights")
        return "exported", None
    source, _, arch = config.arch.partition(":")
    if not arch or source not in ("torchvision", "timm"):
        raise InputError(f"--arch '{config.arch}': use torchvision:NAME or timm:NAME (e.g. torchvision:resnet50)")
    if config.weights is None:
        raise InputError(f"--arch {config.arch} needs --weights FILE (.pth, .pt or .safetensors)")
    return source, arch


def _cache_for(workspace: Workspace, config: ImportConfig, notes: list[str]) -> CacheInfo | None:
    if config.data:
        return read_cache_info(workspace.resolve("data", config.data))
    names = workspace.names("data")
    if len(names) == 1:
        notes.append(f"bound to the workspace's only cache '{names[0]}' (choose another with --data)")
        return read_cache_info(workspace.path_for("data", names[0], create_dir=False))
    notes.append("not bound to a cache: its outputs must equal the classes of the cache it is used on "
                 "(give --data CACHE to bind it and map classes)")
    return None


def _network(source: str, arch: str | None, config: ImportConfig, notes: list[str], program_bytes: bytes | None):
    """(net, frozen_mode, fixed image size or None) for an architecture + weights or a .pt2's checked bytes."""
    if source == "exported":
        program = load_exported_bytes(program_bytes, Path(config.exported).expanduser())
        size, dynamic_batch = static_image_size(program)
        if not dynamic_batch:
            raise InputError("the exported program accepts one batch size only: export it with "
                             "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}")
        net, unflattened = exported_module(program)
        if not unflattened:
            notes.append("the program could not be unflattened: no layer can be hooked for Grad-CAM")
        return net, True, size
    state, read_notes = read_state_dict(config.weights)
    notes.extend(read_notes)
    net = build_network(source, arch)
    stored, built = head_outputs(net, state), head_outputs(net, net.state_dict())
    if stored is not None and stored != built:
        net = build_network(source, arch, stored)
        notes.append(f"head sized to the {stored} outputs found in the weights")
    load_strict(net, state, what=f"{source}:{arch}")
    return net.eval(), False, None


def _default_normalize(source: str, net: torch.nn.Module) -> tuple[dict | None, str]:
    if source == "torchvision":
        return normalization("imagenet"), "imagenet (torchvision default)"
    if source == "timm":
        cfg = getattr(net, "pretrained_cfg", None) or {}
        if cfg.get("mean") and cfg.get("std"):
            return {"name": "timm", "mean": list(cfg["mean"]), "std": list(cfg["std"])}, "the timm model's own mean/std"
        return normalization("imagenet"), "imagenet (timm model lists no mean/std)"
    return None, "none (an exported program is taken as it is)"


def _probe_size(net: torch.nn.Module) -> int:
    """The input size a timm model was made for (its pretrained_cfg), else 224."""
    input_size = (getattr(net, "pretrained_cfg", None) or {}).get("input_size")
    return int(input_size[-1]) if input_size else PROBE_SIZE


def _probe(model: ImportedClassifier, size: int, cam_layer: str | None) -> tuple[int, tuple | None]:
    """(outputs K, shape of the cam layer's output or None) from one forward pass on zeros."""
    shapes: list[tuple] = []
    handle = None
    if cam_layer:
        handle = find_layer(model.net, cam_layer).register_forward_hook(
            lambda _m, _i, out: shapes.append(tuple(out.shape) if isinstance(out, torch.Tensor) else ()))
    try:
        with torch.no_grad():
            logits = model(torch.zeros(2, 3, size, size))
    except Exception as exc:  # a model that cannot run at this size fails in many ways
        raise InputError(f"the model does not run on 2x3x{size}x{size} images: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        if handle is not None:
            handle.remove()
    if logits.dim() != 2 or logits.shape[0] != 2:
        raise InputError(f"the model returns shape {tuple(logits.shape)} for 2 images; logits (N, K) are needed")
    if not bool(torch.isfinite(logits).all()):
        raise InputError("the model returns NaN or Inf logits for black images: its weights or --normalize "
                         "are broken, and it would read as robust")
    return int(logits.shape[1]), (shapes[-1] if shapes else None)


def run_import(workspace: Workspace, config: ImportConfig) -> ImportResult:
    """Build, check and save the imported model as models/NAME.pt (and NAME.pt2 for a program)."""
    validate_name(config.name, "NAME")
    source, arch = _parse_arch(config)
    out = workspace.path_for("model", config.name)
    check_writable(out, force=config.force)
    notes: list[str] = []
    cache = _cache_for(workspace, config, notes)
    program_bytes = read_exported_bytes(config.exported) if source == "exported" else None
    net, frozen, fixed_size = _network(source, arch, config, notes, program_bytes)
    sizes = {"cache": cache.image_size if cache else None, "--image-size": config.image_size,
             "the exported program": fixed_size}
    given = {k: int(v) for k, v in sizes.items() if v is not None}
    if len(set(given.values())) > 1:
        raise MismatchError("image sizes disagree: " + ", ".join(f"{k} {v}px" for k, v in given.items()))
    image_size = next(iter(given.values()), None)
    if config.normalize is None:
        norm, norm_note = _default_normalize(source, net)
    else:
        norm, norm_note = normalization(config.normalize), config.normalize
    notes.append(f"normalization: {norm_note}")
    cam_layer, cam_note = (config.cam_layer, "given with --cam-layer") if config.cam_layer \
        else default_cam_layer(source, arch, net)
    model = ImportedClassifier(net, normalize=norm, frozen_mode=frozen).eval()
    outputs, cam_shape = _probe(model, image_size or _probe_size(net), cam_layer)
    if cam_layer and (cam_shape is None or len(cam_shape) != 4):
        if config.cam_layer:
            raise InputError(f"--cam-layer {cam_layer} outputs shape {cam_shape}; Grad-CAM needs a (N, C, h, w) map")
        cam_note = f"{cam_layer} outputs {cam_shape}, not a (N, C, h, w) map: no Grad-CAM without --cam-layer"
        cam_layer = None
    notes.append(f"Grad-CAM layer: {cam_note}")
    if config.class_map is not None and cache is None:
        raise InputError("--class-map maps onto a cache's classes: give --data CACHE as well")
    class_map = None
    if cache is not None:
        mapping = read_class_map_file(config.class_map) if config.class_map is not None else None
        class_map = resolve_class_map(list(cache.class_ids), outputs, mapping=mapping,
                                      source=str(config.class_map or ""))
    if class_map is not None:
        notes.append(f"class map: {class_map.describe(list(cache.class_ids), outputs)}")
    exported_ref = None
    if source == "exported":
        copy = workspace.path_for("model", config.name).with_suffix(".pt2")
        write_bytes_atomic(copy, program_bytes, force=True)  # the bytes checked and loaded, not a new read
        exported_ref = {"file": copy.name, "fingerprint": bytes_fingerprint(program_bytes)}
        notes.append(f"copied the program to {copy} (checked by fingerprint on every load)")
    num_classes = len(class_map.indices) if class_map else outputs
    label = f"{source}:{arch}" if arch else f"exported {Path(config.exported).name}"
    mapped = f" -> {num_classes} classes ({class_map.how})" if class_map else ""
    bound = f", cache {cache.name}" if cache else ", unbound"
    summary = (f"imported {label}: {outputs} outputs{mapped}{bound}, normalize {norm['name'] if norm else 'none'}, "
               f"Grad-CAM {cam_layer or 'unavailable'}")
    data = DataRecord(image_size=image_size or None)
    if cache is not None:
        data = DataRecord(cache.name, cache.fingerprint, tuple(cache.class_ids), tuple(cache.class_names),
                          int(cache.image_size))
    checkpoint = Checkpoint(
        kind="imported", name=config.name, summary=summary, method="imported",
        config={"source": source, "arch": arch, "num_outputs": outputs, "normalize": norm,
                "cam_layer": cam_layer, "cam_note": cam_note,
                "class_map": class_map.to_dict() if class_map else None, "exported": exported_ref},
        state_dict={} if frozen else net.state_dict(), data=data,
        hparams={"weights": str(config.weights) if config.weights else None,
                 "exported": str(config.exported) if config.exported else None},
        history=[], best=None,
        provenance=Provenance(seed=None, software_version=__version__,
                              created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    )
    save_checkpoint(out, checkpoint, force=config.force)
    return ImportResult(config.name, out, source, arch, outputs, num_classes, norm, cam_layer, cam_note,
                        class_map, cache.name if cache else None, image_size, summary, notes)
