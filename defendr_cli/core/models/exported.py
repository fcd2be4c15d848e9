"""Loading a `torch.export` program (`.pt2`) without running code the file brings with it.

Why this module exists: torch.export.load is NOT safe on an untrusted file as it stands. It
unpickles with weights_only=False (weights or constants flagged `use_pickle`, legacy weight
files, and sample inputs when the safe load fails), calls pickle.loads on "opaque" constants,
loads TorchBind objects, and dlopens AOTInductor shared libraries shipped in the archive. The
graph itself may also name any callable under `torch.*`, `math.*` or `operator.*` as a node
target, which would run when the program is called. And a zip can read differently to Python's
zipfile and to torch's reader (duplicate names: first vs last). So:

0. the file is read ONCE into memory; those bytes are checked by core.io.zip_entries (no
   duplicate, colliding or non-normalised names, no overlapping records, capped sizes and
   compression ratio, streamed decompression) and only the checked entries go further;
1. the entries are exactly those of a plain exported program (models/model.json, the weights
   and constants configs and the raw tensor files they name, sample inputs, extra/, the
   format/version files): AOTInductor, ExecuTorch, legacy pickled weight files or unknown entries
   are refused; configs are JSON objects without repeated keys;
2. no pickle reaches torch: a config entry with `use_pickle` (pickled weights, pickled or opaque
   constants, TorchBind objects) is refused; sample inputs must load with weights_only=True and
   are then replaced by an empty record. torch.export.load then reads a NEW archive written by torch's own writer from the
   checked entries (`rebuild_archive`), never the user's file;
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
from pathlib import Path

import torch
from torch import nn
from torch.export.pt2_archive import PT2ArchiveWriter

from defendr_cli.core.errors import InputError
from defendr_cli.core.io.zip_entries import DEFAULT_LIMITS, ZipLimits, read_regular_file, read_zip_entries

MODEL_NAME = "model"  # torch.export.save writes one program, models/model.json
_FIXED_FILES = ("archive_format", "archive_version", "byteorder")
_WRITER_FILES = (".data/version", ".data/serialization_id")  # written anew by torch's archive writer
_PAYLOAD_DIRS = ("data/weights/", "data/constants/")
_TENSOR_PREFIXES = ("weight_", "tensor_", "constant_")
_ALLOWED_NAMESPACES = ("aten", "prims")
_ALLOWED_BUILTINS = {operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
                     operator.truediv, operator.mod, operator.neg, operator.pow, operator.eq, operator.ne,
                     operator.lt, operator.le, operator.gt, operator.ge, operator.and_, operator.or_}


def _refuse(path: Path | str, reason: str) -> InputError:
    return InputError(f"refusing exported program {path}: {reason}")


def _strict_json(path: Path | str, name: str, blob: bytes) -> dict:
    """A JSON object with no repeated key (two readers could keep different values); InputError otherwise."""
    def no_repeats(pairs):
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"repeated key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(pairs)

    try:
        value = json.loads(blob.decode("utf-8"), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _refuse(path, f"{name} is not valid JSON ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(value, dict):
        raise _refuse(path, f"{name} is not a JSON object")
    return value


def _check_sample_inputs(path: Path | str, blob: bytes | None) -> None:
    """Sample inputs must be a plain tensor pickle (torch.load weights_only=True); they are then dropped."""
    if not blob:
        return
    try:
        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # anything the safe unpickler rejects is refused
        raise _refuse(path, f"data/sample_inputs holds pickled Python objects ({type(exc).__name__})") from exc


def _payload_files(path: Path | str, folder: str, config_blob: bytes) -> set[str]:
    """Names of the raw tensor files a weights/constants config points at; pickles are refused."""
    config = _strict_json(path, f"{folder}{MODEL_NAME}_*_config.json", config_blob).get("config")
    if not isinstance(config, dict):
        raise _refuse(path, f"the {folder} config has no 'config' mapping")
    files = set()
    for fqn, entry in config.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
            raise _refuse(path, f"the {folder} config entry {fqn!r} is not what torch.export.save writes")
        file_name = entry["path_name"]
        if entry.get("use_pickle") is not False:
            raise _refuse(path, f"{folder}{file_name} ('{fqn}') is a pickled Python or TorchBind object "
                                f"(use_pickle); only raw tensors are loaded")
        if not file_name.startswith(_TENSOR_PREFIXES) or "/" in file_name or not isinstance(
                entry.get("tensor_meta"), dict):
            raise _refuse(path, f"{folder}{file_name} ('{fqn}') is not a raw tensor file")
        files.add(file_name)
    return files


def check_entries(path: Path | str, entries: dict[str, bytes]) -> dict[str, bytes]:
    """Rules 1 and 2 on the checked zip entries; returns {name inside the root folder: bytes}."""
    names = list(entries)
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise _refuse(path, "not a torch.export.save archive (expected one root folder)")
    relative = {n.split("/", 1)[1]: blob for n, blob in entries.items()}
    if f"models/{MODEL_NAME}.json" not in relative:
        raise _refuse(path, f"it holds no exported program (models/{MODEL_NAME}.json); "
                            f"save it with torch.export.save")
    if relative.get("archive_format") != b"pt2":
        raise _refuse(path, "its archive_format entry is not 'pt2'")
    allowed = set(_FIXED_FILES) | set(_WRITER_FILES) | {f"models/{MODEL_NAME}.json",
                                                       f"data/sample_inputs/{MODEL_NAME}.pt"}
    for folder, kind in zip(_PAYLOAD_DIRS, ("weights", "constants")):
        config_name = f"{folder}{MODEL_NAME}_{kind}_config.json"
        if config_name not in relative:
            raise _refuse(path, f"it has no {config_name}")
        allowed |= {config_name} | {folder + f for f in _payload_files(path, folder, relative[config_name])}
    _check_sample_inputs(path, relative.get(f"data/sample_inputs/{MODEL_NAME}.pt"))
    strange = [r for r in relative if r not in allowed and not r.startswith("extra/")]
    if strange:
        raise _refuse(path, f"it holds entries a plain exported program does not have: {', '.join(strange[:3])}")
    return relative


def rebuild_archive(relative: dict[str, bytes]) -> bytes:
    """A fresh .pt2 written by torch's own archive writer from the checked entries only.

    Sample inputs (a pickle torch would load with weights_only=False when the safe load fails)
    are written empty: Defendr never uses them, so no byte of the user's pickles reaches torch.
    """
    buffer = io.BytesIO()
    with PT2ArchiveWriter(buffer) as writer:
        for name, blob in relative.items():
            if name in _WRITER_FILES or name.startswith("data/sample_inputs/"):
                continue
            writer.write_bytes(name, blob)
        writer.write_bytes(f"data/sample_inputs/{MODEL_NAME}.pt", b"")
    return buffer.getvalue()


def check_graph_ops(program: torch.export.ExportedProgram, path: Path | str) -> None:
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


def read_exported_bytes(path: Path | str, limits: ZipLimits = DEFAULT_LIMITS) -> bytes:
    """The .pt2 file's bytes, read once (regular file, size-capped); what every later check uses."""
    return read_regular_file(Path(path).expanduser(), "exported program", limits)


def load_exported_bytes(data: bytes, where: Path | str,
                        limits: ZipLimits = DEFAULT_LIMITS) -> torch.export.ExportedProgram:
    """Check `data` (zip_entries + rules 1-2), load a rebuilt archive of exactly the checked entries
    with torch.export.load, then check its graph (rule 3). InputError naming `where` when refused."""
    relative = check_entries(where, read_zip_entries(data, "exported program", where, limits))
    clean = rebuild_archive(relative)
    try:
        program = torch.export.load(io.BytesIO(clean))
    except Exception as exc:  # a broken archive fails in many ways inside torch's deserializer
        raise InputError(f"cannot load exported program {where}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    check_graph_ops(program, where)
    return program


def load_exported_program(path: Path | str) -> torch.export.ExportedProgram:
    """load_exported_bytes of the file's bytes, read once."""
    path = Path(path).expanduser()
    return load_exported_bytes(read_exported_bytes(path), path)


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
