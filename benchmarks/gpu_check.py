"""Helpers of benchmarks/gpu_check.sh: a real-format JPEG folder, PGD-10 throughput with the
achieved TFLOP/s as a share of the GPU's bf16 peak, and the combined JSON.

    python benchmarks/gpu_check.py jpegs OUT --classes 20 --per-class 6 [--width 500 --height 375]
    python benchmarks/gpu_check.py pgd --device cuda --arch resnet101 --size 299 --batch 64 --out pgd.json
    python benchmarks/gpu_check.py combine --reproduce r.json --pgd pgd.json --seconds S --out result.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defendr_cli.core.attacks import pgd  # noqa: E402
from defendr_cli.core.attacks.base import frozen_model  # noqa: E402
from defendr_cli.core.calibration import calibrate, calibration_line  # noqa: E402
from defendr_cli.core.data.class_names import shipped_names  # noqa: E402
from defendr_cli.core.models.registry import build_classifier  # noqa: E402
from defendr_cli.core.runtime import Runtime  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; the first
# name fragment found in torch.cuda.get_device_name() wins, so longer fragments come first.
BF16_PEAK_TFLOPS = [
    ("GB200", 2500.0), ("B200", 2250.0), ("B100", 1750.0), ("GH200", 989.0), ("H200", 989.0),
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H800", 989.0), ("H20", 148.0),
    ("A100", 312.0), ("A800", 312.0), ("A30", 165.0), ("A40", 150.0), ("A10G", 70.0), ("A10", 125.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("RTX 6000 Ada", 364.0), ("RTX A6000", 155.0),
    ("RTX 4090", 165.0), ("RTX 3090", 71.0),
]


def bf16_peak_tflops(device_name: str) -> float | None:
    """The table's bf16 peak for a GPU name (None when unknown)."""
    for fragment, peak in BF16_PEAK_TFLOPS:
        if fragment.lower() in device_name.lower():
            return peak
    return None


