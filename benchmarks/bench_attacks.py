"""Attack throughput: Defendr's FGSM and PGD-10 against torchattacks, fp32 and bf16, and
three-eps FGSM (one gradient) against three separate FGSM runs.

Same model (ResNet-18 classifier from core.models.registry, normalization inside, briefly
trained on synthetic data), same inputs (channels_last unless --no-channels-last), same thread
count, one process. Labels are the model's own clean predictions, so clean accuracy
is 100% and "robust accuracy" is the fraction of predictions the attack did not change.
torchattacks is a benchmark-only dependency. Timed calls generate adversarial images only
(Defendr with check_success=False, as torchattacks does not evaluate); success checks are timed
separately where noted. Results go to
benchmarks/results/bench_attacks-<device>-<size>px-b<batch>-t<threads>.json.

    .venv/bin/python benchmarks/bench_attacks.py [--image-size 64] [--batch 32] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.attacks import fgsm, fgsm_multi, pgd
from defendr_cli.core.data.synthetic import generate_class_images
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.runtime import Runtime

RESULTS = Path(__file__).parent / "results"


def timed_together(fns: dict, repeats: int, device: torch.device) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds per call of each function, calls interleaved round-robin after one warm-up
    each (so a change of machine load hits all of them alike); returns (seconds, last outputs)."""
    outputs = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def synthetic_batch(n: int, size: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of the built-in synthetic dataset (10 classes, round robin), float [0,1]."""
    labels = torch.arange(n) % 10
    images = [generate_class_images(int(k), 1, size, seed=0, start=offset + i) for i, k in enumerate(labels)]
    return torch.from_numpy(np.concatenate(images)).float() / 255, labels


def train_briefly(model: torch.nn.Module, size: int, steps: int, device: torch.device) -> torch.nn.Module:
    """A few Adam steps on synthetic data so predictions are spread over the classes."""
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = synthetic_batch(256, size)
    images, labels = images.to(device), labels.to(device)
    for step in range(steps):
        rows = torch.arange(step * 32, step * 32 + 32) % 256
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images[rows]), labels[rows]).backward()
        optimizer.step()
    return model.eval()


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    diff = (a.float() - b.float()).abs()
    return {"exact": float((diff == 0).float().mean()), "within_1e-5": float((diff <= 1e-5).float().mean()),
            "max_abs_diff": float(diff.max())}


def robust_accuracy(model, adv: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(adv).argmax(1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eps", type=float, default=0.5 / 255,
                        help="Pixel eps; small because the briefly trained model is fragile (robust accuracy"
                             " must stay away from 0 for the fp32/bf16 comparison to mean anything).")
    parser.add_argument("--eval-images", type=int, default=256, help="Images for the fp32 vs bf16 robust accuracy.")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="Model and inputs in channels_last for all contenders (bf16 convs are faster so).")
    parser.add_argument("--train-steps", type=int, default=40, help="Adam steps on synthetic data before attacking.")
    args = parser.parse_args()

    import torchattacks

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    fp32, bf16 = Runtime(device, "fp32"), Runtime(device, "bf16")
    model = fp32.prepare_model(train_briefly(build_classifier("resnet18", 10), args.image_size,
                                             args.train_steps, device)).eval()
    images = fp32.to_device(synthetic_batch(args.batch, args.image_size, offset=10_000)[0])
    if args.channels_last:  # the same model and inputs for every contender
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        labels = model(images).argmax(1)
    report_classes = torch.bincount(labels.cpu(), minlength=10).tolist()
    eps, steps = args.eps, 10
    alpha = 2.5 * eps / steps
    n = args.batch
    report: dict = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                    else platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__, "torchattacks": torchattacks.__version__, "model": "resnet18",
                    "channels_last": args.channels_last,
                    "image_size": args.image_size, "batch": n, "eps": eps, "pgd_steps": steps, "repeats": args.repeats,
                    "train_steps": args.train_steps, "predicted_class_counts": report_classes}

    def line(name: str, seconds: float, ref_seconds: float | None = None, extra: str = "") -> None:
        ratio = f"  {ref_seconds / seconds:5.2f}x" if ref_seconds else ""
        print(f"{name:<34} {n / seconds:9.1f} img/s{ratio}  {extra}")

    def versus_torchattacks(label: str, ta_call, ours_call) -> dict:
        """Time torchattacks (fp32) and ours (fp32, bf16) together; print and return the figures."""
        t, out = timed_together({"ta": ta_call, "fp32": lambda: ours_call(fp32), "bf16": lambda: ours_call(bf16)},
                                args.repeats, device)
        figures = {
            "torchattacks_img_s": n / t["ta"], "fp32_img_s": n / t["fp32"], "bf16_img_s": n / t["bf16"],
            "fp32_ratio": t["ta"] / t["fp32"], "bf16_ratio": t["ta"] / t["bf16"],
            "agreement_fp32_vs_torchattacks": agreement(out["fp32"].adv, out["ta"]),
            "robust_acc_torchattacks": robust_accuracy(model, out["ta"], labels),
            "robust_acc_fp32": robust_accuracy(model, out["fp32"].adv, labels),
            "robust_acc_bf16": robust_accuracy(model, out["bf16"].adv, labels),
        }
        print(f"{label + ' torchattacks fp32':<34} {n / t['ta']:9.1f} img/s")
        line(f"{label} defendr fp32", t["fp32"], t["ta"], f"agree {figures['agreement_fp32_vs_torchattacks']['exact']:.4f}")
        line(f"{label} defendr bf16", t["bf16"], t["ta"])
        return figures

    ta_fgsm = torchattacks.FGSM(model, eps=eps)
    report["fgsm"] = versus_torchattacks(
        "FGSM", lambda: ta_fgsm(images, labels),
        lambda runtime: fgsm(model, images, labels, eps, runtime=runtime, check_success=False))
    # PGD-10 without random start, so the outputs are comparable
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    report["pgd10"] = versus_torchattacks(
        "PGD-10", lambda: ta_pgd(images, labels),
        lambda runtime: pgd(model, images, labels, eps, steps=steps, step_size=alpha, random_start=False,
                            runtime=runtime, check_success=False))

    # robust accuracy fp32 vs bf16 on more images (labels: clean predictions; evaluated in fp32)
    eval_images = fp32.to_device(synthetic_batch(args.eval_images, args.image_size, offset=20_000)[0])
    if args.channels_last:
        eval_images = eval_images.contiguous(memory_format=torch.channels_last)
    accuracy: dict[str, float] = {}
    for attack_name in ("fgsm", "pgd10"):
        for precision, runtime in (("fp32", fp32), ("bf16", bf16)):
            kept = 0
            for start in range(0, args.eval_images, n):
                x = eval_images[start:start + n]
                with torch.no_grad():
                    y = model(x).argmax(1)
                if attack_name == "fgsm":
                    adv = fgsm(model, x, y, eps, runtime=runtime, check_success=False).adv
                else:
                    adv = pgd(model, x, y, eps, steps=steps, step_size=alpha, random_start=False, runtime=runtime,
                              check_success=False).adv
                kept += robust_accuracy(model, adv, y) * x.shape[0]
            accuracy[f"{attack_name}_{precision}"] = kept / args.eval_images
    report["robust_accuracy_eval"] = {"images": args.eval_images, **accuracy}
    for attack_name in ("fgsm", "pgd10"):
        a32, a16 = accuracy[f"{attack_name}_fp32"], accuracy[f"{attack_name}_bf16"]
        print(f"robust accuracy {attack_name} on {args.eval_images} images: fp32 {a32:.1%}, bf16 {a16:.1%}"
              f" (difference {100 * (a16 - a32):+.1f} points)")

    # three-eps FGSM (one gradient) vs three separate runs, without and with success checks
    eps3 = [eps / 2, eps, 2 * eps]
    for check in (False, True):
        t, _ = timed_together({
            "three": lambda: [fgsm(model, images, labels, e, runtime=fp32, check_success=check) for e in eps3],
            "multi": lambda: fgsm_multi(model, images, labels, eps3, runtime=fp32, check_success=check)},
            args.repeats, device)
        t_three, t_multi = t["three"], t["multi"]
        key = "fgsm_three_eps" + ("_with_success" if check else "")
        report[key] = {"three_runs_img_s": n / t_three, "multi_img_s": n / t_multi, "ratio": t_three / t_multi}
        print(f"three-eps FGSM{' +success' if check else ''}: one gradient {t_three / t_multi:.2f}x three runs")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_attacks-{device.type}-{args.image_size}px-b{n}-t{args.threads}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
