"""Training benchmarks: our loop vs a minimal hand-written loop, bf16 vs fp32, and the clean test
accuracy each method reaches on the quick profile's synthetic data.

    .venv/bin/python benchmarks/bench_train.py [--threads 1] [--sections throughput,bf16,accuracy]

Sections
  throughput  images/s of `core.training.loop.train` (whole call: data, validation, checkpoints)
              vs a hand-written PyTorch loop (same model, data reader, batch size, optimizer,
              precision). Target ratio >= 0.9.
  bf16        images/s of our loop with --precision bf16 vs fp32, resnet18 at 96 px (matmul-bound).
              Target >= 1.5x on this CPU.
  accuracy    quick profile (synthetic, 10 classes, 32x32, 240/20/40 per class, tinyresnet,
              8 epochs, Adam lr 2e-3, wd 5e-4, batch 64): baseline, then FGSM/PGD 8/255 sets of the
              train split from the baseline (attack stage), then adv / alp / clp / lsq; clean test
              accuracy and the FGSM-8/255 transfer test accuracy of each, with training time.
Prints each section and writes benchmarks/results/bench_train.json (sections not run are kept), with
the machine's calibration (core.calibration: fp32/bf16 matmul and conv GFLOP/s) under `calibration`.
The figures count every second of the `train()` call: model build, data, validation, checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defendr_cli.core.calibration import calibrate, calibration_line  # noqa: E402
from defendr_cli.core.io.reader import SplitReader  # noqa: E402
from defendr_cli.core.models.registry import build_classifier  # noqa: E402
from defendr_cli.core.runtime import Runtime, seed_everything  # noqa: E402
from defendr_cli.core.training.loop import make_context, train  # noqa: E402
from defendr_cli.core.training.recipes.registry import train_options  # noqa: E402
from defendr_cli.core.workspace import Workspace  # noqa: E402
from tests.training.train_helpers import write_tiny_cache  # noqa: E402

QUICK_TRAIN = dict(arch="tinyresnet", epochs=8, batch_size=64, lr=2e-3, weight_decay=5e-4)


def make_workspace(root: Path, *, classes: int, size: int, per_class: dict[str, int]) -> tuple[Workspace, Path]:
    ws = Workspace(root)
    cache = write_tiny_cache(ws.path_for("data", "syn"), num_classes=classes, image_size=size, per_class=per_class)
    return ws, cache


def hand_loop(arch: str, cache: Path, *, epochs: int, batch_size: int, precision: str, seed: int = 0) -> float:
    """The minimal loop: shuffle, read, forward/backward/step under autocast. Returns images/s."""
    seed_everything(seed)
    with SplitReader(cache, "train") as reader:
        model = build_classifier(arch, int(reader.info.num_classes))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        labels = torch.as_tensor(np.asarray(reader.labels))
        dtype = torch.bfloat16 if precision == "bf16" else None
        model.train()
        started, seen = time.perf_counter(), 0
        for _ in range(epochs):
            order = torch.randperm(len(reader))
            for i in range(0, len(reader), batch_size):
                rows = order[i:i + batch_size].numpy()
                x, y = reader.read(rows), labels[rows]
                with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    loss = F.cross_entropy(model(x).float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen += len(rows)
        return seen / (time.perf_counter() - started)


def our_loop(ws: Workspace, arch: str, *, epochs: int, batch_size: int, precision: str, name: str) -> tuple[float, dict]:
    """images/s of the whole train() call (train images only counted; validation is overhead)."""
    context = make_context(ws, Runtime(torch.device("cpu"), precision))
    options = train_options("baseline", dict(name=name, arch=arch, epochs=epochs, batch_size=batch_size,
                                             lr=1e-3, schedule="none", force=True))
    started = time.perf_counter()
    result = train(options, context)
    seconds = time.perf_counter() - started
    return context.data_info.split_counts["train"] * epochs / seconds, result.best


def section_throughput(tmp: Path, repeats: int) -> dict:
    ws, cache = make_workspace(tmp / "tp", classes=10, size=32, per_class={"train": 128, "val": 4, "test": 0})
    ours, hand = [], []
    for r in range(repeats):  # alternate to share the machine's noise fairly
        hand.append(hand_loop("tinyresnet", cache, epochs=3, batch_size=64, precision="fp32"))
        ours.append(our_loop(ws, "tinyresnet", epochs=3, batch_size=64, precision="fp32", name=f"tp{r}")[0])
    return {"model": "tinyresnet 32px, 1280 train + 40 val images, batch 64, fp32, 3 epochs",
            "ours_img_s": max(ours), "hand_img_s": max(hand), "ratio": max(ours) / max(hand),
            "all_ours": ours, "all_hand": hand, "target_ratio": 0.9}


def section_bf16(tmp: Path, repeats: int) -> dict:
    ws, cache = make_workspace(tmp / "bf", classes=10, size=96, per_class={"train": 48, "val": 2, "test": 0})
    fp32, bf16, hand32, hand16 = [], [], [], []
    for r in range(repeats):
        fp32.append(our_loop(ws, "resnet18", epochs=1, batch_size=32, precision="fp32", name=f"f{r}")[0])
        bf16.append(our_loop(ws, "resnet18", epochs=1, batch_size=32, precision="bf16", name=f"b{r}")[0])
        hand32.append(hand_loop("resnet18", cache, epochs=1, batch_size=32, precision="fp32"))
        hand16.append(hand_loop("resnet18", cache, epochs=1, batch_size=32, precision="bf16"))
    return {"model": "resnet18 96px, 480 train + 20 val images, batch 32, 1 epoch",
            "ours_fp32_img_s": max(fp32), "ours_bf16_img_s": max(bf16), "speedup": max(bf16) / max(fp32),
            "hand_fp32_img_s": max(hand32), "hand_bf16_img_s": max(hand16),
            "ratio_ours_vs_hand_fp32": max(fp32) / max(hand32), "ratio_ours_vs_hand_bf16": max(bf16) / max(hand16),
            "target_speedup": 1.5}


@torch.no_grad()
def accuracy(ws: Workspace, model_name: str, images: torch.Tensor, labels: torch.Tensor) -> float:
    from defendr_cli.core.models.loading import load_model

    model = load_model(ws, model_name).module
    correct = sum(int((model(images[i:i + 200]).argmax(1) == labels[i:i + 200]).sum()) for i in range(0, len(labels), 200))
    return correct / len(labels)


def section_accuracy(tmp: Path) -> dict:
    from defendr_cli.core.attacks import parse_eps_list
    from defendr_cli.core.stages.attack import AttackStageConfig, run_attack
    from defendr_cli.core.io.adversarial import AdvSetReader

    ws, cache = make_workspace(tmp / "acc", classes=10, size=32, per_class={"train": 240, "val": 20, "test": 40})
    context = make_context(ws, Runtime())
    rows, timings = {}, {}

    def run(method: str, **extra) -> None:
        started = time.perf_counter()
        result = train(train_options(method, {**QUICK_TRAIN, **extra}), context)
        timings[result.name] = time.perf_counter() - started
        rows[result.name] = {"best_val_acc": result.best.val_acc, "best_epoch": result.best.epoch,
                             "train_seconds": round(timings[result.name], 1)}

    run("baseline")
    attack_seconds = {}
    for attack, steps, splits in (("fgsm", None, ["train", "test"]), ("pgd", 10, ["train"])):
        started = time.perf_counter()
        run_attack(ws, AttackStageConfig(attack=attack, eps=parse_eps_list("8/255"), steps=steps,
                                         model="baseline", splits=splits, preview=False), Runtime())
        attack_seconds[attack] = round(time.perf_counter() - started, 1)
    run("adv", adv=["fgsm-eps8_255"])
    run("alp", adv=["pgd-eps8_255-s10"], pair_weight=0.5)
    run("clp", pair_weight=0.5)
    run("lsq", squeeze_weight=0.05)
    with SplitReader(cache, "test") as reader:
        clean_x, clean_y = reader.read(np.arange(len(reader))), torch.as_tensor(np.asarray(reader.labels))
    with AdvSetReader(ws.path_for("adv", "fgsm-eps8_255-baseline-test")) as reader:
        adv_x, adv_y = reader.read(np.arange(len(reader))), torch.as_tensor(reader.labels)
    for name in rows:
        rows[name]["clean_test_acc"] = accuracy(ws, name, clean_x, clean_y)
        rows[name]["fgsm8_transfer_test_acc"] = accuracy(ws, name, adv_x, adv_y)
    return {"setup": "quick profile: synthetic 10 classes 32px, 2400/200/400, tinyresnet, 8 epochs, Adam 2e-3, "
                     "wd 5e-4, batch 64; adv sets from the baseline (FGSM/PGD-10 8/255)",
            "methods": rows, "attack_seconds": attack_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared; default 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sections", default="throughput,bf16,accuracy")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_train.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}  # sections not run now are kept
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                           "torch": torch.__version__, "python": platform.python_version(),
                          "load_average_at_start": list(os.getloadavg())}
    results["calibration"] = calibrate("cpu", args.threads)  # the yardstick: compare machines by ratios
    print(f"calibration: {calibration_line(results['calibration'])}")
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections.split(","):
            started = time.perf_counter()
            if section == "throughput":
                results[section] = section_throughput(Path(tmp), args.repeats)
            elif section == "bf16":
                results[section] = section_bf16(Path(tmp), args.repeats)
            elif section == "accuracy":
                results[section] = section_accuracy(Path(tmp))
            else:
                parser.error(f"unknown section {section}")
            results[section]["section_seconds"] = round(time.perf_counter() - started, 1)
            print(f"== {section}")
            print(json.dumps(results[section], indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
