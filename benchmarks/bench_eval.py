"""Adaptive-evaluation speed: Defendr's `standard` suite against torchattacks.AutoAttack (standard).

Same model (tinyresnet or resnet18 from core.models.registry at 32 px, normalization inside,
briefly trained on the built-in synthetic data, optionally with a few PGD adversarial-training
steps so that the later attacks of both cascades have images left to work on), same images (the
synthetic test images after the training ones), same eps (8/255 L-inf), same thread count, one
process. Both cascades attack only the images still standing; torchattacks' standard version also
runs FAB-T, which Defendr's suite does not, and its APGD / APGD-T run 10 steps (torchattacks'
defaults) where the published AutoAttack and Defendr's `standard` run 100: the suite is timed both
at its own budget and at torchattacks' (`ours_matched_budget`). Reported: images/s of each, their ratio (ours /
theirs, >= 1.0 means we are at least as fast), robust accuracy of each (target: ours no higher
than theirs + 0.5 point), the per-attack time of ours, and the machine's fp32 matmul speed in
GFLOP/s so that figures from different machines compare. torchattacks is a benchmark-only
dependency. Output: benchmarks/results/bench_eval.json.

    .venv/bin/python benchmarks/bench_eval.py [--arch tinyresnet] [--images 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.attacks import pgd
from defendr_cli.core.data.synthetic import generate_class_images
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack, run_suite
from defendr_cli.core.evaluation.adaptive.plan import SUITES, SuiteEntry, resolve_suite
from defendr_cli.core.models.registry import build_classifier

RESULTS = Path(__file__).parent / "results"
CLASSES = 10
EPS = 8 / 255
# Calibration hook: no defendr_cli/core/calibration.py or benchmarks/calibrate.py existed on main when
# this benchmark was written. When one lands, record its figures here (e.g. calibration.measure()).
CALIBRATION = None


def synthetic(n: int, size: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of the synthetic dataset (classes round robin), float32 (n, 3, size, size) in [0, 1]."""
    labels = torch.arange(n) % CLASSES
    images = [generate_class_images(int(k), 1, size, seed=0, start=offset + i) for i, k in enumerate(labels)]
    return torch.from_numpy(np.concatenate(images)).float() / 255, labels


