"""`--suite fast` against AutoAttack's standard version, on the same images, in one run (issue 21).

For every deterministic model of a workdir (by default the quick profile's trained models, its
`dunet-alp-clp` ensemble and a longer-trained robust control `madry-long`), on the same clean
images (the cache's test split, then its val split; eps 8/255 L-inf, pixel units):

- `fast`: Defendr's SUITES['fast'] (core.evaluation.adaptive.plan);
- `standard`: AutoAttack's standard version built from the registry attacks here: APGD-CE 100 steps,
  APGD-T 9 targets x 100 steps, FAB-T 9 targets x 100 steps, Square 5000 queries, each on the images
  still standing (the cascade of core.evaluation.adaptive.cascade);
- `torchattacks`: torchattacks' AutoAttack standard list with the reference's 100 steps (its own
  defaults are 10): MultiAttack(APGD-CE, APGD-T, FAB multi-targeted, Square 5000), seed 0.

Per suite: robust accuracy, wall time, and forward / backward passes counted at the model:
Defendr's attacks through `count_passes` (per image, attributed with on_rows), torchattacks' through
a wrapper that adds the batch size of every call (it attacks subsets without declaring them, so only
its totals are counted). Passes are those of the attacks (each attack's own success check
included); the cascade's clean and per-stage classification passes (1 + one per attack on the
images it attacked, the same for every cascade) are not. Target of the issue: fast's robust
accuracy within 0.5 points of standard's and fast's forward+backward passes at most 1/3 of
standard's, on every model. Output: benchmarks/results/bench_fast.json and a table on stdout, with
the machine's calibration line (core.calibration).

    PYTHONPATH=$PWD python benchmarks/bench_fast.py --workdir /tmp/fast-w [--images 600]
        [--images-other 200] [--device cuda] [--no-torchattacks]

The workdir is made by `defendr --workdir W reproduce` (quick profile) and the robust control:
`defendr --workdir W train adv --online pgd --eps 8/255 --attack-steps 7 --adv-ratio 0.5 --epochs 16
--name madry-long --lr 0.002 --weight-decay 0.0005 --schedule cosine --batch-size 64 --precision bf16
--arch tinyresnet --seed 0` (the quick profile's madry, twice its 8 epochs). The README's table came
from one GPU run (H200) of exactly this, 600 images for every model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from defendr_cli.core.attacks.counting import count_passes
from defendr_cli.core.calibration import cached_calibration, calibration_line
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack, run_suite
from defendr_cli.core.evaluation.adaptive.plan import SUITES, SuiteEntry, resolve_suite
from defendr_cli.core.evaluation.selection import load_eval_models
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace

RESULTS = Path(__file__).parent / "results"
EPS = 8 / 255
ROBUST_CONTROL = "madry-long"
QUICK_MODELS = ["baseline", "adv", "advpgd", "alp", "clp", "lsq", "dunet", "madry"]
QUICK_ENSEMBLES = [["dunet", "alp", "clp"]]
# AutoAttack 'standard' (Croce & Hein 2020) with FAB-T, as data.
STANDARD = (SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 100}),
            SuiteEntry("apgd-t", "apgd-t", {"steps": 100, "n_target_classes": 9}),
            SuiteEntry("fab-t", "fab-t", {"steps": 100, "n_target_classes": 9}),
            SuiteEntry("square", "square", {"n_queries": 5000}))


def load_images(workdir: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images of test, then val, of the workdir's one cache: float32 (n, 3, H, W)
    in [0, 1], labels int64 (n,)."""
    caches = sorted((workdir / "data").glob("*.h5"))
    if len(caches) != 1:
        raise SystemExit(f"expected one cache in {workdir / 'data'}, found {[c.name for c in caches]}")
    images, labels = [], []
    for split in ("test", "val"):
        with SplitReader(caches[0], split, in_memory=True) as reader:
            rows = np.arange(len(reader))
            images.append(reader.read(rows).float())
            labels.append(reader.read_labels(rows).long())
    images, labels = torch.cat(images), torch.cat(labels)
    if len(labels) < count:
        raise SystemExit(f"the cache holds {len(labels)} test+val images, {count} asked")
    return images[:count], labels[:count]


