"""Loading a `torch.export` program (`.pt2`) without running code the file brings with it.

Why this module exists: torch.export.load is NOT safe on an untrusted file as it stands. It
unpickles with weights_only=False (weights or constants flagged `use_pickle`, legacy weight
files, and sample inputs when the safe load fails), calls pickle.loads on "opaque" constants,
loads TorchBind objects, and dlopens AOTInductor shared libraries shipped in the archive. The
graph itself may also name any callable under `torch.*`, `math.*` or `operator.*` as a node
target, which would run when the program is called. So before and after loading we restrict:

1. the archive holds only the parts of a plain exported program (models/*.json, data/weights,
   data/constants, data/sample_inputs, extra/ and the format/version files): AOTInductor,
   ExecuTorch or unknown entries are refused;
2. every blob torch would unpickle (pickled weights/constants, legacy weight files, sample
   inputs) must load with torch.load(weights_only=True) first; then the weights_only=False load
   of the same bytes builds the same tensors and containers and runs nothing else. Opaque and
   TorchBind constants are refused;
3. after loading, every call_function node of every graph must be an ATen/prims operator or a
   symbolic-shape builtin (operator.getitem, add, mul, ...); anything else is refused by name.

A refused file is an InputError naming the reason. The loaded program's module has no Python
class: `exported_module` unflattens it (torch.export.unflatten) so its submodules (e.g. `layer4`)
are called and can carry a Grad-CAM hook; when unflattening fails, the flat module is used and
no layer can be hooked.
"""

from __future__ import annotations

import io
import json
import operator
import zipfile
from pathlib import Path

import torch
from torch import nn

from defendr_cli.core.errors import InputError, MissingArtefactError

_ALLOWED_PREFIXES = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/", ".data/")
_ALLOWED_FILES = ("archive_format", "archive_version", "byteorder")
_ALLOWED_NAMESPACES = ("aten", "prims")
_ALLOWED_BUILTINS = {operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
                     operator.truediv, operator.mod, operator.neg, operator.pow, operator.eq, operator.ne,
                     operator.lt, operator.le, operator.gt, operator.ge, operator.and_, operator.or_}


def _refuse(path: Path, reason: str) -> InputError:
    return InputError(f"refusing exported program {path}: {reason}")


def _check_pickle(path: Path, name: str, blob: bytes) -> None:
    if not blob:
        return
    try:
        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # anything the safe unpickler rejects is refused
        raise _refuse(path, f"{name} holds pickled Python objects ({type(exc).__name__})") from exc


def check_archive(path: Path) -> None:
    """Rules 1 and 2 of the module docstring on the zip archive; InputError when refused."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse(path, f"not a .pt2 archive ({exc})") from exc
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise _refuse(path, "not a torch.export.save archive (expected one root folder)")
        relative = {n.split("/", 1)[1]: n for n in names}
        strange = [r for r in relative if r not in _ALLOWED_FILES and not r.startswith(_ALLOWED_PREFIXES)]
        if strange:
            raise _refuse(path, f"it holds entries a plain exported program does not have: {', '.join(strange[:3])}")
        if not any(r.startswith("models/") and r.endswith(".json") for r in relative):
            raise _refuse(path, "it holds no exported program (models/*.json); save it with torch.export.save")
        for rel, full in relative.items():
            folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
            if rel.startswith("data/sample_inputs/") or (folder in ("data/weights/", "data/constants/")
                                                         and rel.endswith(".pt")):
                _check_pickle(path, rel, archive.read(full))
            if rel.endswith("_config.json") and folder in ("data/weights/", "data/constants/"):
                config = json.loads(archive.read(full)).get("config", {})
                for fqn, entry in config.items():
                    file_name = str(entry.get("path_name", ""))
                    if file_name.startswith(("custom_obj", "opaque_obj")):
                        raise _refuse(path, f"constant '{fqn}' is a pickled Python or TorchBind object")
                    if entry.get("use_pickle"):
                        _check_pickle(path, f"{folder}{file_name}", archive.read(relative[folder + file_name]))


def check_graph_ops(program: torch.export.ExportedProgram, path: Path) -> None:
    """Rule 3: every call_function target is an ATen/prims operator or a shape builtin."""
    for graph_module in program.graph_module.modules():
        graph = getattr(graph_module, "graph", None)
        for node in graph.nodes if graph is not None else ():
            if node.op != "call_function":
                continue
            target = node.target
            if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
                if target.namespace in _ALLOWED_NAMESPACES:
                    continue
            elif target in _ALLOWED_BUILTINS:
                continue
            raise _refuse(path, f"its graph calls {getattr(target, '__name__', target)!s}, "
                                f"which is not an ATen operator")


def load_exported_program(path: Path | str) -> torch.export.ExportedProgram:
    """torch.export.load after check_archive, then check_graph_ops; InputError when refused."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingArtefactError(f"no exported program at {path}")
    check_archive(path)
    try:
        program = torch.export.load(path)
    except Exception as exc:  # a broken archive fails in many ways inside torch's deserializer
        raise InputError(f"cannot load exported program {path}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    check_graph_ops(program, path)
    return program


def exported_module(program: torch.export.ExportedProgram) -> tuple[nn.Module, bool]:
    """(module, unflattened): the program as a callable module with its submodule hierarchy if possible."""
    try:
        return torch.export.unflatten(program), True
    except Exception:  # unflatten is best effort: the flat module computes the same function
        return program.module(), False


def static_image_size(program: torch.export.ExportedProgram) -> tuple[int | None, bool]:
    """(image size when the first input's H and W are fixed and equal, batch dimension is dynamic)."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is None or len(shape) != 4:
                return None, True
            dynamic_batch = not isinstance(shape[0], int)
            height, width = shape[2], shape[3]
            fixed = isinstance(height, int) and isinstance(width, int) and height == width
            return (int(height) if fixed else None), dynamic_batch
    return None, True
