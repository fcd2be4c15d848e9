"""reproduce's report.html: the page of reports/reproduce/, with the command that makes it again.

The command names the profile, the workspace and every setting that differs from the profile as
`--set key=value` (edge values as their own options: --source, --device, --precision).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from defendr_cli.core.evaluation.html.writer import RESULTS_FILE, write_html_report
from defendr_cli.core.pipeline.profile import load_profile
from defendr_cli.core.workspace import Workspace

EDGE_KEYS = ("device", "precision")


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _override_text(value: Any) -> str:
    """The text `--set k=TEXT` needs to give `value` back (parse_override reads JSON first, else a string)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"))


def profile_overrides(settings: dict[str, Any]) -> list[str]:
    """'key.sub=value' for every leaf of the profile that `settings` changed (edge keys and data.source excluded)."""
    stock = _flatten(load_profile(str(settings.get("profile", "quick"))))
    ours = _flatten({k: v for k, v in settings.items() if k not in (*EDGE_KEYS, "profile")})
    return [f"{key}={_override_text(ours[key])}" for key in stock
            if key in ours and key != "data.source" and ours[key] != stock[key]]


def reproduce_command(workspace: Workspace, settings: dict[str, Any]) -> str:
    """`defendr --workdir W reproduce --profile P [--source S] --device D --precision X --set ...`."""
    parts = ["defendr", "--workdir", str(workspace.root), "reproduce", "--profile", str(settings.get("profile", "quick"))]
    stock_source = load_profile(str(settings.get("profile", "quick")))["data"]["source"]
    if settings["data"]["source"] != stock_source:
        parts += ["--source", str(settings["data"]["source"])]
    parts += [item for key in EDGE_KEYS if settings.get(key) for item in (f"--{key}", str(settings[key]))]
    for override in profile_overrides(settings):
        parts += ["--set", override]
    return shlex.join(parts)


def write_reproduce_html(workspace: Workspace, settings: dict[str, Any], report_dir: Path) -> Path | None:
    """report_dir/report.html from the folder's results (None when the folder has no results.json yet)."""
    if not (Path(report_dir) / RESULTS_FILE).exists():
        return None
    return write_html_report(report_dir, command=reproduce_command(workspace, settings),
                             overrides=profile_overrides(settings))
