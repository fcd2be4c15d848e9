"""Write `report.html` into a report folder from what the folder holds.

    write_html_report(folder, command=..., overrides=...) -> folder/report.html

Reads results.json (when present), phenomena.json, the PNG figures results.json lists,
gallery/gallery.json and its PNGs, and gradcam.json (in the folder, or in its gradcam/ subfolder)
with its grids; renders them with `render_html_report` and writes the page atomically. Only files
named by those JSON files are read, by base name inside the folder, and only real PNGs are inlined.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from defendr_cli import __version__
from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.evaluation.html.page import asset_key
from defendr_cli.core.evaluation.html.render import ReportAssets, render_html_report

HTML_FILE = "report.html"
RESULTS_FILE = "results.json"
PHENOMENA_FILE = "phenomena.json"
GALLERY_JSON = "gallery/gallery.json"
GRADCAM_JSON = "gradcam.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PACKAGES = ("torch", "torchvision", "numpy", "h5py")


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorruptArtefactError(f"{path} is not valid JSON: {exc}") from exc


def _read_png(folder: Path, prefix: str, name: Any, images: dict[str, bytes]) -> None:
    """images[key] = the PNG's bytes, when that file exists in folder/prefix and is a PNG (see asset_key)."""
    key = asset_key(prefix, name)
    path = folder / key
    if key != prefix and path.is_file():
        data = path.read_bytes()
        if data.startswith(PNG_SIGNATURE):
            images[key] = data


def software_versions() -> dict[str, str]:
    """defendr, Python and the main packages' versions (those installed)."""
    versions = {"defendr": __version__, "python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def load_report_assets(folder: Path, results: dict, *, command: str | None = None,
                       overrides: list[str] | None = None) -> ReportAssets:
    """The images, gallery, Grad-CAM details, phenomena and provenance of the report in `folder`."""
    folder = Path(folder)
    assets = ReportAssets(provenance={"command": command, "overrides": overrides, "versions": software_versions(),
                                      "rendered": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    for name in results.get("figures") or []:
        _read_png(folder, "", name, assets.images)
    gallery = _read_json(folder / GALLERY_JSON)
    if isinstance(gallery, dict):
        assets.gallery = gallery
        for entry in gallery.get("images") or []:
            for kind in ("clean", "adv", "perturbation"):
                _read_png(folder, "gallery/", entry.get(kind), assets.images)
    for prefix in ("", "gradcam/"):
        details = _read_json(folder / prefix / GRADCAM_JSON)
        if isinstance(details, dict):
            assets.gradcams.append((prefix, details))
            for target in details.get("targets") or []:
                _read_png(folder, prefix, target.get("figure"), assets.images)
    phenomena = _read_json(folder / PHENOMENA_FILE)
    assets.phenomena = phenomena if isinstance(phenomena, list) else []
    return assets


def write_html_report(folder: Path, *, command: str | None = None, overrides: list[str] | None = None,
                      extra_tables: list[dict] | None = None) -> Path:
    """Render the report in `folder` and write folder/report.html (atomically); return its path.

    command: the command line that makes the report again; overrides: the profile settings it
    changed ('key=value'); extra_tables: table dicts shown after the paper's tables (reproduce: the
    paper's numbers beside ours)."""
    folder = Path(folder)
    results = _read_json(folder / RESULTS_FILE) or {}
    assets = load_report_assets(folder, results, command=command, overrides=overrides)
    assets.extra_tables = list(extra_tables or [])
    page = render_html_report(results, assets)
    path = folder / HTML_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
