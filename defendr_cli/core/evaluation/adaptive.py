"""Adaptive white-box protocol (beyond the paper): PGD computed against the whole evaluated model.

The attacked function is exactly the module under evaluation, so gradients flow through the
denoiser, through the randomization (with EOT: the gradient is averaged over `eot` random draws
when the model is stochastic) and through every ensemble member. For each model the grid
eps x steps x restarts is run on a seeded subset of the test split; per-image correctness is
kept so the worst case over all configurations at an eps ("robust accuracy") is reported too.
Sanity checks (core.evaluation.sanity) are run on the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.attacks import pgd
from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation import sanity
from defendr_cli.core.evaluation.adaptive_partial import AdaptivePartials, file_signature
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.predictions import is_stochastic, seeded_randomness
from defendr_cli.core.evaluation.results import AdaptiveResult, AdaptiveRow, AdaptiveSettings, AdvSetSummary, GridPoint
from defendr_cli.core.evaluation.sharded import map_over_ranks
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime

LARGE_EPS = 64 / 255


@dataclass(frozen=True)
class AdaptiveEps:
    """One eps of the sweep: label as given ('8/255') and value in pixel units (float or (3,) list)."""

    label: str
    value: float | list[float]

    def as_attack_eps(self) -> float | torch.Tensor:
        return torch.tensor(self.value, dtype=torch.float32) if isinstance(self.value, list) else float(self.value)


def sweep_eps(adv_sets: Sequence[AdvSetSummary], extra: Sequence = ()) -> list[AdaptiveEps]:
    """The eps of the adaptive sweep: those of `adv_sets` (a transfer result's sets), then `extra`
    (EpsValue(label, value) in pixel units), one entry per distinct value."""
    values = [AdaptiveEps(s.eps_label, s.eps) for s in adv_sets]
    values += [AdaptiveEps(e.label, e.value) for e in extra]
    unique: dict[str, AdaptiveEps] = {}
    for value in values:
        unique.setdefault(str(value.value), value)
    return list(unique.values())


def subset_rows(count: int, subset: int | None, seed: int) -> np.ndarray:
    """Sorted seeded choice of `subset` rows out of `count` (all rows when subset is None or >= count)."""
    if subset is None or subset >= count:
        return np.arange(count)
    if subset < 1:
        raise InputError(f"--subset must be at least 1, got {subset}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, count, 7]))
    return np.sort(rng.choice(count, size=subset, replace=False))


@torch.no_grad()
def correct_mask(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
                 *, seed: int, batch_size: int) -> np.ndarray:
    """Boolean (N,): argmax(module(images)) == labels, randomness seeded by `seed`."""
    out = []
    with seeded_randomness(seed, runtime):
        for start in range(0, len(images), batch_size):
            x = runtime.to_device(images[start : start + batch_size])
            with runtime.autocast():
                logits = module(x)
            out.append((logits.argmax(1).cpu() == labels[start : start + batch_size]).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def attack_correct_mask(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime, *,
                        eps: AdaptiveEps, steps: int, restarts: int, eot: int, seed: int, batch_size: int) -> np.ndarray:
    """Per-image correctness (N,) of `module` on PGD examples computed against `module` itself."""
    advs = []
    with seeded_randomness(seed, runtime):
        generator = torch.Generator().manual_seed(seed)  # CPU: the same starts on every device
        for start in range(0, len(images), batch_size):
            x = runtime.to_device(images[start : start + batch_size])
            y = runtime.to_device(labels[start : start + batch_size])
            result = pgd(module, x, y, eps.as_attack_eps(), steps=steps, restarts=restarts, eot=eot,
                         generator=generator, runtime=runtime)
            advs.append(result.adv.detach().cpu())
    adv = torch.cat(advs) if advs else images[:0]
    return correct_mask(module, adv, labels, runtime, seed=seed + 1, batch_size=batch_size)


def run_adaptive(
    models: list[EvalModel],
    data_path: Path,
    *,
    runtime: Runtime,
    eps_values: list[AdaptiveEps],
    steps: list[int],
    restarts: list[int],
    eot: int = 30,
    subset: int | None = 200,
    seed: int = 0,
    batch_size: int = 128,
    large_eps: float = LARGE_EPS,
    near_zero: float = 0.1,
    transfer_sets: list[Path] = (),
    reporter: Reporter | None = None,
    dist: DistContext = SINGLE,
    partial_dir: Path | None = None,
    resume: bool = False,
) -> AdaptiveResult:
    """White-box PGD sweeps against every model end to end, plus sanity checks.

    Returns an AdaptiveResult: the subset rows used, the settings, and per model an AdaptiveRow
    (grid of GridPoints, 'robust' {eps_label: worst-case accuracy over the grid}, sanity checks).
    Accuracies are fractions in [0, 1] on the subset. With `transfer_sets` (cached adversarial
    test sets), each model also gets 'transfer': {set name: accuracy on the subset's copies}, so
    transfer and adaptive numbers compare on the same images. With `dist` (a torchrun run) the
    grid's configurations are spread over the ranks (core.evaluation.sharded.map_over_ranks); the
    result is the single-process one on every rank. With `partial_dir` each model's row is saved
    there as it completes (rank 0), and with `resume` a saved row made with the same settings is
    reused instead of attacking that model again (core.evaluation.adaptive_partial).
    """
    if not models:
        raise InputError("no model to evaluate: give --model or --models")
    if not eps_values:
        raise InputError("the adaptive protocol needs at least one eps (--eps or cached adversarial sets)")
    if not steps or min(steps) < 1 or not restarts or min(restarts) < 1 or eot < 1:
        raise InputError("--steps, --restarts and --eot must be positive integers")
    reporter = reporter or NullReporter()
    steps, restarts = sorted(set(steps)), sorted(set(restarts))
    eps_values = sorted(eps_values, key=lambda e: eps_scalar(e.value))
    with SplitReader(data_path, "test") as reader:
        rows = subset_rows(len(reader), subset, seed)
        images = reader.read(rows)
        labels = torch.as_tensor(np.asarray(reader.labels)[rows], dtype=torch.int64)
    transfer_images = _subset_copies(transfer_sets, rows)

    results = []
    configs = [(e, s, r) for e in eps_values for s in steps for r in restarts]
    partials = AdaptivePartials(partial_dir, {
        "data": file_signature(data_path), "rows": rows.tolist(), "eps": [e.value for e in eps_values],
        "steps": steps, "restarts": restarts, "eot": eot, "seed": seed, "batch_size": batch_size,
        "large_eps": large_eps, "near_zero": near_zero, "transfer": [file_signature(p) for p in transfer_sets],
        "device": str(runtime.device), "precision": runtime.precision}, reuse=resume, write=dist.is_main)
    saved_rows = {model.key: partials.load(model.key) for model in models}  # read once: every rank decides alike
    for model in models:
        if saved_rows[model.key] is not None:
            reporter.note(f"{model.name}: adaptive result of the interrupted run reused")
            results.append(saved_rows[model.key])
            continue
        module = model.module.eval()
        stochastic = is_stochastic(module, runtime.to_device(images[:2]))
        used_eot = eot if stochastic else 1
        clean = correct_mask(module, images, labels, runtime, seed=seed + 1, batch_size=batch_size)
        grid, masks = [], {}
        with reporter.task(f"{model.name}: adaptive PGD", total=len(configs) + 2) as task:
            def attack_config(index: int) -> np.ndarray:
                eps, n_steps, n_restarts = configs[index]
                return attack_correct_mask(module, images, labels, runtime, eps=eps, steps=n_steps,
                                           restarts=n_restarts, eot=used_eot, seed=seed + 1000 * index,
                                           batch_size=batch_size)

            # torchrun: the configurations (each seeded by its index) are spread over the ranks
            shared = map_over_ranks(attack_config, len(configs), dist) if dist.is_distributed else None
            for index, (eps, n_steps, n_restarts) in enumerate(configs):
                mask = shared[index] if shared is not None else attack_config(index)
                masks.setdefault(eps.label, []).append(mask)
                grid.append(GridPoint(eps.label, eps.value, n_steps, n_restarts, float(mask.mean())))
                task.advance(1, eps=eps.label, steps=n_steps, acc=float(mask.mean()))
            zero = attack_correct_mask(module, images, labels, runtime, eps=AdaptiveEps("0", 0.0), steps=steps[0],
                                       restarts=1, eot=used_eot, seed=seed, batch_size=batch_size)
            task.advance(1)
            large = attack_correct_mask(module, images, labels, runtime, eps=AdaptiveEps("64/255", large_eps),
                                        steps=steps[-1], restarts=1, eot=used_eot, seed=seed, batch_size=batch_size)
            task.advance(1)
        transfer = {name: float(correct_mask(module, x, y, runtime, seed=seed + 1, batch_size=batch_size).mean())
                    for name, (x, y) in transfer_images.items()}
        robust = {label: float(np.logical_and.reduce(ms).mean()) for label, ms in masks.items()}
        entry = AdaptiveRow(name=model.name, kind=model.kind, stochastic=stochastic, eot=used_eot,
                            clean=float(clean.mean()), grid=grid, robust=robust, transfer=transfer,
                            eps0_accuracy=float(zero.mean()), large_eps_accuracy=float(large.mean()))
        entry.checks = sanity.run_checks(entry, count=len(rows), near_zero=near_zero)
        partials.save(model.key, entry)
        results.append(entry)
    settings = AdaptiveSettings(eps=[e.label for e in eps_values], steps=steps, restarts=restarts, eot=eot,
                                subset=len(rows), large_eps=large_eps, near_zero=near_zero)
    return AdaptiveResult(seed=seed, subset=rows.tolist(), settings=settings, models=results)


def _subset_copies(paths: list[Path], rows: np.ndarray) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{set name: (adversarial copies of the subset rows it holds, their labels)}."""
    out = {}
    for path in paths:
        with AdvSetReader(path) as reader:
            positions = np.flatnonzero(np.isin(reader.clean_indices, rows))
            out[reader.info.name] = (reader.read(positions),
                                     torch.as_tensor(reader.labels[positions], dtype=torch.int64))
    return out
