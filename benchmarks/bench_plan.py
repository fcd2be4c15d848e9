"""The plan's time estimates (`reproduce --plan`) against measured reproduce runs: within a factor of 2?

For each measured run (a reproduce report's results.json: its resolved settings, its per-stage
wall seconds and the calibration it recorded, core/pipeline/timing.py) the plan is computed for the
same settings and calibration in an empty workspace (so every stage counts as run) and compared
stage by stage: ratio = estimated / measured seconds. Stages that took under --min-seconds are
listed but not judged (their time is start-up noise); the run's total is judged too.

Runs to compare:
    --report DIR        an existing report folder (reports/reproduce of a workspace); repeatable
    --readme            the quick profile's output published in README.md (its stage lines and
                        calibration line; default quick settings)
    --run quick         run `defendr reproduce` (quick profile) in a temporary workspace first
    --run paper-shrunk  run the paper profile on synthetic images at 299 px with ResNet-101 (no
                        weights file), shrunk by PAPER_SHRINK (4 classes x 3 images, one epoch
                        for every model, two small attacks, transfer evaluation only; the
                        documented CPU-sized run with the adaptive suite is docs/paper-profile.md's,
                        compare it with --report)

Output: a table per run, the ratios, and benchmarks/results/bench_plan.json (or --out).

    nice .venv/bin/python benchmarks/bench_plan.py --readme --run quick --run paper-shrunk [--report DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from defendr_cli.core.pipeline.plan import CPU_UTILISATION, plan_reproduce
from defendr_cli.core.pipeline.profile import resolve_settings
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
PAPER_SHRINK = [
    "data.classes=4", "data.per_class=3", "data.split=1,1,1", "model.pretrained=null",
    "train.epochs=1", "train.batch_size=4", "methods.dunet.epochs=1", "methods.dunet.width_mult=0.25",
    'attacks=[{"attack": "fgsm", "eps": "0.12", "eps_space": "normalized"}, '
    '{"attack": "pgd", "eps": "0.12", "eps_space": "normalized", "steps": 2}]',
    "extra_test_attacks=[]", 'methods.advpgd.adv=["pgd-eps0.12n-s2"]', 'methods.dunet.adv=["fgsm-eps0.12n"]',
    "evaluate.adaptive=false", "gradcam.count=2",  # the paper profile has no evaluate.suite key to shrink
]
RUNS = {"quick": ("quick", [], None), "paper-shrunk": ("paper", PAPER_SHRINK, "synthetic")}


def run_reproduce(kind: str, root: Path) -> Path:
    """Run `defendr reproduce` for `kind` in a fresh workspace; its report folder."""
    profile, overrides, source = RUNS[kind]
    workdir = root / kind
    args = [sys.executable, "-m", "defendr_cli", "--workdir", str(workdir), "reproduce", "--profile", profile,
            "--device", "cpu", "--json"]
    args += ["--source", source] if source else []
    for item in overrides:
        args += ["--set", item]
    print(f"running reproduce ({kind}) in {workdir} ...", flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reproduce ({kind}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return workdir / "reports" / "reproduce"


def from_report(report_dir: Path) -> tuple[str, dict, dict, list[dict]]:
    """(label, settings, calibration, timing stages) of the run recorded in a report folder."""
    results = json.loads((Path(report_dir) / "results.json").read_text())
    timing = results.get("timing") or {}
    if not timing.get("calibration"):
        raise SystemExit(f"{report_dir} records no calibration: rerun it with this version of reproduce")
    return str(report_dir), results["settings"], timing["calibration"], timing.get("stages", [])


def from_readme(readme: Path) -> tuple[str, dict, dict, list[dict]]:
    """The quick profile's output that README.md shows (`defendr reproduce`, default settings):
    its `stage X: ran in Ys` lines and the `conv fp32 A / bf16 B GFLOP/s` calibration line."""
    text = readme.read_text()
    stages = [{"id": m.group(1), "status": "ran", "seconds": float(m.group(2))}
              for m in re.finditer(r"^stage (\S+): ran in ([0-9.]+)s", text, flags=re.M)]
    conv = re.search(r"conv fp32 ([0-9.]+) / bf16 ([0-9.]+) GFLOP/s", " ".join(text.split()))
    if not stages or conv is None:
        raise SystemExit(f"{readme} shows no quick-profile output with a calibration line")
    calibration = {"conv": {"fp32_gflops": float(conv.group(1)), "bf16_gflops": float(conv.group(2))}}
    return f"{readme} (quick profile as published)", resolve_settings("quick", []), calibration, stages


def compare(run: tuple[str, dict, dict, list[dict]], min_seconds: float, scratch: Path) -> dict:
    """Plan vs measured seconds per stage of one measured run (label, settings, calibration, stages)."""
    label, settings, calibration, measured_stages = run
    runtime = Runtime.create("cpu", settings.get("precision", "fp32"), settings.get("memory_format", "auto"))
    plan = plan_reproduce(Workspace(scratch / "empty"), settings, runtime, calibration)
    estimated = {s.id: s.seconds_here for s in plan.stages}
    rows = []
    for stage in measured_stages:
        if stage.get("status") != "ran" or stage["id"] not in estimated:
            continue
        measured = float(stage["seconds"])
        ratio = estimated[stage["id"]] / measured if measured > 0 else None
        judged = measured >= min_seconds
        rows.append({"id": stage["id"], "measured_s": round(measured, 2), "estimated_s": round(estimated[stage["id"]], 2),
                     "ratio": None if ratio is None else round(ratio, 3), "judged": judged,
                     "within_2x": None if not judged else bool(0.5 <= ratio <= 2.0)})
    measured_total = sum(r["measured_s"] for r in rows)
    estimated_total = sum(r["estimated_s"] for r in rows)
    return {"report": label, "profile": settings.get("profile"),
            "data": {k: settings["data"].get(k) for k in ("classes", "per_class", "split", "image_size")},
            "arch": settings["model"]["arch"], "calibration_conv_gflops": {
                "fp32": calibration["conv"]["fp32_gflops"], "bf16": calibration["conv"]["bf16_gflops"]},
            "stages": rows, "measured_total_s": round(measured_total, 1), "estimated_total_s": round(estimated_total, 1),
            "total_ratio": round(estimated_total / measured_total, 3) if measured_total else None,
            "judged_within_2x": all(r["within_2x"] for r in rows if r["judged"])
                                and 0.5 <= estimated_total / max(measured_total, 1e-9) <= 2.0}


def print_comparison(item: dict) -> None:
    data, conv = item["data"], item["calibration_conv_gflops"]
    print(f"\n{item['report']}: {item['profile']} profile, {data['classes']} classes x {data['per_class']} at "
          f"{data['image_size']} px, {item['arch']}; calibration conv {conv['fp32']:.0f} fp32 / {conv['bf16']:.0f} bf16 GFLOP/s")
    print(f"  {'stage':<42} {'measured s':>10} {'plan s':>8} {'ratio':>6}")
    for row in item["stages"]:
        mark = "" if not row["judged"] else ("  ok" if row["within_2x"] else "  OUTSIDE 2x")
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(f"  {row['id']:<42} {row['measured_s']:>10.1f} {row['estimated_s']:>8.1f} {ratio:>6}{mark}")
    print(f"  {'total':<42} {item['measured_total_s']:>10.1f} {item['estimated_total_s']:>8.1f} "
          f"{item['total_ratio']:>6.2f}  -> {'within 2x' if item['judged_within_2x'] else 'NOT within 2x'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, action="append", default=[], help="a reports/reproduce folder")
    parser.add_argument("--readme", action="store_true", help="compare with README.md's published quick run")
    parser.add_argument("--run", action="append", default=[], choices=sorted(RUNS), help="run reproduce first")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="stages faster than this are not judged")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_plan.json")
    args = parser.parse_args()
    if not args.report and not args.run and not args.readme:
        parser.error("give --readme, --run and/or --report")
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        reports = list(args.report) + [run_reproduce(kind, Path(tmp)) for kind in args.run]
        runs = ([from_readme(REPO / "README.md")] if args.readme else []) + [from_report(r) for r in reports]
        items = [compare(run, args.min_seconds, Path(tmp)) for run in runs]
    for item in items:
        print_comparison(item)
    payload = {"benchmark": "bench_plan", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "load_average_1min": round(os.getloadavg()[0], 2)},
               "cpu_utilisation_assumed": CPU_UTILISATION, "min_seconds_judged": args.min_seconds,
               "runs": items, "all_within_2x": all(item["judged_within_2x"] for item in items)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