def train(arch: str, size: int, steps: int, adv_steps: int, seed: int) -> torch.nn.Module:
    """Adam on 512 synthetic images: `steps` clean steps, then `adv_steps` steps on half-PGD-3 batches."""
    torch.manual_seed(seed)
    model = build_classifier(arch, CLASSES).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images, labels = synthetic(512, size, 0)
    for step in range(steps + adv_steps):
        rows = torch.arange(step * 64, step * 64 + 64) % 512
        x, y = images[rows], labels[rows]
        if step >= steps:
            half = len(rows) // 2
            adv = pgd(model, x[:half], y[:half], EPS, steps=3, check_success=False, eval_mode=False).adv
            x = torch.cat([adv.detach(), x[half:]])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def matmul_gflops(n: int = 512, repeats: int = 10) -> float:
    """fp32 matmul speed of this machine at the current thread count (GFLOP/s, best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def matched_entries() -> list[SuiteEntry]:
    """`standard` with torchattacks.AutoAttack's budgets: its APGD and APGD-T run 10 steps (the
    torchattacks defaults; the published AutoAttack runs 100), Square 5000 queries."""
    return [replace(e, params={**e.params, "steps": 10}) if "steps" in e.params else e for e in SUITES["standard"]]


def timed_suite(model, images, labels, batch: int, entries) -> tuple[float, dict, dict[str, float]]:
    """Seconds, SuiteResult summary and seconds per attack of a suite."""
    per_attack: dict[str, float] = {}

    def timing(attack: SuiteAttack) -> SuiteAttack:
        def run(*args):
            start = time.perf_counter()
            out = attack.run(*args)
            per_attack[attack.name] = per_attack.get(attack.name, 0.0) + time.perf_counter() - start
            return out
        return SuiteAttack(attack.name, run, attack.gradient_free)

    attacks = [timing(a) for a in resolve_suite(entries, EPS)]
    start = time.perf_counter()
    result = run_suite(model, images, labels, attacks, seed=0, batch_size=batch)
    return time.perf_counter() - start, result.to_dict(), per_attack


def timed_autoattack(model, images, labels, batch: int) -> tuple[float, float]:
    """Seconds and robust accuracy of torchattacks.AutoAttack(version='standard')."""
    import torchattacks  # benchmark-only optional dependency

    attack = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard", n_classes=CLASSES, seed=0)
    start = time.perf_counter()
    advs = [attack(images[i:i + batch], labels[i:i + batch]) for i in range(0, len(images), batch)]
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = float((model(torch.cat(advs)).argmax(1) == labels).float().mean())
    return seconds, robust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tinyresnet")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--adv-steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_eval.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = train(args.arch, args.image_size, args.train_steps, args.adv_steps, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    images, labels = synthetic(args.images, args.image_size, 10_000)
    with torch.no_grad():
        clean = float((model(images).argmax(1) == labels).float().mean())
    gflops = matmul_gflops()
    print(f"clean accuracy {100 * clean:.1f}%, matmul {gflops:.1f} GFLOP/s", flush=True)
    theirs_s, theirs_robust = timed_autoattack(model, images, labels, args.batch)
    print(f"torchattacks: {theirs_s:.1f} s, robust {100 * theirs_robust:.1f}%", flush=True)
    matched_s, matched, matched_per_attack = timed_suite(model, images, labels, args.batch, matched_entries())
    print(f"ours matched: {matched_s:.1f} s, robust {100 * matched['robust']:.1f}%", flush=True)
    ours_s, ours, per_attack = timed_suite(model, images, labels, args.batch, SUITES["standard"])
    out = {
        "model": args.arch, "image_size": args.image_size, "images": args.images, "eps": "8/255",
        "threads": args.threads, "machine": platform.platform(), "torch": torch.__version__,
        "matmul_fp32_gflops": round(gflops, 2), "calibration": CALIBRATION, "clean_accuracy": clean,
        "ours": {"suite": "standard (APGD-CE, APGD-T 9 targets, Square 5000)", "seconds": ours_s,
                 "images_per_s": args.images / ours_s, "robust_accuracy": ours["robust"],
                 "after": ours["after"], "attacked": ours["attacked"], "seconds_per_attack": per_attack},
        "ours_matched_budget": {"suite": "standard with APGD/APGD-T at 10 steps (torchattacks' budgets)",
                                "seconds": matched_s, "images_per_s": args.images / matched_s,
                                "robust_accuracy": matched["robust"], "after": matched["after"],
                                "attacked": matched["attacked"], "seconds_per_attack": matched_per_attack,
                                "speed_ratio": theirs_s / matched_s,
                                "robust_gap_points": 100 * (matched["robust"] - theirs_robust)},
        "torchattacks": {"attack": "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square)", "seconds": theirs_s,
                         "images_per_s": args.images / theirs_s, "robust_accuracy": theirs_robust},
        "speed_ratio": theirs_s / ours_s,
        "robust_gap_points": 100 * (ours["robust"] - theirs_robust),
    }
    out["targets_met"] = {"speed >= 1.0x": out["speed_ratio"] >= 1.0,
                          "robust <= theirs + 0.5 pt": out["robust_gap_points"] <= 0.5}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"machine fp32 matmul: {gflops:.1f} GFLOP/s ({args.threads} thread(s)); clean accuracy {100 * clean:.1f}%")
    print(f"ours  (standard suite): {ours_s:.1f} s, {args.images / ours_s:.2f} img/s, robust {100 * ours['robust']:.1f}%"
          "  after " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in ours["after"].items()))
    attacked = ours["attacked"]
    print("  per attack: " + ", ".join(f"{k} {v:.1f} s on {attacked[k]} images" for k, v in per_attack.items()))
    print(f"ours  (standard, matched 10-step budget): {matched_s:.1f} s, {args.images / matched_s:.2f} img/s, "
          f"robust {100 * matched['robust']:.1f}%, ratio {theirs_s / matched_s:.2f}x")
    print(f"torchattacks AutoAttack: {theirs_s:.1f} s, {args.images / theirs_s:.2f} img/s, "
          f"robust {100 * theirs_robust:.1f}%")
    print(f"speed ratio (ours/theirs, images/s): {out['speed_ratio']:.2f}x; robust gap {out['robust_gap_points']:+.1f} pts")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
