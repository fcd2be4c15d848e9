"""Peak resident memory of prepare, train, attack and evaluate on a small and a large cache.

Issue 24 item 5: memory must not grow with the data. Each command runs as its own subprocess
(`python -m defendr_cli ...`) in a fresh workspace per cache size; its peak resident set size is
read from `os.wait4` (ru_maxrss of exactly that child, in KiB on Linux). The model and batch size
are fixed across sizes; only the number of classes (hence images) changes. Printed per command:
the peak RSS on each size (GB) and their ratio (target: large / small <= 1.5). Saved to
benchmarks/results/bench_memory.json (or --out).

The commands, per size (synthetic cache, `--per-class` images per class at `--image-size`):

    defendr prepare --source synthetic --classes C --per-class 70 --image-size 299
    defendr train baseline --arch ARCH --epochs 1 --batch-size 32 --name mem   (streams the train split)
    defendr attack fgsm --model mem --eps 8/255 --split SPLITS --batch-size 32
    defendr evaluate --model mem --batch-size 32                 (every adversarial test set)

At 201 x 70 x 299 the cache is ~3.8 GB; the large run is slow on a small CPU (tinyresnet trains
at a few images/s at 299 on 2 cores): `--arch tinycnn` keeps the same data sizes with ~25x less
compute (and a smaller base footprint, so the ratio is a stricter test).

    nice .venv/bin/python benchmarks/bench_memory.py [--classes 10,201] [--arch tinyresnet]
        [--image-size 299] [--per-class 70] [--batch-size 32] [--attack-splits test] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("prepare", "train", "attack", "evaluate")


def command_lines(args: argparse.Namespace, classes: int) -> dict[str, list[str]]:
    """The CLI arguments of each measured command for a cache of `classes` classes."""
    batch = str(args.batch_size)
    return {
        "prepare": ["prepare", "--source", "synthetic", "--classes", str(classes), "--per-class",
                    str(args.per_class), "--image-size", str(args.image_size), "--workers", "1"],
        "train": ["train", "baseline", "--arch", args.arch, "--epochs", "1", "--batch-size", batch,
                  "--name", "mem", "--precision", args.precision],
        "attack": ["attack", "fgsm", "--model", "mem", "--eps", "8/255", "--split", args.attack_splits,
                   "--batch-size", batch],
        "evaluate": ["evaluate", "--model", "mem", "--batch-size", batch],
    }


def run_measured(cli_args: list[str], workdir: Path, threads: int) -> dict:
    """Run one CLI command; its wall seconds and peak RSS (GB, from os.wait4)."""
    env = {**os.environ, "DEFENDR_WORKDIR": str(workdir), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    with open(workdir / "log.txt", "a") as log:
        log.write(f"$ defendr {' '.join(cli_args)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "defendr_cli", *cli_args], env=env, cwd=workdir,
                                stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`defendr {' '.join(cli_args)}` failed (exit {proc.returncode}); see {workdir / 'log.txt'}")
    return {"peak_rss_GB": round(usage.ru_maxrss * 1024 / 1e9, 3), "wall_s": round(wall, 1)}


def measure_size(args: argparse.Namespace, classes: int, root: Path) -> dict:
    """Every command on a fresh workspace with a cache of `classes` classes."""
    workdir = root / f"classes{classes}"
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"classes": classes, "images": classes * args.per_class}
    for name, cli_args in command_lines(args, classes).items():
        out[name] = run_measured(cli_args, workdir, args.threads)
        print(f"  {classes} classes: {name:<8} peak RSS {out[name]['peak_rss_GB']:.2f} GB "
              f"({out[name]['wall_s']:.0f} s)", flush=True)
        if name == "prepare":
            caches = sorted((workdir / "data").glob("*.h5"))
            out["cache_GB"] = round(sum(p.stat().st_size for p in caches) / 1e9, 3)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default="10,201", help="small,large class counts")
    parser.add_argument("--per-class", type=int, default=70)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--arch", default="tinyresnet")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--attack-splits", default="test", help="splits the attack command attacks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where the workspaces go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_memory.json")
    args = parser.parse_args()
    small, large = (int(c) for c in args.classes.split(","))
    root = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.workdir))
    need_GB = 2.2 * large * args.per_class * 3 * args.image_size ** 2 / 1e9  # cache + fp16 adv sets, rough
    free_GB = shutil.disk_usage(root).free / 1e9
    if free_GB < need_GB:
        raise SystemExit(f"{root} has {free_GB:.1f} GB free; the large run needs about {need_GB:.1f} GB")
    print(f"workspaces under {root}; {args.arch}, batch {args.batch_size}, {args.image_size} px, "
          f"{args.per_class} images per class", flush=True)
    sizes = [measure_size(args, classes, root) for classes in (small, large)]
    ratios = {name: round(sizes[1][name]["peak_rss_GB"] / sizes[0][name]["peak_rss_GB"], 3) for name in COMMANDS}
    for name in COMMANDS:
        verdict = "ok" if ratios[name] <= 1.5 else "FAIL (> 1.5x)"
        print(f"{name:<8} {small} classes {sizes[0][name]['peak_rss_GB']:.2f} GB -> {large} classes "
              f"{sizes[1][name]['peak_rss_GB']:.2f} GB: {ratios[name]:.2f}x {verdict}")
    payload = {"benchmark": "bench_memory", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "load_average_1min": round(os.getloadavg()[0], 2)},
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "commands": {name: " ".join(["defendr", *lines]) for name, lines in command_lines(args, large).items()},
               "sizes": sizes, "ratio_large_over_small": ratios, "target_ratio": 1.5,
               "all_within_target": all(r <= 1.5 for r in ratios.values())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"saved {args.out}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
