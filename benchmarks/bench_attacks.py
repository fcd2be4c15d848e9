"""Attack throughput: Defendr's FGSM and PGD-10 against torchattacks, fp32 and bf16, measured
against this machine's own bf16/fp32 conv ratio; plus the layout, dtype-cast and torch.compile
studies, and three-eps FGSM (one gradient) against three separate FGSM runs.

Configurations (default): ResNet-18 at 64 px (batch 32, briefly trained) and ResNet-50 at 224 px
(batch 4, untrained: its robust accuracy only compares fp32 with bf16 on the same batch). The
target for bf16 is a speed-up over torchattacks fp32 of at least 0.7 x the calibrated bf16/fp32
conv ratio (core.calibration), with robust accuracy within 1 point of fp32.

Per configuration: same model (classifier from core.models.registry, normalization inside), same
inputs (channels_last unless --no-channels-last, as Runtime does for bf16), same thread
count, one process. Labels are the model's own clean predictions, so clean accuracy
is 100% and "robust accuracy" is the fraction of predictions the attack did not change.
torchattacks is a benchmark-only dependency. Timed calls generate adversarial images only
(Defendr with check_success=False, as torchattacks does not evaluate); success checks are timed
separately where noted. Results (with the calibration) go to
benchmarks/results/bench_attacks-<device>-t<threads>.json.

    .venv/bin/python benchmarks/bench_attacks.py [--configs resnet18:64:32,resnet50:224:4] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.attacks import fgsm, fgsm_multi, pgd
from defendr_cli.core.calibration import calibrate, calibration_line
from defendr_cli.core.data.synthetic import generate_class_images
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.runtime import Runtime

from attack_studies import compile_study, dtype_cast_study, layout_study, timed_together  # benchmarks/ helper

RESULTS = Path(__file__).parent / "results"


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



def run_config(arch: str, size: int, n: int, args, device: torch.device, target_ratio: float) -> dict:
    """Every measurement for one (architecture, image size, batch); prints and returns the figures."""
    import torchattacks  # benchmark-only dependency

    print(f"== {arch} at {size} px, batch {n}")
    torch.manual_seed(0)
    fp32, bf16 = Runtime(device, "fp32"), Runtime(device, "bf16")
    train_steps = args.train_steps if arch == "resnet18" else 0
    model = build_classifier(arch, 10)
    model = fp32.prepare_model(train_briefly(model, size, train_steps, device) if train_steps else model.to(device)).eval()
    images = fp32.to_device(synthetic_batch(n, size, offset=10_000)[0])
    if args.channels_last:  # the same model and inputs for every contender
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        labels = model(images).argmax(1)
    eps, steps = args.eps, 10
    alpha = 2.5 * eps / steps
    repeats = args.repeats if size <= 96 else 1
    report: dict = {"model": arch, "image_size": size, "batch": n, "channels_last": args.channels_last,
                    "train_steps": train_steps, "eps": eps, "pgd_steps": steps, "repeats": repeats,
                    "predicted_class_counts": torch.bincount(labels.cpu(), minlength=10).tolist()}

    def line(name: str, seconds: float, ref_seconds: float | None = None, extra: str = "") -> None:
        ratio = f"  {ref_seconds / seconds:5.2f}x" if ref_seconds else ""
        print(f"{name:<34} {n / seconds:9.2f} img/s{ratio}  {extra}")

    def versus_torchattacks(label: str, ta_call, ours_call) -> dict:
        """Time torchattacks (fp32) and ours (fp32, bf16) together; print and return the figures."""
        t, out = timed_together({"ta": ta_call, "fp32": lambda: ours_call(fp32), "bf16": lambda: ours_call(bf16)},
                                repeats, device)
        figures = {
            "torchattacks_img_s": n / t["ta"], "fp32_img_s": n / t["fp32"], "bf16_img_s": n / t["bf16"],
            "fp32_ratio": t["ta"] / t["fp32"], "bf16_ratio": t["ta"] / t["bf16"],
            "bf16_ratio_over_target": t["ta"] / t["bf16"] / target_ratio,
            "agreement_fp32_vs_torchattacks": agreement(out["fp32"].adv, out["ta"]),
            "robust_acc_torchattacks": robust_accuracy(model, out["ta"], labels),
            "robust_acc_fp32": robust_accuracy(model, out["fp32"].adv, labels),
            "robust_acc_bf16": robust_accuracy(model, out["bf16"].adv, labels),
        }
        print(f"{label + ' torchattacks fp32':<34} {n / t['ta']:9.2f} img/s")
        line(f"{label} defendr fp32", t["fp32"], t["ta"], f"agree {figures['agreement_fp32_vs_torchattacks']['exact']:.4f}")
        line(f"{label} defendr bf16", t["bf16"], t["ta"],
             f"target {target_ratio:.2f}x: {'met' if t['ta'] / t['bf16'] >= target_ratio else 'NOT met'}")
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

    report["layout"] = layout_study(model, images, labels, device, repeats)
    report["dtype_casts"] = dtype_cast_study(model, images, labels, device, repeats)
    if args.compile and arch == "resnet18":
        report["compile"] = compile_study(model, images, labels, device, repeats, realistic_images=args.realistic_images)

    if train_steps:
        report["robust_accuracy_eval"] = robust_accuracy_eval(model, args, size, n, fp32, bf16, eps, steps, alpha)
        report["fgsm_three_eps"] = three_eps(model, images, labels, eps, fp32, repeats, device, n)
    return report


def robust_accuracy_eval(model, args, size: int, n: int, fp32: Runtime, bf16: Runtime, eps: float, steps: int,
                         alpha: float) -> dict:
    """Robust accuracy (labels: clean predictions; evaluated in fp32) of fp32 and bf16 attacks."""
    eval_images = fp32.to_device(synthetic_batch(args.eval_images, size, offset=20_000)[0])
    if args.channels_last:
        eval_images = eval_images.contiguous(memory_format=torch.channels_last)
    accuracy: dict[str, float] = {}
    for attack_name in ("fgsm", "pgd10"):
        for precision, runtime in (("fp32", fp32), ("bf16", bf16)):
            kept = 0.0
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
    for attack_name in ("fgsm", "pgd10"):
        a32, a16 = accuracy[f"{attack_name}_fp32"], accuracy[f"{attack_name}_bf16"]
        print(f"robust accuracy {attack_name} on {args.eval_images} images: fp32 {a32:.1%}, bf16 {a16:.1%}"
              f" (difference {100 * (a16 - a32):+.1f} points; target within 1)")
    return {"images": args.eval_images, **accuracy}


def three_eps(model, images, labels, eps: float, fp32: Runtime, repeats: int, device, n: int) -> dict:
    """Three-eps FGSM (one gradient) vs three separate runs, without and with success checks."""
    eps3 = [eps / 2, eps, 2 * eps]
    out = {}
    for check in (False, True):
        t, _ = timed_together({
            "three": lambda: [fgsm(model, images, labels, e, runtime=fp32, check_success=check) for e in eps3],
            "multi": lambda: fgsm_multi(model, images, labels, eps3, runtime=fp32, check_success=check)},
            repeats, device)
        key = "with_success" if check else "without_success"
        out[key] = {"three_runs_img_s": n / t["three"], "multi_img_s": n / t["multi"], "ratio": t["three"] / t["multi"]}
        print(f"three-eps FGSM{' +success' if check else ''}: one gradient {t['three'] / t['multi']:.2f}x three runs")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="resnet18:64:32,resnet50:224:4", help="arch:size:batch, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (1 for images above 96 px)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eps", type=float, default=0.5 / 255,
                        help="Pixel eps; small because the briefly trained model is fragile (robust accuracy"
                             " must stay away from 0 for the fp32/bf16 comparison to mean anything).")
    parser.add_argument("--eval-images", type=int, default=128, help="Images for the fp32 vs bf16 robust accuracy.")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="Model and inputs in channels_last for all contenders (as Runtime does for bf16).")
    parser.add_argument("--train-steps", type=int, default=40, help="Adam steps on synthetic data (ResNet-18 only).")
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile (ResNet-18 only; slow to compile).")
    parser.add_argument("--realistic-images", type=int, default=1000,
                        help="Images one realistic attack run covers (the quick profile's test split), for the"
                             " compile pay-back estimate.")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import torchattacks  # benchmark-only dependency

    calibration = calibrate(device, args.threads)
    target_ratio = 0.7 * calibration["bf16_fp32_conv_ratio"]
    print(f"calibration: {calibration_line(calibration)}")
    print(f"target: bf16 attack speed-up over torchattacks fp32 >= 0.7 x conv ratio = {target_ratio:.2f}x")
    report: dict = {"device": str(device), "threads": args.threads, "torch": torch.__version__,
                    "torchattacks": torchattacks.__version__, "calibration": calibration,
                    "target_bf16_speedup": target_ratio, "load_average_at_start": list(os.getloadavg()),
                    "configs": {}}
    for spec in args.configs.split(","):
        arch, size, batch = spec.split(":")
        report["configs"][f"{arch}-{size}px-b{batch}"] = run_config(arch, int(size), int(batch), args, device,
                                                                     target_ratio)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_attacks-{device.type}-t{args.threads}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