def row_ids(images: torch.Tensor) -> dict[bytes, int]:
    """Image bytes -> row: the cascade hands attacks exact copies of clean rows."""
    return {hashlib.sha1(row.numpy().tobytes()).digest(): i for i, row in enumerate(images)}


def counted_suite(attacks: list[SuiteAttack], ids: dict[bytes, int], forward: np.ndarray,
                  backward: np.ndarray) -> list[SuiteAttack]:
    """The attacks, each run through count_passes with the rows' own ids; counts added in place."""
    def wrap(attack: SuiteAttack) -> SuiteAttack:
        def run(model, images, labels, generator):
            rows = [ids[hashlib.sha1(r.numpy().tobytes()).digest()] for r in images.detach().cpu()]
            with count_passes(model, rows) as counted:
                result = attack.run(counted, images, labels, generator)
            counts = counted.counts()
            np.add.at(forward, counts.image_ids, counts.forward)
            np.add.at(backward, counts.image_ids, counts.backward)
            return result
        return SuiteAttack(attack.name, run, attack.gradient_free)
    return [wrap(a) for a in attacks]


def run_defendr(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, entries, runtime: Runtime,
                batch_size: int) -> dict:
    forward = np.zeros(len(labels), dtype=np.int64)
    backward = np.zeros(len(labels), dtype=np.int64)
    attacks = counted_suite(resolve_suite(entries, EPS, runtime=runtime), row_ids(images), forward, backward)
    sync(runtime)
    started = time.perf_counter()
    result = run_suite(model, images, labels, attacks, runtime=runtime, seed=0, batch_size=batch_size)
    sync(runtime)
    seconds = time.perf_counter() - started
    return {"robust": result.robust_accuracy, "clean": result.clean_accuracy, "after": result.accuracy_after,
            "attacked": result.attacked, "broken": result.broken, "seconds": seconds,
            **pass_summary(int(forward.sum()), int(backward.sum()), len(labels)),
            "per_image_forward": forward.tolist(), "per_image_backward": backward.tolist(),
            "robust_rows": torch.nonzero(result.robust_mask).flatten().tolist()}


