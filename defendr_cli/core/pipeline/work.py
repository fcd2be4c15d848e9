"""The work of each `reproduce` stage, from the resolved settings alone (nothing is read or run).

A stage's work is `images` x `passes`: a pass is one forward of one image through the stage's
model, a backward pass counting as two (so one training step of an image is 3 passes, an attack
input gradient of an attack 2 (the
attacks differentiate the input only, so no weight gradients are computed), a prediction 1; a training stage's passes count every epoch, DUNET's are passes through
denoiser + target). FLOPs = images x passes x the model's forward FLOPs at the cache's image size
(core/pipeline/costs.py). Disk is what the stage writes (bytes); memory the stage's
peak resident bytes: the process base, the weights (plus gradients and Adam's two moments when
training), one batch's activations kept for the backward pass, and a clean split small enough to be
loaded whole (core/io/reader.py IN_MEMORY_BYTES).

Assumptions (stated, not measured per run): an adaptive suite's later attacks work on
CASCADE_STANDING of the images (only images still standing are attacked); prepare writes at
PREPARE_BYTES_PER_S per core (JPEG decode + resize, or drawing synthetic shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from defendr_cli.core.io.reader import IN_MEMORY_BYTES
from defendr_cli.core.pipeline import stages as st
from defendr_cli.core.pipeline.costs import ModelCost, classifier_cost, denoiser_cost

PROCESS_BASE_BYTES = 1.2e9  # python + torch + this package, resident before any data (measured: 1.2 GB)
CASCADE_STANDING = 0.5
PREPARE_BYTES_PER_S = 8e6
ROW_COLUMN_BYTES = 6 * 8  # per-row int64/bool columns of an adversarial set
STORAGE_BYTES = {"float16": 2, "uint8": 1}
INPUT_GRADIENT_PASSES = 2  # forward + backward to the input only (measured: PGD-10 on ResNet-101 at 299)
SINGLE_STEP_ONLINE = ("fgsm", "fgsm-rs")  # online attacks of one gradient step (fgsm-rs: Wong et al. 2020)
SUITE_GRADIENTS = {  # per image and eps: (attack label, gradient steps x targets, queries)
    "standard": (("apgd-ce", 100, 0), ("apgd-t", 100 * 9, 0), ("square", 0, 5000)),
    "rand": (("apgd-ce", 100, 0), ("apgd-dlr", 100, 0)),
    "quick": (("apgd-ce", 20, 0), ("apgd-t", 20 * 3, 0), ("square", 0, 300)),
}


@dataclass
class StageWork:
    """One stage: images x passes of a model of `cost`; disk and peak memory in bytes."""

    kind: str  # prepare | train | attack | ensemble | gradcam | evaluate
    images: int
    passes: float
    flops: float
    precision: str
    disk_bytes: float
    memory_bytes: float
    notes: list[str] = field(default_factory=list)
    read_bytes: float = 0.0  # checkpoint bytes the stage loads (and hashes) before it computes


def split_counts(settings: dict[str, Any]) -> dict[str, int]:
    """Images per split: `data.counts` when given, else the profile's per-class split x classes
    (54,6,10 proportions when the split does not parse)."""
    data = settings["data"]
    if data.get("counts"):  # a real cache's counts (the single-command plans)
        return {split: int(data["counts"].get(split, 0)) for split in ("train", "val", "test")}
    classes, per_class = int(data["classes"]), int(data["per_class"])
    try:
        parts = [int(p) for p in str(data.get("split", "")).split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3:
        train, val = round(per_class * 54 / 70), round(per_class * 6 / 70)
        parts = [train, val, per_class - train - val]
    return {"train": classes * parts[0], "val": classes * parts[1], "test": classes * parts[2]}


def image_bytes(settings: dict[str, Any]) -> int:
    """Bytes of one uint8 image of the cache (3 x S x S)."""
    return 3 * int(settings["data"]["image_size"]) ** 2


def classifier(settings: dict[str, Any]) -> ModelCost:
    data = settings["data"]
    return classifier_cost(str(settings["model"]["arch"]), int(data["classes"]), int(data["image_size"]))


def _memory(settings: dict[str, Any], cost: ModelCost, batch: int, precision: str, *, training: bool,
            split: str = "train", kept_share: float = 1.0, items: int | None = None) -> float:
    """Peak bytes; kept_share: the share of activations autograd keeps (a frozen backbone keeps
    only its trainable part's); items: images the stage iterates (a batch never holds more; default
    the split's count)."""
    batch = max(1, min(batch, split_counts(settings)[split] if items is None else items))
    act_bytes = 2 if precision in ("bf16", "fp16") else 4
    weights = cost.parameters * 4 * (4 if training else 1)
    activations = batch * cost.activation_numel * act_bytes * kept_share
    batch_bytes = 2 * batch * image_bytes(settings) * 4
    split_bytes = split_counts(settings)[split] * image_bytes(settings)
    loaded = split_bytes if split_bytes < IN_MEMORY_BYTES else 0
    return PROCESS_BASE_BYTES + weights + activations + batch_bytes + loaded


def prepare_work(settings: dict[str, Any]) -> StageWork:
    images = sum(split_counts(settings).values())
    disk = images * image_bytes(settings)
    return StageWork("prepare", images, 0.0, 0.0, "fp32", disk, PROCESS_BASE_BYTES + 64 * image_bytes(settings) * 8)


def online_steps(spec: dict[str, Any], default: int) -> int:
    """Gradient steps of a training method's online attack (one for FGSM and FGSM with random start)."""
    return 1 if spec["online"] in SINGLE_STEP_ONLINE else int(spec.get("attack_steps", default))


def attack_passes(spec: dict[str, Any]) -> float:
    """Passes per image: clean and adversarial predictions (2) + 2 per input-gradient step."""
    steps = 1 if spec["attack"] == "fgsm" else int(spec.get("steps") or 10)
    return 2 + INPUT_GRADIENT_PASSES * steps


def attack_work(settings: dict[str, Any], spec: dict[str, Any], splits: list[str], precision: str) -> StageWork:
    counts, cost = split_counts(settings), classifier(settings)
    images = sum(counts[s] for s in splits)
    passes = attack_passes(spec)
    dtype = str(spec.get("dtype", "float16"))
    disk = images * (image_bytes(settings) * STORAGE_BYTES.get(dtype, 2) + ROW_COLUMN_BYTES)
    batch = int(settings["evaluate"].get("batch_size", 128))
    memory = _memory(settings, cost, batch, precision, training=False, split=splits[0],
                     items=max(counts[s] for s in splits))
    return StageWork("attack", images, passes, images * passes * cost.forward_flops, precision, disk, memory)


def train_work(settings: dict[str, Any], name: str, spec: dict[str, Any], precision: str) -> StageWork:
    """Epochs x items x passes of one trained model; see the module docstring."""
    train, counts = settings["train"], split_counts(settings)
    method = spec.get("method", name)
    epochs, batch = int(spec.get("epochs", train["epochs"])), int(spec.get("batch_size", train["batch_size"]))
    n_adv, cost = len(spec.get("adv", [])), classifier(settings)
    frozen = bool(settings["model"].get("freeze_backbone")) and method not in ("dunet",)
    step = 1 + 2 * cost.trainable_share if frozen else 3.0
    notes: list[str] = []
    if method == "dunet":
        denoiser = denoiser_cost(float(spec.get("width_mult", 1.0)), int(settings["data"]["image_size"]))
        items = counts["train"] * max(n_adv, 1)
        per_item = 3 * denoiser.forward_flops + 2 * cost.forward_flops
        if spec.get("online"):  # each batch attacked through the target first
            per_item += INPUT_GRADIENT_PASSES * online_steps(spec, 10) * cost.forward_flops
        val = counts["val"] * (denoiser.forward_flops + 4 * cost.forward_flops)
        flops = epochs * (items * per_item + val)
        passes = flops / max(items * (denoiser.forward_flops + cost.forward_flops), 1.0)  # denoiser + target passes
        notes.append(f"DUNET (width {spec.get('width_mult', 1.0)}): {denoiser.forward_flops / 1e9:.2f} GFLOP per image "
                     f"before the classifier's {cost.forward_flops / 1e9:.2f}")
        memory = _memory(settings, denoiser.plus(cost), batch, precision, training=True, items=items)
        checkpoint = denoiser.parameters * 4
    else:
        if spec.get("online"):
            items = counts["train"]
            step += float(spec.get("adv_ratio", 1.0)) * INPUT_GRADIENT_PASSES * online_steps(spec, 7)
        elif method == "alp":
            items, step = counts["train"] * n_adv, 2 * step
        else:
            items = counts["train"] * (1 + n_adv)
        passes = epochs * (items * step + counts["val"]) / max(items, 1)
        flops = items * passes * cost.forward_flops
        pair = 2 if method == "alp" else 1  # ALP holds the clean and the adversarial half of each pair
        memory = _memory(settings, cost, pair * min(batch, items), precision, training=True, items=pair * items,
                         kept_share=cost.trainable_share if frozen and not spec.get("online") else 1.0)
        checkpoint = cost.parameters * 4
    if frozen:
        notes.append(f"frozen backbone: back-propagates through {cost.trainable_share:.0%} of the forward FLOPs")
    return StageWork("train", items, passes, flops, precision, checkpoint, memory, notes)


def _model_forward(settings: dict[str, Any], name: str) -> ModelCost:
    """Forward cost of an evaluated model row: singles, dunet (denoiser + target), wraps, ensembles."""
    cost = classifier(settings)
    base = name.split("+", 1)[0]
    members = settings.get("ensembles", {}).get(base)
    if members:
        total = _model_forward(settings, members[0])
        for member in members[1:]:
            total = total.plus(_model_forward(settings, member))
        return total
    spec = st.method_specs(settings).get(base, {})
    if spec.get("method", base) == "dunet":
        return denoiser_cost(float(spec.get("width_mult", 1.0)), int(settings["data"]["image_size"])).plus(cost)
    return cost


def adaptive_passes(settings: dict[str, Any], name: str) -> float:
    """Passes per test image of the adaptive protocol on one model row, over every eps."""
    ev = settings["evaluate"]
    stochastic = "+" in name
    suite = str(ev.get("suite", "auto"))
    suite = ("rand" if stochastic else "standard") if suite == "auto" else suite
    eot = int(ev.get("eot", 20)) if stochastic else 1
    per_eps = 0.0
    for k, (label, grads, queries) in enumerate(SUITE_GRADIENTS.get(suite, ())):
        if label == "square" and ev.get("square_queries"):
            queries = int(ev["square_queries"])
        share = 1.0 if k == 0 else CASCADE_STANDING
        per_eps += share * (INPUT_GRADIENT_PASSES * grads * eot + queries)
    if "pgd" in [str(a) for a in ev.get("attacks", [])]:
        per_eps += sum(INPUT_GRADIENT_PASSES * s * r * eot for s in ev.get("steps", []) for r in ev.get("restarts", []))
    per_eps += int(ev.get("draws", 10)) if stochastic else 1
    return per_eps * adaptive_eps_count(settings)


def adaptive_eps_count(settings: dict[str, Any]) -> int:
    """The adaptive sweep's eps: the profile's list plus the reference set's eps when it differs."""
    eps = [str(e) for e in settings["evaluate"].get("eps", [])]
    reference = settings.get("checks", {}).get("reference_set")
    for spec, splits in st.attack_specs(settings):
        if reference in st.attack_labels(settings, spec, splits):
            same = str(spec["eps"]) in eps and spec.get("eps_space", "pixel") == "pixel"
            return len(eps) + (0 if same else 1)
    return max(len(eps), 1)


def evaluate_work(settings: dict[str, Any], precision: str) -> StageWork:
    """Transfer: every model on the clean test split and every cached test set; adaptive: the
    profile's adaptive models on `subset` test images."""
    counts, ev = split_counts(settings), settings["evaluate"]
    rand = settings.get("randomization", {})
    rows = ["baseline", *st.method_specs(settings)]
    rows += [f"{name}+random-resize-pad" for name in rand.get("wrap", [])]
    rows += list(settings.get("ensembles", {}))
    test_sets = len(st.attack_specs(settings))
    images = counts["test"] * (1 + test_sets)
    flops = sum(images * _model_forward(settings, row).forward_flops * (int(rand.get("passes") or 1) if "+" in row else 1)
                for row in rows)
    adaptive_rows = (ev.get("adaptive_models") or rows) if ev.get("adaptive", True) else []
    subset = min(int(ev.get("subset") or counts["test"]), counts["test"])
    flops += sum(subset * adaptive_passes(settings, row) * _model_forward(settings, row).forward_flops
                 for row in adaptive_rows)
    cost = classifier(settings)
    total_images = images * len(rows) + subset * len(adaptive_rows)
    biggest = max((_model_forward(settings, row) for row in rows), key=lambda c: c.activation_numel)
    memory = _memory(settings, biggest, int(ev.get("batch_size", 128)), precision, training=False, split="test")
    notes = [f"transfer: {len(rows)} models x {1 + test_sets} test sets of {counts['test']} images; adaptive: "
             f"{len(adaptive_rows)} models x {subset} images"]
    read = sum(model_bytes(settings, row) for row in ["baseline", *st.method_specs(settings)])
    return StageWork("evaluate", total_images, flops / max(total_images * cost.forward_flops, 1.0), flops,
                     precision, 1e6 * len(rows), memory, notes, read_bytes=read)


def model_bytes(settings: dict[str, Any], name: str) -> float:
    """Checkpoint bytes (fp32 weights) of one model row: a classifier, DUNET + its target, an ensemble."""
    members = settings.get("ensembles", {}).get(name.split("+", 1)[0])
    if members:
        return sum(model_bytes(settings, member) for member in members)
    return 4.0 * _model_forward(settings, name).parameters


def ensemble_work(settings: dict[str, Any], members: list[str]) -> StageWork:
    """An ensemble manifest: no compute; its members' checkpoints are read and hashed."""
    read = sum(model_bytes(settings, member) for member in members)
    return StageWork("ensemble", 0, 0.0, 0.0, "fp32", 1e4, PROCESS_BASE_BYTES, read_bytes=read)


def gradcam_work(settings: dict[str, Any], precision: str) -> StageWork:
    count = int(settings.get("gradcam", {}).get("count", 8))
    cost = _model_forward(settings, str(settings.get("gradcam", {}).get("model", "baseline")))
    return StageWork("gradcam", 2 * count, 3.0, 2 * count * 3 * cost.forward_flops, precision, 2e5 * count,
                     _memory(settings, cost, 32, precision, training=False, split="test", items=count))
