"""How much does the quick profile's robust-control verdict move with the machine's numerics?

Full variants run `defendr reproduce` (the whole quick profile, as README command 1) once per
variant, each in its own workspace, and print and save per variant: the value of every phenomena
check, every adaptively attacked model's clean and robust accuracy at the reference eps, and the
margin "madry minus the best paper defense" against the profile's `checks.robust_control.min_margin`.
Control-only variants (--controls) retrain only the robust control and attack it with the profile's
adaptive settings: cheap, for many seeds and kernels.

Variants (names accepted by --variants):

    profile-t2   the profile's own training precisions, 2 threads
    bf16-t2      every model trained under bf16 autocast, 2 threads
    fp32-t2      every model trained in fp32, 2 threads
    profile-t1   the profile's precisions, 1 thread
    bf16-t1      bf16 autocast, 1 thread
    profile-avx2 the profile's precisions, oneDNN and ATen kernels limited to AVX2
    bf16-avx2    bf16 autocast, kernels limited to AVX2
    profile-seed1 the profile's precisions, seed 1 (another draw of the same recipe)

    nice -n 10 python benchmarks/verdict_spread.py --variants bf16-t2,fp32-t2 --root /tmp/spread

Writes benchmarks/results/verdict_spread.json (or --out). Times are wall seconds of the whole
reproduce; they are only comparable next to the calibration line each run prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from defendr_cli.core.pipeline import evaluation_stage as ev  # noqa: E402
from defendr_cli.core.pipeline import stages as st  # noqa: E402
from defendr_cli.core.pipeline.profile import apply_overrides, load_profile  # noqa: E402
from defendr_cli.core.progress import NullReporter  # noqa: E402
from defendr_cli.core.runtime import Runtime, seed_everything  # noqa: E402
from defendr_cli.core.stages.evaluate import run_evaluate as evaluate_stage  # noqa: E402
from defendr_cli.core.workspace import Workspace  # noqa: E402

CONTROL = "madry"
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
VARIANTS: dict[str, tuple[str | None, dict[str, str], int]] = {
    # name: (precision forced on every training run or None for the profile's, env, seed)
    "profile-t2": (None, {"OMP_NUM_THREADS": "2"}, 0),
    "bf16-t2": ("bf16", {"OMP_NUM_THREADS": "2"}, 0),
    "fp32-t2": ("fp32", {"OMP_NUM_THREADS": "2"}, 0),
    "profile-t1": (None, {"OMP_NUM_THREADS": "1"}, 0),
    "bf16-t1": ("bf16", {"OMP_NUM_THREADS": "1"}, 0),
    "profile-avx2": (None, {"OMP_NUM_THREADS": "2", **AVX2}, 0),
    "bf16-avx2": ("bf16", {"OMP_NUM_THREADS": "2", **AVX2}, 0),
    "profile-seed1": (None, {"OMP_NUM_THREADS": "2"}, 1),
}


def variant_overrides(precision: str | None, seed: int) -> list[str]:
    """--set values of a full variant: the whole quick profile (README command 1), with every model
    trained in `precision` when one is forced (None keeps the profile's: bf16, the control fp32)."""
    overrides = [f"seed={seed}"]
    if precision is not None:
        methods = load_profile("quick")["methods"]
        overrides.append(f"train.precision={precision}")
        overrides += [f"methods.{name}.precision={precision}" for name in methods if "precision" in methods[name]]
    return overrides


def read_run(workdir: Path) -> dict:
    """Every phenomena check's value, and per model clean / robust at the reference eps."""
    folder = workdir / "reports" / "reproduce"
    results = json.loads((folder / "results.json").read_text())
    checks = json.loads((folder / "phenomena.json").read_text())
    control = next(c for c in checks if c["name"].startswith("robust control"))
    models = {}
    for row in results["adaptive"]["models"]:
        eps = next(iter(row["robust"]))  # the reference eps comes first in the sweep
        models[row["name"]] = {"clean": row["clean"], "robust": row["robust"][eps], "eps": eps}
    return {"margin": control["value"], "threshold": control["threshold"], "passed": control["passed"],
            "detail": control["detail"], "models": models,
            "checks": [{k: c[k] for k in ("name", "value", "threshold", "unit", "passed")} for c in checks]}


def run_variant(name: str, root: Path, overrides: list[str]) -> dict:
    precision, env_extra, seed = VARIANTS[name]
    workdir = root / name
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "defendr_cli", "--workdir", str(workdir), "reproduce", "--json"]
    for item in variant_overrides(precision, seed) + overrides:
        command += ["--set", item]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return {"variant": name, "error": proc.stderr.strip().splitlines()[-1:] or ["?"], "seconds": seconds}
    out = json.loads(proc.stdout)
    train_seconds = {r["id"]: round(r["seconds"], 1) for r in out["stages"] if r["id"].startswith("train:")}
    return {"variant": name, "precision": precision or "profile", "env": env_extra, "seed": seed,
            "seconds": round(seconds, 1), "train_seconds": train_seconds,
            "calibration": out.get("calibration"), **read_run(workdir)}