class TotalCounter(nn.Module):
    """`model` that adds every call's batch size to `forward` and, per backward pass through the
    output, to `backward` (totals over images; no per-image attribution)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.forward_total, self.backward_total = model, 0, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        self.forward_total += n
        output = self.model(images)
        if output.requires_grad:
            output.register_hook(lambda grad, n=n: self._backward(n))
        return output

    def _backward(self, n: int) -> None:
        self.backward_total += n


def run_torchattacks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
                     batch_size: int) -> dict:
    """torchattacks' AutoAttack standard list at the reference's 100 steps (seed 0)."""
    import torchattacks  # benchmark-only dependency

    counter = TotalCounter(model).eval()
    common = {"norm": "Linf", "eps": EPS, "seed": 0}
    attack = torchattacks.MultiAttack([
        torchattacks.APGD(counter, loss="ce", steps=100, n_restarts=1, **common),
        torchattacks.APGDT(counter, steps=100, n_restarts=1, n_classes=10, **common),
        torchattacks.FAB(counter, multi_targeted=True, steps=100, n_restarts=1, n_classes=10, **common),
        torchattacks.Square(counter, n_queries=5000, n_restarts=1, **common)])
    sync(runtime)
    started = time.perf_counter()
    correct = []
    for start in range(0, len(labels), batch_size):
        x = images[start:start + batch_size].to(runtime.device)
        y = labels[start:start + batch_size].to(runtime.device)
        adv = attack(x, y)
        with torch.no_grad():
            correct.append((model(adv).argmax(1) == y).cpu())
    sync(runtime)
    seconds = time.perf_counter() - started
    return {"robust": float(torch.cat(correct).float().mean()), "seconds": seconds,
            **pass_summary(counter.forward_total, counter.backward_total, len(labels))}


def pass_summary(forward: int, backward: int, n: int) -> dict:
    return {"forward": forward, "backward": backward, "passes": forward + backward,
            "passes_per_image": (forward + backward) / max(n, 1), "forward_per_image": forward / max(n, 1),
            "backward_per_image": backward / max(n, 1)}


def sync(runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)


def bench_model(name: str, module: nn.Module, images: torch.Tensor, labels: torch.Tensor, args,
                runtime: Runtime) -> dict:
    row = {"model": name, "images": len(labels),
           "fast": run_defendr(module, images, labels, SUITES["fast"], runtime, args.batch_size),
           "standard": run_defendr(module, images, labels, STANDARD, runtime, args.batch_size)}
    if not args.no_torchattacks:
        row["torchattacks"] = run_torchattacks(module, images, labels, runtime, args.batch_size)
    fast, standard = row["fast"], row["standard"]
    row["gap_points"] = 100 * (fast["robust"] - standard["robust"])
    row["pass_ratio"] = fast["passes"] / max(standard["passes"], 1)
    row["meets_target"] = row["gap_points"] <= 0.5 and row["pass_ratio"] <= 1 / 3
    return row


def print_row(row: dict) -> None:
    parts = [f"{row['model']:<14} n={row['images']:<4}"]
    for suite in ("fast", "standard", "torchattacks"):
        if suite in row:
            r = row[suite]
            parts.append(f"{suite} {100 * r['robust']:5.1f}% {r['passes_per_image']:7.0f} p/img {r['seconds']:6.1f}s")
    parts.append(f"gap {row['gap_points']:+.1f} pt, ratio {row['pass_ratio']:.3f}, "
                 f"{'OK' if row['meets_target'] else 'MISSES TARGET'}")
    print(" | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--models", default=",".join(QUICK_MODELS + [ROBUST_CONTROL]))
    parser.add_argument("--ensembles", default=";".join(",".join(e) for e in QUICK_ENSEMBLES))
    parser.add_argument("--images", type=int, default=600, help="images of the robust control (test, then val)")
    parser.add_argument("--images-other", type=int, default=200, help="images of the other models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=600)
    parser.add_argument("--no-torchattacks", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_fast.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    runtime = Runtime.create(args.device)
    calibration = cached_calibration(runtime.device)
    print(f"calibration: {calibration_line(calibration)}", flush=True)
    ensembles = [e.split(",") for e in args.ensembles.split(";") if e]
    models = load_eval_models(Workspace(args.workdir), args.models.split(","), ensembles, device=runtime.device,
                              defense=None, variant="paper", image_size=32)
    all_images, all_labels = load_images(args.workdir, max(args.images, args.images_other))
    rows = []
    for m in models:
        count = args.images if m.name == ROBUST_CONTROL else args.images_other
        rows.append(bench_model(m.name, m.module, all_images[:count], all_labels[:count], args, runtime))
        print_row(rows[-1])
        write(args, runtime, calibration, rows)
    print(f"all models meet the target: {all(r['meets_target'] for r in rows)}")


def write(args, runtime: Runtime, calibration: dict, rows: list[dict]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"eps": EPS, "device": str(runtime.device), "calibration": calibration,
               "calibration_line": calibration_line(calibration), "torch": torch.__version__,
               "fast_suite": [e.__dict__ for e in SUITES["fast"]], "standard_suite": [e.__dict__ for e in STANDARD],
               "torchattacks": "MultiAttack(APGD-CE 100, APGD-T 100 (9 targets), FAB multi-targeted 100, "
                               "Square 5000), seed 0",
               "models": rows}
    args.out.write_text(compact_json(summary))


def compact_json(data: dict) -> str:
    """Indented JSON with every list of numbers on one line (the per-image counts)."""
    def one_line(match: re.Match) -> str:
        return "[" + ", ".join(x.strip() for x in match.group(1).split(",") if x.strip()) + "]"
    return re.sub(r"\[([\d\s,.eE+-]*)\]", one_line, json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
