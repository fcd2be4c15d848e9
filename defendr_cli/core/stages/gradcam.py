"""`gradcam` as one function: paired clean/adversarial Grad-CAM grids of one model on one adversarial set."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defendr_cli.core.evaluation.html.writer import write_html_report
from defendr_cli.core.evaluation.predictions import safe_key
from defendr_cli.core.evaluation.selection import resolve_test_sets
from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.explain.paired import gradcam_pairs
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.models.loading import check_checkpoint_against_cache
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace, validate_name


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


@dataclass
class GradcamTarget:
    """One explained module (the model, or an ensemble member): its grid and predicted class names."""

    label: str
    figure: str
    clean_pred: list[str]
    adv_pred: list[str]
    mean_abs_difference: float


@dataclass
class GradcamResult:
    folder: Path
    model: str
    adv_set: str
    select: str
    count: int
    fooled_available: int
    targets: list[GradcamTarget]
    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # gradcam.json's content

    def to_dict(self) -> dict:
        return {**self.details, "folder": str(self.folder)}


def run_gradcam(workspace: Workspace, config: GradcamConfig, runtime: Runtime, *,
                reporter: Reporter | None = None) -> GradcamResult:
    """Write the PNG grids and gradcam.json into the folder; return what was drawn."""
    if config.name is not None:
        validate_name(config.name)
    data_path = workspace.resolve("data", str(config.data)) if config.data else workspace.default_data()
    adv_path = resolve_test_sets(workspace, config.attack, unique=True)[0]
    model = load_eval_model(workspace, config.model, device=runtime.device)
    check_checkpoint_against_cache({**model.payload, "name": model.name}, read_cache_info(data_path))
    folder = config.folder or workspace.reports_dir / (config.name or safe_key("gradcam", model.name, adv_path.stem))
    details = gradcam_pairs(model, data_path, adv_path, folder, runtime=runtime, count=config.count,
                           select=config.select, seed=config.seed, batch_size=config.batch_size,
                           reporter=reporter or NullReporter())
    command = ["defendr", "--workdir", str(workspace.root), "gradcam", "--model", config.model, "--attack",
               adv_path.stem, "--count", str(config.count), "--select", config.select, "--seed", str(config.seed)]
    command += (["--data", str(config.data)] if config.data else []) + (["--name", config.name] if config.name else [])
    html = write_html_report(Path(folder), command=shlex.join(command))
    return GradcamResult(folder=Path(folder), model=details["model"], adv_set=details["adv_set"],
                         select=details["select"], count=details["count"],
                         fooled_available=details["fooled_available"],
                         targets=[GradcamTarget(**t) for t in details["targets"]],
                         files=[Path(p) for p in details.get("files", [])] + [html], details=details)