# ------------------------------------------------------------------ control-only runs (cheap)
# The robust control does not depend on the baseline or the cached sets: retrain only it under other
# numerics (in a subprocess, so thread counts and ISA limits take effect) and attack it with the
# quick profile's adaptive settings on the same seeded test images; its margin is taken against the
# best paper defense of a full run (`--defenses-from`, a results file written by a full variant).

THREAD_ENV = {"t1": {"OMP_NUM_THREADS": "1"}, "t2": {"OMP_NUM_THREADS": "2"},
              "avx2": {"OMP_NUM_THREADS": "2", **AVX2}, "avx2t1": {"OMP_NUM_THREADS": "1", **AVX2}}
CONTROL_NAMES = "madry-<profile|fp32|bf16>-<t1|t2|avx2|avx2t1>[-seedN], e.g. madry-fp32-avx2-seed3"


def control_variant(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(changes to the profile's methods.madry, environment) of a control-only variant name."""
    match = re.fullmatch(r"madry-(profile|fp32|bf16)-(t1|t2|avx2|avx2t1)(?:-seed(\d+))?", name)
    if match is None:
        raise SystemExit(f"unknown control variant {name!r}: {CONTROL_NAMES}")
    precision, kernels, seed = match.groups()
    changes: dict[str, Any] = {} if precision == "profile" else {"precision": precision}
    if seed is not None:
        changes["seed"] = int(seed)
    return changes, THREAD_ENV[kernels]


def control_settings(changes: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    settings = apply_overrides(load_profile("quick"), overrides)
    seed = changes.get("seed")
    settings["methods"] = {CONTROL: {**settings["methods"][CONTROL],
                                     **{k: v for k, v in changes.items() if k != "seed"}}}
    if seed is not None:
        settings["seed"] = int(seed)
    settings["evaluate"]["adaptive_models"] = [CONTROL]
    return settings


def control_in_process(name: str, workdir: Path, overrides: list[str]) -> dict:
    """Train the control and attack it adaptively (this process's numerics); return its row."""
    changes, _ = control_variant(name)
    settings = control_settings(changes, overrides)
    runtime = Runtime.create("cpu", settings["precision"], settings["memory_format"])
    env = st.StageEnv(Workspace(workdir), runtime, settings, NullReporter())
    seed_everything(env.seed)
    started = time.perf_counter()
    st.pipeline_prepare(env)
    spec = st.method_specs(settings)[CONTROL]
    cpu0 = time.process_time()
    st.pipeline_train(env, CONTROL, spec)
    train_cpu = time.process_time() - cpu0
    config = replace(ev.evaluate_config(env, "control"), models=[CONTROL], adv_paths=[], eps_from_sets=None)
    result = evaluate_stage(env.workspace, config, runtime)
    row = result.adaptive.model(CONTROL)
    first = row.points[0]  # the reference eps comes first in the sweep
    return {"variant": name, "changes": changes, "clean": row.clean, "robust": first.robust, "eps": first.label,
            "train_precision": st.training_runtime(env, spec).precision, "threads": torch.get_num_threads(),
            "train_cpu_seconds": round(train_cpu, 1), "seconds": round(time.perf_counter() - started, 1)}


def run_control(name: str, root: Path, defenses: dict[str, float], overrides: list[str]) -> dict:
    _, env_extra = control_variant(name)
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(Path(__file__).resolve()), "--control-in-process", name,
               "--root", str(root)] + [f"--set={item}" for item in overrides]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"variant": name, "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    item = json.loads(proc.stdout.strip().splitlines()[-1])
    item["env"] = env_extra
    if defenses:
        best = max(defenses, key=defenses.get)
        item["margin"] = item["robust"] - defenses[best]
        item["best_defense"] = {best: defenses[best]}
    return item


def defense_numbers(path: Path) -> dict[str, float]:
    """The highest adaptive robust accuracy of each paper defense over the full runs in `path`."""
    best: dict[str, float] = {}
    runs = json.loads(path.read_text()).get("runs", []) if path.exists() else []
    for run in runs:
        for model, values in run.get("models", {}).items():
            if model != CONTROL:
                best[model] = max(best.get(model, 0.0), values["robust"])
    return best


def print_row(item: dict) -> None:
    if "error" in item:
        print(f"{item['variant']:14s} ERROR {item['error']}", flush=True)
        return
    models = item["models"]
    cells = " ".join(f"{m}={100 * v['robust']:.0f}/{100 * v['clean']:.0f}" for m, v in models.items())
    margin = "-" if item["margin"] is None else f"{100 * item['margin']:.1f}"
    print(f"{item['variant']:14s} margin {margin} pts ({'PASS' if item['passed'] else 'FAIL'}) "
          f"robust/clean % {cells}  {item['seconds']:.0f}s", flush=True)
    for check in item.get("checks", []):
        value = "-" if check["value"] is None else f"{100 * check['value']:.1f}"
        print(f"    {check['name']:60s} {value:>6s} (>= {100 * check['threshold']:.1f}) "
              f"{'PASS' if check['passed'] else 'FAIL'}", flush=True)


def print_control(item: dict) -> None:
    if "error" in item:
        print(f"{item['variant']:20s} ERROR {item['error']}", flush=True)
        return
    margin = item.get("margin")
    print(f"{item['variant']:20s} madry robust {100 * item['robust']:.0f}% clean {100 * item['clean']:.0f}% "
          f"(trained {item['train_precision']}, {item['threads']} threads, {item['train_cpu_seconds']:.0f} CPU-s)"
          + ("" if margin is None else f" margin {100 * margin:.1f} pts vs {item['best_defense']}"), flush=True)


def save(out_path: Path, key: str, item: dict) -> None:
    data = json.loads(out_path.read_text()) if out_path.exists() else {}
    data.setdefault("profile", "quick")
    runs = [r for r in data.get(key, []) if r["variant"] != item["variant"]] + [item]
    data[key] = runs
    out_path.write_text(json.dumps(data, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="", help=f"full runs: {', '.join(VARIANTS)}")
    parser.add_argument("--controls", default="", help=f"control-only runs: {CONTROL_NAMES}")
    parser.add_argument("--defenses-from", default=None, help="results JSON whose full runs give the defenses")
    parser.add_argument("--defense-robust", type=float, default=None,
                        help="the best paper defense's adaptive robust accuracy to take margins against "
                             "(instead of --defenses-from), e.g. 0.17")
    parser.add_argument("--root", default="/tmp/defendr-verdict-spread")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "verdict_spread.json"))
    parser.add_argument("--set", action="append", default=[], help="profile overrides for every run (smoke tests)")
    parser.add_argument("--control-in-process", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(args.root)
    if args.control_in_process:
        print(json.dumps(control_in_process(args.control_in_process, root / args.control_in_process, args.set)))
        return
    out_path = Path(args.out)
    for name in filter(None, args.variants.split(",")):
        item = run_variant(name, root, args.set)
        print_row(item)
        save(out_path, "runs", item)
    defenses = defense_numbers(Path(args.defenses_from or out_path)) if args.controls else {}
    if args.defense_robust is not None:
        defenses = {"best paper defense (given)": args.defense_robust}
    for name in filter(None, args.controls.split(",")):
        item = run_control(name, root, defenses, args.set)
        print_control(item)
        save(out_path, "controls", item)


if __name__ == "__main__":
    main()
