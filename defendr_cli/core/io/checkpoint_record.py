"""A checkpoint payload as a typed value: `Checkpoint`, the one place that indexes the payload dict.

On disk a checkpoint is a plain dict saved with torch.save and read with weights_only=True
(core/io/checkpoint.py). Every stage reads and writes it through this record instead:

    Checkpoint.from_payload(payload, where)   # validate_payload (checkpoint_schema.py) once, then typed
    checkpoint.to_payload()                   # the dict to write: Defendr's keys in Defendr's order

Typed parts: `DataRecord` (the clean cache the model was made for), `Provenance` (seed, software
version, creation time and `parents`, a tuple of `Reference` {role, name, fingerprint}). Kept
plain on purpose, because their shape belongs elsewhere: `config` (kind-specific; the kind's
builder in core.models reads it), `state_dict`, `hparams` (TrainOptions.to_dict() and the like),
`history` and `best` (core.training EpochRecord dicts).

`to_payload` writes the current format. For a payload Defendr writes (training, import, ensemble)
it is the very dict, key order and `complete` presence included, so the file's bytes do not
change (tests/io/test_io_checkpoint_record.py pins this). That holds for a payload read back and
written again too (the finished training run rewrites its best-epoch side file): pickle writes a
string once per object, so the record keeps the key strings it was read with (`_keys`) and writes
them instead of equal but distinct literals. An older or hand-made payload that lacks
optional keys (summary, method, data, hparams, history, best, provenance) reads with defaults and,
written again, gains them with those defaults. Unknown top-level keys are kept (`extra`, written
after the known ones); unknown keys inside `data`, `provenance` or a parent are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from defendr_cli.core.io.checkpoint_schema import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, validate_payload

_ORDER = ("format", "version", "kind", "name", "summary", "method", "config", "state_dict", "data", "hparams",
          "history", "best", "complete", "provenance")


@dataclass(frozen=True)
class Reference:
    """What a checkpoint was made from: role ('target', 'member', 'data', 'adversarial-set',
    'pretrained'), name (a workspace name or a path) and fingerprint ('' when there is none)."""

    role: str
    name: str
    fingerprint: str

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Reference:
        return cls(str(value["role"]), str(value["name"]), str(value["fingerprint"]))

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "name": self.name, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class DataRecord:
    """The clean cache a checkpoint was made for; None for what was not recorded (an import
    bound to no cache records at most its image size)."""

    name: str | None = None
    fingerprint: str | None = None
    class_ids: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    image_size: int | None = None

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> DataRecord:
        ids, names = value.get("class_ids"), value.get("class_names")
        return cls(value.get("name"), value.get("fingerprint"), None if ids is None else tuple(ids),
                   None if names is None else tuple(names), value.get("image_size"))

    def to_dict(self) -> dict[str, Any]:
        """The recorded keys only, in the order Defendr writes them."""
        values = {"name": self.name, "fingerprint": self.fingerprint,
                  "class_ids": None if self.class_ids is None else list(self.class_ids),
                  "class_names": None if self.class_names is None else list(self.class_names),
                  "image_size": self.image_size}
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Provenance:
    """Where a checkpoint came from: training seed (None for imports and ensembles), Defendr's
    version, creation time (ISO text) and the artefacts it was made from."""

    seed: int | None = None
    software_version: str | None = None
    created: str | None = None
    parents: tuple[Reference, ...] = ()

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Provenance:
        return cls(value.get("seed"), value.get("software_version"), value.get("created"),
                   tuple(Reference.from_dict(p) for p in value.get("parents") or []))

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "software_version": self.software_version, "created": self.created,
                "parents": [p.to_dict() for p in self.parents]}

    def with_role(self, role: str) -> list[Reference]:
        """The parents that have `role`, in stored order."""
        return [p for p in self.parents if p.role == role]


@dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint (see the module docstring for what is typed and what stays plain).

    complete: True or False as recorded (any recorded value but True reads as False), None where
    the file has no such key, which means complete (core.io.checkpoint.check_complete).
    """

    kind: str
    name: str
    config: dict[str, Any]
    summary: str = ""
    method: str | None = None
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    data: DataRecord = field(default_factory=DataRecord)
    hparams: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    best: dict[str, Any] | None = None
    complete: bool | None = None
    provenance: Provenance = field(default_factory=Provenance)
    version: int = CHECKPOINT_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    _keys: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # see the module docstring

    @classmethod
    def from_payload(cls, payload: Any, where: str = "checkpoint") -> Checkpoint:
        """The record of a loaded payload; CorruptArtefactError naming `where` unless it passes
        core.io.checkpoint_schema.validate_payload."""
        validate_payload(payload, where)
        complete = None if "complete" not in payload else payload["complete"] is True
        provenance = payload.get("provenance") or {}
        keyed = (payload, payload.get("data") or {}, provenance, *(provenance.get("parents") or []))
        return cls(kind=payload["kind"], name=payload["name"], config=payload["config"],
                   summary=payload.get("summary", ""), method=payload.get("method"),
                   state_dict=payload.get("state_dict") or {},
                   data=DataRecord.from_dict(payload.get("data") or {}), hparams=payload.get("hparams") or {},
                   history=payload.get("history") or [], best=payload.get("best"), complete=complete,
                   provenance=Provenance.from_dict(provenance), version=payload["version"],
                   extra={key: value for key, value in payload.items() if key not in _ORDER},
                   _keys={key: key for mapping in keyed for key in mapping})

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk (torch.save), in Defendr's key order; `complete` only where recorded."""
        payload = {"format": CHECKPOINT_FORMAT, "version": self.version, "kind": self.kind, "name": self.name,
                   "summary": self.summary, "method": self.method, "config": self.config,
                   "state_dict": self.state_dict, "data": self._keyed(self.data.to_dict()), "hparams": self.hparams,
                   "history": self.history, "best": self.best}
        if self.complete is not None:
            payload["complete"] = self.complete
        provenance = self.provenance.to_dict()
        provenance["parents"] = [self._keyed(p) for p in provenance["parents"]]
        payload["provenance"] = self._keyed(provenance)
        return {**self._keyed(payload), **self.extra}

    def _keyed(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with the key strings this record was read with (the same dict when it was built)."""
        if not self._keys:
            return values
        return {self._keys.get(key, key): value for key, value in values.items()}

    @property
    def is_complete(self) -> bool:
        """False only for the best-epoch side file of an unfinished training run."""
        return self.complete is not False

    def parents_with_role(self, role: str) -> list[Reference]:
        """The provenance parents that have `role`, in stored order."""
        return self.provenance.with_role(role)


def summary_of_payload(payload: Any) -> str:
    """The one-line `summary` of a payload loaded without validation (`defendr ls`); ValueError
    when it is not a Defendr checkpoint."""
    if not isinstance(payload, dict) or "summary" not in payload:
        raise ValueError("not a Defendr checkpoint (no summary)")
    return str(payload["summary"])
