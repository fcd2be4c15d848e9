"""`ensemble` as one function: a manifest checkpoint models/NAME.pt referencing its members by fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defendr_cli.core.models.ensemble_manifest import create_ensemble
from defendr_cli.core.workspace import Workspace, validate_name


@dataclass(frozen=True)
class EnsembleConfig:
    """name: the ensemble's model name; members: model names or paths (two or more);
    weights: one per member (normalized to sum 1) or None (equal); combine: 'probs' | 'logits'."""

    name: str
    members: list[str]
    weights: list[float] | None = None
    combine: str = "probs"
    force: bool = False


@dataclass(frozen=True)
class EnsembleMember:
    name: str
    fingerprint: str
    weight: float


@dataclass
class EnsembleResult:
    name: str
    path: Path
    combine: str
    members: list[EnsembleMember]
    data: dict = field(default_factory=dict)  # image_size, class_ids

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "combine": self.combine, "data": self.data,
                "members": [{"name": m.name, "fingerprint": m.fingerprint, "weight": m.weight}
                            for m in self.members]}


def run_ensemble(workspace: Workspace, config: EnsembleConfig) -> EnsembleResult:
    """Write models/<name>.pt; ArtefactExistsError when it exists and not `force`."""
    validate_name(config.name, "NAME")
    path, manifest = create_ensemble(workspace, config.name, config.members, weights=config.weights,
                                     combine=config.combine, force=config.force)
    settings = manifest.config
    members = [EnsembleMember(p.name, p.fingerprint, w)
               for p, w in zip(manifest.provenance.parents, settings["weights"])]
    class_ids = manifest.data.class_ids
    return EnsembleResult(name=config.name, path=Path(path), combine=settings["combine"], members=members,
                          data={"image_size": manifest.data.image_size,
                                "class_ids": None if class_ids is None else list(class_ids)})
