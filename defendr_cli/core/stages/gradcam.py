"""`gradcam` as one function: paired clean/adversarial Grad-CAM grids of one model on one adversarial set.

The result type, `GradcamResult` (with one `GradcamTarget` per explained module), is core/explain/paired.py's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from defendr_cli.core.evaluation.html.writer import write_html_report
from defendr_cli.core.evaluation.predictions import safe_key
from defendr_cli.core.evaluation.selection import resolve_test_sets
from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.explain.paired import GradcamResult, GradcamTarget, gradcam_pairs
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.models.loading import check_checkpoint_against_cache
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace, validate_name

__all__ = ["GradcamConfig", "GradcamResult", "GradcamTarget", "run_gradcam"]


@dataclass(frozen=True)
class GradcamConfig:
    """model: name or path; attack: adversarial test set (name, unique prefix or path); count: test
    images; select: 'fooled' (correct-then-fooled images first) | 'any'; data: clean cache (None:
    the workspace's only one); folder: output folder (None: reports/<name>/, name derived from the
    model and set when None)."""

    model: str
    attack: str
    count: int = 16
    select: str = "fooled"
    seed: int = 0
    batch_size: int = 16
    data: str | Path | None = None
    name: str | None = None
    folder: Path | None = None


def run_gradcam(workspace: Workspace, config: GradcamConfig, runtime: Runtime, *,
                reporter: Reporter | None = None) -> GradcamResult:
    """Write the PNG grids, gradcam.json and report.html into the folder; return what was drawn
    (`files`: the grids, gradcam.json and report.html; gradcam.json is `report()` less report.html)."""
    if config.name is not None:
        validate_name(config.name)
    data_path = workspace.resolve("data", str(config.data)) if config.data else workspace.default_data()
    adv_path = resolve_test_sets(workspace, config.attack, unique=True)[0]
    model = load_eval_model(workspace, config.model, device=runtime.device)
    check_checkpoint_against_cache(model.checkpoint, read_cache_info(data_path), name=model.name)
    folder = config.folder or workspace.reports_dir / (config.name or safe_key("gradcam", model.name, adv_path.stem))
    result = gradcam_pairs(model, data_path, adv_path, Path(folder), runtime=runtime, count=config.count,
                           select=config.select, seed=config.seed, batch_size=config.batch_size,
                           reporter=reporter or NullReporter())
    command = ["defendr", "--workdir", str(workspace.root), "gradcam", "--model", config.model, "--attack",
               adv_path.stem, "--count", str(config.count), "--select", config.select, "--seed", str(config.seed)]
    command += (["--data", str(config.data)] if config.data else []) + (["--name", config.name] if config.name else [])
    html = write_html_report(Path(folder), command=shlex.join(command))  # renders gradcam.json, written above
    return replace(result, files=[*result.files, html])
