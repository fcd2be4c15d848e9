"""The reproduce report's timing section: seconds per stage and the machine's calibration figures.

Wall-clock seconds alone do not compare across machines (or on a shared one), so the section puts
beside them each stage's CPU seconds (`time.process_time`, all threads of this process) and the
machine's own yardstick from `core.calibration.calibrate` (fp32/bf16 matmul and conv GFLOP/s).

    report.md      '## Stage times' section (replaced on every run that ran a stage)
    results.json   'timing': {'total_seconds', 'stages': [{id, status, seconds, cpu_seconds, share}],
                              'calibration': calibrate()'s dict}

`share` is the stage's part of the total wall seconds of the stages (0..1); a stage found current
(skipped) counts 0 s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.calibration import calibration_line
from defendr_cli.core.io.report_file import read_results_file
from defendr_cli.core.pipeline.paper_report import SETTINGS_HEADING

HEADING = "## Stage times"
RESULTS_FILE = "results.json"
MARKDOWN_FILE = "report.md"


class StageTiming(Protocol):
    id: str
    status: str
    seconds: float
    cpu_seconds: float


def timing_table(records: Sequence[StageTiming], total_seconds: float) -> list[dict[str, Any]]:
    """One row per stage: {'id', 'status' ('ran' | 'current'), 'seconds', 'cpu_seconds', 'share'}."""
    total = max(float(total_seconds), 1e-9)
    return [{"id": r.id, "status": r.status, "seconds": round(float(r.seconds), 2),
             "cpu_seconds": round(float(r.cpu_seconds), 2), "share": round(float(r.seconds) / total, 4)}
            for r in records]


def timing_markdown(rows: list[dict[str, Any]], total_seconds: float, calibration: dict | None) -> str:
    """The '## Stage times' section (heading included, trailing newline)."""
    ran = [r for r in rows if r["status"] == "ran"]
    cpu = sum(r["cpu_seconds"] for r in ran)
    lines = [HEADING, "",
             f"Total {total_seconds:.1f} s wall, {cpu:.1f} s CPU ({len(ran)} of {len(rows)} stages ran; "
             f"a current stage is skipped and counts 0 s). CPU seconds sum every thread of the process: "
             f"on a shared machine compare them and the shares, not only wall seconds.", ""]
    if calibration:
        lines += [f"Machine: {calibration_line(calibration)} (calibration took {calibration['seconds']:.1f} s).", ""]
    lines += ["| stage | status | seconds | CPU seconds | share |", "|---|---|---:|---:|---:|"]
    for r in rows:
        status = "ran" if r["status"] == "ran" else "skipped (current)"
        lines.append(f"| {r['id']} | {status} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {100 * r['share']:.1f}% |")
    return "\n".join(lines) + "\n"


def _replace_section(text: str, section: str) -> str:
    """`text` with its HEADING section (up to the next '## ' heading) replaced by `section`; else the
    section goes before the settings dump (or at the end when there is none)."""
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        return pattern.sub(lambda _m: section + "\n", text, count=1).rstrip("\n") + "\n"
    head, marker, tail = text.partition(SETTINGS_HEADING)
    if marker:
        return f"{head.rstrip()}\n\n{section}\n{marker}{tail}"
    return text.rstrip("\n") + "\n\n" + section


def write_timing(report_dir: Path, records: Sequence[StageTiming], total_seconds: float,
                 calibration: dict | None) -> list[Path]:
    """Put the timing section into report.md and results.json of `report_dir`; return the files changed
    (none when the report is absent)."""
    rows = timing_table(records, total_seconds)
    changed: list[Path] = []
    results_path = Path(report_dir) / RESULTS_FILE
    if results_path.exists():
        results = read_results_file(results_path)
        results["timing"] = {"total_seconds": round(float(total_seconds), 2), "stages": rows,
                             "calibration": calibration}
        with atomic_path(results_path) as tmp:
            tmp.write_text(json.dumps(results, indent=2, default=str))
        changed.append(results_path)
    markdown_path = Path(report_dir) / MARKDOWN_FILE
    if markdown_path.exists():
        text = _replace_section(markdown_path.read_text(), timing_markdown(rows, total_seconds, calibration))
        with atomic_path(markdown_path) as tmp:
            tmp.write_text(text)
        changed.append(markdown_path)
    return changed
