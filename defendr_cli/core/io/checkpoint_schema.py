"""The schema of a checkpoint payload (core/io/checkpoint.py) and of an ensemble manifest.

`validate_payload(payload, where)` is the one check of a loaded or to-be-written payload: a dict
in this format (`format`, `version` 1..CHECKPOINT_VERSION, the required keys, the top-level key
types), then `checkpoint_fields`. core.io.checkpoint_record.Checkpoint.from_payload runs it once
on every read; save_checkpoint runs it before every write.

`checkpoint_fields(payload, where)` checks the type of every key a stage reads, so a payload that
unpickles fine (weights_only) but lies (a list where `data` is a dict, a string image size, a
state_dict holding strings, parents that are not references) is ONE CorruptArtefactError naming
the file, never a TypeError deep inside a builder. `ensemble_manifest_fields` adds what an
ensemble's manifest must hold: member names, finite weights (one per member), a combine rule.
Checked on every read and before every write.
"""

from __future__ import annotations

from typing import Any

import torch

from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.schema import Fields, is_finite_number

CHECKPOINT_FORMAT = "defendr-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "kind", "name", "config")
KEY_TYPES = {"kind": str, "name": str, "summary": str, "config": dict, "state_dict": dict, "data": dict,
             "hparams": dict, "history": list, "provenance": dict}
_DATA_TEXT = ("name", "fingerprint")
_PROVENANCE_TEXT = ("software_version", "created")
_OPTIONAL_MAPPINGS = ("hparams", "best", "provenance")
_CONFIG_COUNTS = ("num_classes", "image_size", "passes")  # ints >= 1 when present ('4' is not 4)
_CONFIG_TEXT = ("arch",)


def validate_payload(payload: Any, where: str) -> None:
    """CorruptArtefactError unless `payload` is a dict in this format with the required keys."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CorruptArtefactError(f"{where} is not a defendr checkpoint (format '{CHECKPOINT_FORMAT}')")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CorruptArtefactError(f"checkpoint {where} lacks {', '.join(missing)}")
    wrong = [f"{key} ({type(payload[key]).__name__}, not {kind.__name__})" for key, kind in KEY_TYPES.items()
             if key in payload and not isinstance(payload[key], kind)]
    if wrong:
        raise CorruptArtefactError(f"checkpoint {where} has keys of the wrong type: {', '.join(wrong)}")
    version = payload["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > CHECKPOINT_VERSION:
        raise CorruptArtefactError(
            f"checkpoint {where} has version {version!r}; this defendr reads versions 1..{CHECKPOINT_VERSION}"
        )
    checkpoint_fields(payload, where)  # the type of every key a stage reads


def checkpoint_fields(payload: dict[str, Any], where: str) -> None:
    """CorruptArtefactError naming `where` unless the payload's keys have the types Defendr writes:
    kind, name str; config dict; summary, method str; state_dict {str: Tensor}; data {name,
    fingerprint str, class_ids/class_names [str], image_size int >= 1}; hparams, best, provenance
    dict or None; history list; provenance.seed int or None, provenance.software_version/created str
    or None, provenance.parents [{role, name, fingerprint: str}]."""
    fields = Fields(where, payload, "checkpoint")
    fields.text("kind")
    if not fields.text("name"):
        raise fields.bad("name", "a non-empty string")
    _check_config(where, fields.mapping("config"))
    fields.text("summary", "")
    if payload.get("method") is not None:
        fields.text("method")
    _check_state_dict(fields, payload.get("state_dict", {}))
    _check_data(where, payload.get("data"))
    for key in _OPTIONAL_MAPPINGS:
        if payload.get(key) is not None:
            fields.mapping(key)
    if payload.get("history") is not None:
        fields.sequence("history")
    _check_provenance(where, payload.get("provenance") or {})
    if payload["kind"] == "ensemble":
        ensemble_manifest_fields(payload, where)


def _check_state_dict(fields: Fields, state: Any) -> None:
    if state is None:
        return
    if not isinstance(state, dict):
        raise fields.bad("state_dict", "a mapping of parameter names to tensors")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CorruptArtefactError(f"{fields.path} is a damaged checkpoint: 'state_dict' entry {str(bad)[:60]!r} is a "
                                   f"{type(state[bad]).__name__}, not a tensor")


def _check_config(where: str, config: dict[str, Any]) -> None:
    """The build config's counts are integers >= 1 and its names are strings, where present."""
    fields = Fields(where, config, "checkpoint (its 'config')")
    for key in _CONFIG_COUNTS:
        if config.get(key) is not None:
            fields.integer(key, minimum=1)
    for key in _CONFIG_TEXT:
        if config.get(key) is not None:
            fields.text(key)


def _check_data(where: str, data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise CorruptArtefactError(f"{where} is a damaged checkpoint: 'data' is a {type(data).__name__}, "
                                   f"expected a mapping")
    fields = Fields(where, data, "checkpoint (its 'data')")
    for key in _DATA_TEXT:
        fields.text(key, "")
    fields.texts("class_ids", [])
    fields.texts("class_names", [])
    if data.get("image_size") is not None:
        fields.integer("image_size", minimum=1)


def _check_provenance(where: str, provenance: dict[str, Any]) -> None:
    fields = Fields(where, provenance, "checkpoint (its 'provenance')")
    if provenance.get("seed") is not None:
        fields.integer("seed")
    for key in _PROVENANCE_TEXT:
        if provenance.get(key) is not None:
            fields.text(key)
    _check_parents(where, provenance.get("parents"))


def _check_parents(where: str, parents: Any) -> None:
    if parents is None:
        return
    if not isinstance(parents, list) or not all(
            isinstance(p, dict) and all(isinstance(p.get(k), str) for k in ("role", "name", "fingerprint"))
            for p in parents):
        raise CorruptArtefactError(f"{where} is a damaged checkpoint: 'provenance.parents' is not a list of "
                                   f"references {{role, name, fingerprint}}")


def ensemble_manifest_fields(payload: dict[str, Any], where: str) -> None:
    """CorruptArtefactError naming `where` unless the ensemble manifest's config holds `members`
    (a non-empty list of names), `weights` (None, or one finite non-negative number per member,
    not all zero) and `combine` (a string), and its provenance lists one member reference each."""
    fields = Fields(where, payload["config"], "ensemble manifest")
    members = fields.texts("members")
    if not members:
        raise fields.bad("members", "a non-empty list of model names")
    weights = payload["config"].get("weights")
    if weights is not None and (not isinstance(weights, list) or len(weights) != len(members)
                                or not all(is_finite_number(w) and w >= 0 for w in weights) or not sum(weights)):
        raise fields.bad("weights", f"{len(members)} finite non-negative numbers, not all zero")
    fields.text("combine", "probs")
    references = [p for p in (payload.get("provenance") or {}).get("parents") or [] if p.get("role") == "member"]
    if len(references) != len(members):
        raise CorruptArtefactError(f"{where} is a damaged ensemble manifest: {len(members)} members but "
                                   f"{len(references)} member references")
