"""The reproduce report's timing section (core/pipeline/timing.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from defendr_cli.core.pipeline.timing import HEADING, timing_table, write_timing

CALIBRATION = {"device_name": "Test CPU", "threads": 2, "cpu_flags": {}, "seconds": 1.0,
               "matmul": {"fp32_gflops": 100.0, "bf16_gflops": 300.0},
               "conv": {"fp32_gflops": 50.0, "bf16_gflops": 100.0},
               "bf16_fp32_matmul_ratio": 3.0, "bf16_fp32_conv_ratio": 2.0}


@dataclass
class Record:
    id: str
    status: str
    seconds: float
    cpu_seconds: float


RECORDS = [Record("prepare", "current", 0.0, 0.0), Record("train:baseline", "ran", 30.0, 55.0),
           Record("evaluate", "ran", 10.0, 18.0)]


def test_shares_are_parts_of_the_total_and_skipped_stages_count_zero():
    rows = timing_table(RECORDS, 50.0)
    assert [r["share"] for r in rows] == [0.0, 0.6, 0.2]
    assert rows[1] == {"id": "train:baseline", "status": "ran", "seconds": 30.0, "cpu_seconds": 55.0, "share": 0.6}


def test_section_goes_before_the_settings_and_is_replaced_not_repeated(tmp_path):
    (tmp_path / "report.md").write_text("# Report\n\n## Phenomena\n\nok\n\n## Settings\n\n{}\n")
    (tmp_path / "results.json").write_text(json.dumps({"name": "reproduce"}))
    write_timing(tmp_path, RECORDS, 50.0, CALIBRATION)
    write_timing(tmp_path, RECORDS[1:], 40.0, CALIBRATION)
    text = (tmp_path / "report.md").read_text()
    assert text.count(HEADING) == 1
    assert text.index("## Phenomena") < text.index(HEADING) < text.index("## Settings")
    assert "| prepare |" not in text and "| train:baseline | ran | 30.0 | 55.0 | 75.0% |" in text
    assert "matmul fp32 100 / bf16 300 GFLOP/s (3.00x)" in text
    timing = json.loads((tmp_path / "results.json").read_text())["timing"]
    assert timing["total_seconds"] == 40.0 and timing["calibration"]["matmul"]["bf16_gflops"] == 300.0


def test_no_report_no_files(tmp_path):
    assert write_timing(tmp_path, RECORDS, 50.0, None) == []
