"""Calibration: this machine's fp32 and bf16 matmul and 3x3-conv GFLOP/s and their bf16/fp32 ratios.

Every benchmark records these figures in its JSON (`calibration` key) so that results from
different machines compare by ratio. The measurement lives in `defendr_cli.core.calibration`;
this script prints it and saves benchmarks/results/calibration.json.

    .venv/bin/python benchmarks/calibrate.py [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defendr_cli.core.calibration import calibrate, calibration_line  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def record_calibration(device: str = "cpu", threads: int | None = None) -> dict:
    """Calibrate, print the one-line summary, return the figures (for a benchmark's JSON)."""
    figures = calibrate(device, threads)
    print(f"calibration: {calibration_line(figures)}  [{figures['seconds']:.1f} s]")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    figures = record_calibration(args.device, args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "calibration.json"
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
