"""The report's last section: how the figures were made and how to make them again.

The command that reproduces the report, the profile and its overrides, seeds, software versions,
fingerprints of the clean cache, the models and the adversarial sets, the machine's calibration and
stage times (reproduce), and every resolved setting.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from defendr_cli.core.calibration import calibration_line
from defendr_cli.core.evaluation.html.page import esc
from defendr_cli.core.evaluation.html.sections import section
from defendr_cli.core.evaluation.html.tables import simple_table, table_html
from defendr_cli.core.evaluation.report.robustbench import robustbench_filename


def _kv(pairs: list[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="kv">{items}</dl>'


def _text(value: Any) -> str:
    """A setting as short text: lists comma-joined ('none' when empty), None as 'default'."""
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def compact_json(value: Any) -> str:
    """Indented JSON with every list of plain values kept on one line."""
    text = json.dumps(value, indent=2, default=str)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(p.strip() for p in m.group(1).split(",\n")) + "]",
                  text)


def _seeds(results: dict) -> str:
    seeds = [("settings", (results.get("settings") or {}).get("seed")),
             ("transfer", (results.get("transfer") or {}).get("seed")),
             ("adaptive", (results.get("adaptive") or {}).get("seed"))]
    return ", ".join(f"{name} {value}" for name, value in seeds if value is not None)


def _protocol(results: dict, provenance: dict) -> str:
    settings = results.get("settings") or {}
    adaptive = (results.get("adaptive") or {}).get("settings") or {}
    suite = adaptive.get("suite") or {}
    overrides = provenance.get("overrides")
    pairs = [
        ("command", f"<pre>{esc(provenance.get('command'))}</pre>" if provenance.get("command") else None),
        ("profile", esc(settings.get("profile")) if settings.get("profile") else None),
        ("overrides", esc(" ".join(overrides)) if overrides else ("none" if overrides is not None else None)),
        ("seeds", esc(_seeds(results))),
        ("device / precision", esc(" / ".join(str(settings[k]) for k in ("device", "precision") if settings.get(k)))),
        ("adaptive suite", esc("; ".join(f"{k} {_text(v)}" for k, v in suite.items())) if suite else None),
        ("adaptive budget", esc("; ".join(f"{k} {_text(adaptive[k])}" for k in ("eps", "steps", "restarts", "eot",
                                                                                "subset") if k in adaptive))
         if adaptive else None),
        ("software", esc(", ".join(f"{k} {v}" for k, v in (provenance.get("versions") or {}).items()))),
        ("report created", esc(results.get("created"))),
        ("rendered", esc(provenance.get("rendered"))),
    ]
    return _kv(pairs)


def _fingerprints(results: dict) -> str:
    transfer = results.get("transfer") or {}
    data = transfer.get("data") or {}
    rows = [["clean cache", data.get("path"), data.get("fingerprint"),
             f"{data.get('num_classes')} classes, {data.get('test_count')} test images, {data.get('image_size')} px"]]
    rows += [["model", m.get("name"), m.get("fingerprint"), m.get("kind")] for m in transfer.get("models") or []]
    rows += [["adversarial set", s.get("name"), "-", f"{s.get('attack')} eps {s.get('eps_label')} ({s.get('eps_space')}), "
              f"from {s.get('source_model')}, {s.get('count')} images, {s.get('dtype')}"]
             for s in transfer.get("adv_sets") or []]
    if not data and len(rows) == 1:
        return ""
    table = simple_table("artefacts", "Artefacts", ["Kind", "Name", "Fingerprint", "Details"], rows,
                         caption="Fingerprints: sha256 of the checkpoint file (16 hex) and the clean cache's content "
                                 "fingerprint; a changed artefact gives other fingerprints.")
    return table_html(table)


def result_files(results: dict) -> list[tuple[str, str]]:
    """(description, file name relative to the report folder) of the files an adaptive run wrote beside
    results.json: each model's per-image records (`records`: .h5 and its .csv) and RobustBench-style JSONs."""
    files = []
    for m in (results.get("adaptive") or {}).get("models") or []:
        for label, name in (m.get("records") or {}).items():
            files.append((f"{m['name']} at {label}: per-image record (HDF5)", str(name)))
            files.append((f"{m['name']} at {label}: per-image record (CSV)", str(PurePosixPath(name).with_suffix(".csv"))))
    for entry in results.get("robustbench") or []:
        if entry.get("name"):
            files.append((f"{entry['name']}: RobustBench-style result", robustbench_filename(str(entry["name"]))))
    return files


def _files(results: dict) -> str:
    files = result_files(results)
    if not files:
        return ""
    items = "".join(f'<li><a href="{esc(quote(name))}">{esc(name)}</a> <span class="small muted">{esc(what)}</span>'
                    "</li>" for what, name in files)
    return ("<h3>Result files</h3><p class=\"small muted\">Next to this page in the report folder "
            "(schema: docs/per_image_record.md).</p><ul class=\"files\">" + items + "</ul>")


def _timing(results: dict) -> str:
    timing = results.get("timing") or {}
    parts = []
    if timing.get("calibration"):
        parts.append(f"<p>Machine: {esc(calibration_line(timing['calibration']))} (compare times only next to "
                     "these figures).</p>")
    stages = timing.get("stages") or []
    if stages:
        rows = [[s["id"], s["status"], s["seconds"], s["cpu_seconds"], s["share"]] for s in stages]
        parts.append(table_html(simple_table(
            "stage-times", f"Stage times (total {timing.get('total_seconds', 0):.1f} s wall)",
            ["Stage", "Status", "Seconds", "CPU seconds", "Share (%)"], rows, percent_columns=[4],
            caption="A stage found current is skipped and counts 0 s.")))
    return "\n".join(parts)


def provenance_section(results: dict, provenance: dict) -> str:
    settings = results.get("settings") or {}
    parts = [_protocol(results, provenance), _fingerprints(results), _files(results), _timing(results)]
    if settings:
        parts.append("<h3>Every setting</h3><pre>" + esc(compact_json(settings)) + "</pre>")
    return section("provenance", "Protocol and provenance", "\n".join(p for p in parts if p))
