"""`info` and `ls` as functions: a clean cache's description (optionally re-verified), the workspace's artefacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.io.catalog import KIND_ORDER, ArtefactEntry, list_artefacts
from defendr_cli.core.io.reader import CacheInfo, read_cache_info
from defendr_cli.core.io.verify import VerifyReport, verify_cache, verify_workspace_adv_sets
from defendr_cli.core.models.loading import model_hint
from defendr_cli.core.progress import Reporter
from defendr_cli.core.workspace import Workspace

KIND_ALIASES = {"data": "data", "adv": "adv", "model": "model", "models": "model", "report": "report",
                "reports": "report"}


@dataclass
class InfoResult:
    """A clean cache's description; with --verify the cache's report and one per adversarial set made
    from it (each re-hashed in full)."""

    path: Path
    info: CacheInfo
    verify: VerifyReport | None = None
    adv_verify: list[VerifyReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = self.info.to_dict()
        if self.verify is not None:
            v = self.verify
            out["verify"] = {"ok": v.ok, "recorded": v.recorded, "computed": v.computed, "rows": v.rows,
                             "seconds": round(v.seconds, 3)}
            out["verify_adv_sets"] = [{"name": r.path.stem, "ok": r.ok, "recorded": r.recorded,
                                       "computed": r.computed, "rows": r.rows, "problem": r.problem}
                                      for r in self.adv_verify]
        return out

    def raise_if_corrupt(self) -> None:
        """CorruptArtefactError when a verification ran and the content does not match its fingerprint."""
        if self.verify is not None and not self.verify.ok:
            raise CorruptArtefactError(
                f"the content of {self.path} does not match its fingerprint (recorded {self.verify.recorded}, "
                f"computed {self.verify.computed})", hint="make it again with: defendr prepare --force")
        bad = [r.path.stem for r in self.adv_verify if (r.recorded or r.problem) and not r.ok]
        if bad:
            first = next(r.problem for r in self.adv_verify if r.path.stem == bad[0]) or "fingerprint differs"
            raise CorruptArtefactError(f"the content of adversarial set(s) {', '.join(bad)} does not match the "
                                       f"recorded fingerprint or is damaged (first: {first})",
                                       hint="make them again with: defendr attack ... --force")


def run_info(workspace: Workspace, cache: str | None = None, *, verify: bool = False,
             reporter: Reporter | None = None) -> InfoResult:
    """Describe a clean cache (name, path, or the workspace's only one); re-read it all with `verify`."""
    path = workspace.resolve("data", cache) if cache else workspace.default_data()
    info = read_cache_info(path)
    if not verify:
        return InfoResult(path, info)
    adv_reports = verify_workspace_adv_sets(workspace, info.fingerprint)
    return InfoResult(path, info, verify_cache(path, reporter=reporter), adv_reports)


@dataclass
class ModelInfo:
    """A checkpoint's description without building its module: kind, method, data it was made for,
    provenance, and for imported models the architecture and class map (cache class -> output)."""

    path: Path
    checkpoint: Checkpoint

    def to_dict(self) -> dict:
        c = self.checkpoint
        config = c.config
        out = {"name": c.name, "path": str(self.path), "kind": c.kind, "method": c.method,
               "summary": c.summary, "classes": len(c.data.class_ids or []),
               "image_size": c.data.image_size, "data": c.data.name,
               "parents": [p.to_dict() for p in c.provenance.parents]}
        if c.kind == "imported":
            out.update({"source": config.get("source"), "arch": config.get("arch"),
                        "outputs": config.get("num_outputs"), "normalize": config.get("normalize"),
                        "cam_layer": config.get("cam_layer"), "class_map": config.get("class_map")})
        return out

    def class_map_pairs(self) -> list[tuple[str, str, int]]:
        """(cache class id, class name, model output index) per class of an imported model's map."""
        data = self.checkpoint.data
        indices = (self.checkpoint.config.get("class_map") or {}).get("indices") or []
        ids, names = data.class_ids or (), data.class_names or ()
        return [(ids[i] if i < len(ids) else str(i), names[i] if i < len(names) else "", int(index))
                for i, index in enumerate(indices)]


def run_model_info(workspace: Workspace, ref: str) -> ModelInfo:
    """Describe the checkpoint `ref` (name in models/ or a path), read with weights_only."""
    path = workspace.resolve("model", ref, hint=model_hint(ref))
    return ModelInfo(path, read_checkpoint(path))


@dataclass
class LsResult:
    root: Path
    kinds: tuple[str, ...]
    entries: list[ArtefactEntry]

    def to_dict(self) -> dict:
        return {"workspace": str(self.root), "artefacts": [e.to_dict() for e in self.entries]}


def run_ls(workspace: Workspace, kind: str | None = None) -> LsResult:
    """The artefacts of every kind, or of one (data, adv, model(s), report(s)), with their summaries."""
    if kind is not None and kind not in KIND_ALIASES:
        raise InputError(f"unknown kind '{kind}': use data, adv, models or reports")
    kinds = (KIND_ALIASES[kind],) if kind else KIND_ORDER
    workspace.require_folder()
    return LsResult(workspace.root, kinds, list_artefacts(workspace, kinds))
