"""Which pipeline stages are current: a small JSON ledger in the workspace.

Each stage has an id (e.g. 'train:alp'), a key (hash of its parameters and of the signatures of
its input files) and the output files it made (with their signatures). A stage is current when its
recorded key equals the key it would have now and every output still has its recorded signature.
Changing a parameter or an input therefore reruns that stage, and — because its outputs change —
everything downstream of it, and nothing else.

Signatures: checkpoints (.pt, small) are hashed; HDF5 files (large) are identified by size and
modification time, which changes whenever a stage rewrites them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import DefendrError
from defendr_cli.core.io.files import read_json_file
from defendr_cli.core.fingerprint import file_fingerprint

LEDGER_NAME = "reproduce-state.json"


def file_signature(path: Path) -> str:
    """A cheap identity of a file's current content (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".pt":
        return file_fingerprint(path)
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def stage_key(params: dict[str, Any], inputs: list[Path]) -> str:
    """Hash of the stage's parameters and its input files' signatures (16 hex)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for path in inputs:
        digest.update(f"{Path(path).name}={file_signature(path)};".encode())
    return digest.hexdigest()[:16]


@dataclass
class PipelineLedger:
    """The ledger of one workspace; `save()` writes it atomically."""

    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path) -> "PipelineLedger":
        path = Path(root) / LEDGER_NAME
        if not path.exists():
            return cls(path)
        try:
            stages = read_json_file(path, what="pipeline ledger")["stages"]
        except (DefendrError, KeyError):
            stages = {}  # an unreadable ledger only costs a rerun; never trust it
        if not isinstance(stages, dict) or not all(isinstance(r, dict) for r in stages.values()):
            stages = {}
        return cls(path, stages)

    def is_current(self, stage_id: str, key: str) -> bool:
        record = self.stages.get(stage_id)
        if not record or record.get("key") != key:
            return False
        for name, signature in record.get("outputs", {}).items():
            if not os.path.exists(name) or file_signature(Path(name)) != signature:
                return False
        return True

    def record(self, stage_id: str, key: str, outputs: list[Path]) -> None:
        self.stages[stage_id] = {
            "key": key,
            "outputs": {str(p): file_signature(Path(p)) for p in outputs},
        }
        self.save()

    def refresh_outputs(self, paths: list[Path]) -> None:
        """Re-sign recorded outputs among `paths` that a later step edited on purpose (the reproduce
        run appends its timing to the evaluate stage's report), so the edit does not make that stage stale."""
        names = {str(p) for p in paths}
        for record in self.stages.values():
            outputs = record.get("outputs", {})
            for name in names & set(outputs):
                outputs[name] = file_signature(Path(name))
        self.save()

    def forget(self, stage_id: str) -> None:
        self.stages.pop(stage_id, None)
        self.save()

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"stages": self.stages}, indent=1, sort_keys=True))