def make_jpegs(out: Path, classes: int, per_class: int, width: int, height: int, seed: int = 0) -> None:
    """ImageNet layout: out/train/<wnid>/<wnid>_<i>.JPEG, RGB JPEGs (quality 90) of `width` x `height`,
    each class a different colour gradient with noise, the wnids the first ones ImageNet ships."""
    wnids = sorted(shipped_names())[:classes]
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    for k, wnid in enumerate(wnids):
        folder = out / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([(k * 53) % 256, (k * 97) % 256, (k * 151) % 256], dtype=np.float64)
        for i in range(per_class):
            base = colour[None, None, :] * (0.5 + 0.5 * (xs / width))[..., None] + (ys / height * 60)[..., None]
            pixels = np.clip(base + rng.normal(0, 25, size=(height, width, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"{wnid}_{i}.JPEG", quality=90)
    print(f"wrote {classes} classes x {per_class} JPEGs ({width}x{height}) under {out / 'train'}")


def attack_step_flops(model: torch.nn.Module, runtime: Runtime, size: int) -> float:
    """FLOPs of one PGD step (forward + gradient w.r.t. the input) on one image, counted by
    torch.utils.flop_counter on the executed kernels."""
    from torch.utils.flop_counter import FlopCounterMode  # heavy optional import, only here

    x = runtime.to_device(torch.rand(1, 3, size, size)).requires_grad_(True)
    with frozen_model(model), FlopCounterMode(display=False) as counter:
        with runtime.autocast():
            loss = torch.nn.functional.cross_entropy(model(x).float(), torch.zeros(1, dtype=torch.long, device=x.device))
        loss.backward()  # parameters frozen: only the input's gradient (autograd.grad clashes with the counter)
    return float(counter.get_total_flops())


def measure_pgd(device: str, arch: str, size: int, batch: int, iterations: int) -> dict:
    """PGD-10 images/s in bf16 (channels_last, as Runtime does), and TFLOP/s against the peak."""
    runtime = Runtime.create(device, "bf16")
    calibration = calibrate(runtime.device)
    print(f"calibration: {calibration_line(calibration)}")
    model = runtime.prepare_model(build_classifier(arch, 1000)).eval()
    images = runtime.to_device(torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)))
    labels = torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(1)).to(runtime.device)

    def run() -> None:
        pgd(model, images, labels, 4 / 255, steps=10, runtime=runtime, check_success=False)

    def sync() -> None:
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)

    run()
    sync()
    start = time.perf_counter()
    for _ in range(iterations):
        run()
    sync()
    seconds = (time.perf_counter() - start) / iterations
    step_flops = attack_step_flops(model, runtime, size)
    achieved = step_flops * 10 * batch / seconds / 1e12
    if runtime.device.type == "cuda":
        name = torch.cuda.get_device_name(runtime.device)
        peak, peak_source = bf16_peak_tflops(name), "vendor data sheet (table in benchmarks/gpu_check.py)"
    else:
        name = calibration["device_name"]
        peak, peak_source = calibration["matmul"]["bf16_gflops"] / 1e3, "calibrated bf16 matmul (CPU: no data-sheet peak)"
    figures = {"device": str(runtime.device), "device_name": name, "arch": arch, "image_size": size, "batch": batch,
               "iterations": iterations, "precision": "bf16", "channels_last": runtime.channels_last,
               "pgd10_images_per_s": batch / seconds, "seconds_per_batch": seconds,
               "step_gflops_per_image": step_flops / 1e9, "forward_backward_over_forward_note":
                   "counted: forward + input gradient (parameters frozen)",
               "achieved_tflops": achieved, "bf16_peak_tflops": peak, "peak_source": peak_source,
               "share_of_peak": achieved / peak if peak else None, "target_share": 0.4,
               "calibration": calibration}
    share = f"{100 * figures['share_of_peak']:.1f}% of a {1e3 * peak:.0f} GFLOP/s peak" if peak else "peak unknown"
    print(f"PGD-10 {arch} at {size} px, bf16, batch {batch}: {figures['pgd10_images_per_s']:.1f} images/s, "
          f"{1e3 * achieved:.1f} GFLOP/s ({share}; target >= 40%)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    jpegs = sub.add_parser("jpegs")
    jpegs.add_argument("out", type=Path)
    jpegs.add_argument("--classes", type=int, default=20)
    jpegs.add_argument("--per-class", type=int, default=6)
    jpegs.add_argument("--width", type=int, default=500)
    jpegs.add_argument("--height", type=int, default=375)
    bench = sub.add_parser("pgd")
    bench.add_argument("--device", default="cuda")
    bench.add_argument("--arch", default="resnet101")
    bench.add_argument("--size", type=int, default=299)
    bench.add_argument("--batch", type=int, default=64)
    bench.add_argument("--iterations", type=int, default=5)
    bench.add_argument("--out", type=Path, required=True)
    combine = sub.add_parser("combine")
    combine.add_argument("--reproduce", type=Path, required=True)
    combine.add_argument("--reproduce-seconds", type=float, required=True)
    combine.add_argument("--pgd", type=Path, required=True)
    combine.add_argument("--settings", default="")
    combine.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "jpegs":
        make_jpegs(args.out, args.classes, args.per_class, args.width, args.height)
    elif args.command == "pgd":
        args.out.write_text(json.dumps(measure_pgd(args.device, args.arch, args.size, args.batch, args.iterations), indent=2))
    else:
        reproduce = json.loads(args.reproduce.read_text())
        stages = [{"id": s["id"], "status": s["status"], "seconds": s.get("seconds")} for s in reproduce.get("stages", [])]
        result = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "settings": args.settings.split(),
                  "reproduce": {"seconds": args.reproduce_seconds, "stages": stages,
                                "stages_ran": sum(s["status"] == "ran" for s in stages),
                                "phenomena": reproduce.get("phenomena")},
                  "pgd": json.loads(args.pgd.read_text())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"reproduce: {len(stages)} stages in {args.reproduce_seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
