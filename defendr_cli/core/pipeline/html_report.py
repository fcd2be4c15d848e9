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
from defendr_cli.core.pipeline.paper_report import TABLE1_ROWS, TABLE3_ROWS, paper_tables, reference_set
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


def _paper_value(value: float | None) -> float | None:
    return None if value is None else value / 100.0


def paper_comparison_tables(results: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper's Tables 1 and 3 beside ours on the reference set, as results.json-style table dicts
    (accuracies as fractions; the paper's percentages divided by 100)."""
    paper = paper_tables()
    ref = reference_set(settings)
    rows = {m["name"]: m for m in (results.get("transfer") or {}).get("models") or []}

    def ours(name: str) -> list[float | None]:
        row = rows.get(name)
        cell = (row or {}).get("sets", {}).get(ref)
        return [row["clean"], cell["adv50"], cell["adv100"]] if cell else [None, None, None]

    note = (f"Paper: ImageNet, pretrained ResNet-101 ({paper['source']}). Ours: profile {settings.get('profile')}, "
            f"set {ref}. Compare the direction and size of effects, not the values.")
    table1 = [[label, name if name in rows else "(not run)", *map(_paper_value, paper["table1"]["rows"][label]),
               *ours(name)] for label, name in TABLE1_ROWS.items()]
    table3 = [[label, name if name in rows else "(not run)", _paper_value(paper["table3"]["rows"][label][0]),
               ours(name)[2]] for label, name in TABLE3_ROWS.items()]
    return [
        {"key": "paper-table1", "title": f"Paper beside ours: {paper['table1']['title']}", "caption": note,
         "columns": ["Paper row", "Our model", "Paper clean", "Paper 50%", "Paper 100%", "Ours clean", "Ours 50%",
                     "Ours 100%"], "rows": table1, "percent_columns": [2, 3, 4, 5, 6, 7]},
        {"key": "paper-table3", "title": f"Paper beside ours: {paper['table3']['title']}", "caption": note,
         "columns": ["Paper ensemble", "Ours", "Paper (100% adv.)", "Ours (100% adv.)"], "rows": table3,
         "percent_columns": [2, 3]},
    ]


def write_reproduce_html(workspace: Workspace, settings: dict[str, Any], report_dir: Path) -> Path | None:
    """report_dir/report.html from the folder's results (None when the folder has no results.json yet)."""
    path = Path(report_dir) / RESULTS_FILE
    if not path.exists():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    return write_html_report(report_dir, command=reproduce_command(workspace, settings),
                             overrides=profile_overrides(settings),
                             extra_tables=paper_comparison_tables(results, settings))
