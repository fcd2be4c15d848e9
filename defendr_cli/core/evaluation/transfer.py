"""The paper's transfer protocol: clean / 50% / 100% adversarial accuracy on cached test sets.

`run_transfer(models, data_path, adv_paths, ...)` runs every model over the clean test split and
over every adversarial test set once (predictions cached per (model key, set key)) and returns a
TransferResult; `core.evaluation.report_tables.transfer_tables(result)` lays it out like the
paper's Tables 1-6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.evaluation import metrics
from defendr_cli.core.attacks.set_names import label_of_set
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.predictions import PredictionCache, Predictions, safe_key
from defendr_cli.core.evaluation.results import (AdvSetSummary, ClassRow, Confusion, DataSummary, PerClass,
                                                 SetScores, TransferResult, TransferRow, jsonable)
from defendr_cli.core.evaluation.sharded import predict_sharded
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.io.adversarial import AdvSetReader, read_adv_info
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.models.loading import check_checkpoint_against_cache
from defendr_cli.core.io.adv_fingerprint import adv_set_fingerprint
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime

TEST_SPLIT = "test"


def describe_adv_set(info: Any) -> AdvSetSummary:
    """The fields of an AdvSetInfo a report shows (eps as a float or a per-channel list)."""
    return AdvSetSummary(
        name=info.name, attack=info.attack, eps=jsonable(info.eps), eps_label=info.eps_label,
        eps_space=info.eps_space, steps=info.steps, source_model=info.source_model, split=info.split,
        count=info.count, success_rate=info.success_rate, dtype=info.dtype,
        label=label_of_set(info) or info.name)


def check_adv_set(info: Any, cache_info: Any, labels: np.ndarray, clean_indices: np.ndarray,
                  clean_labels: np.ndarray) -> None:
    """MismatchError unless the adversarial set belongs to this clean cache's test split."""
    if info.clean_fingerprint != cache_info.fingerprint:
        raise MismatchError(
            f"adversarial set '{info.name}' was made from another clean cache (fingerprint "
            f"{info.clean_fingerprint}, this cache is {cache_info.fingerprint})",
            hint="re-run defendr attack on this cache or choose the matching --data")
    if info.split != TEST_SPLIT:
        raise MismatchError(f"adversarial set '{info.name}' is of the {info.split} split; evaluation uses test sets")
    if len(clean_indices) and (clean_indices.min() < 0 or clean_indices.max() >= len(clean_labels)):
        raise MismatchError(f"adversarial set '{info.name}' refers to test rows outside this cache's test split")
    if len(labels) and labels.max() >= cache_info.num_classes:
        raise MismatchError(f"adversarial set '{info.name}' has labels beyond this cache's "
                            f"{cache_info.num_classes} classes")
    if not np.array_equal(labels, clean_labels[clean_indices]):
        raise MismatchError(f"adversarial set '{info.name}' has labels that differ from the clean test "
                            f"split: it was made for other classes")


def check_model_classes(model: EvalModel, cache_info: Any, image: torch.Tensor, runtime: Runtime) -> None:
    """MismatchError when the model was trained on other classes or outputs another class count."""
    if model.payload and model.payload.get("data"):
        check_checkpoint_against_cache({**model.payload, "name": model.name}, cache_info)
    with torch.no_grad(), runtime.autocast():
        width = model.module(runtime.to_device(image)).shape[1]
    if width != cache_info.num_classes:
        raise MismatchError(f"model '{model.name}' outputs {width} classes, the cache has {cache_info.num_classes}")


def set_key_for_clean(cache_info: Any) -> str:
    return safe_key("clean", cache_info.fingerprint, TEST_SPLIT)


def set_key_for_adv(path: Path, info: Any) -> str:
    """Cache key of an adversarial set: its name and content fingerprint (recorded when written,
    trusted after a cheap check; see core/io/adv_fingerprint.py)."""
    return safe_key("adv", info.name, adv_set_fingerprint(path))


def primary_set_name(adv_sets: list[AdvSetSummary]) -> str | None:
    """The set Tables 1 and 5-6 and the confusion matrix use: the median eps of the first attack."""
    if not adv_sets:
        return None
    first = adv_sets[0].attack
    same = [s for s in adv_sets if s.attack == first]
    return same[(len(same) - 1) // 2].name


def run_transfer(
    models: list[EvalModel],
    data_path: Path,
    adv_paths: list[Path],
    *,
    runtime: Runtime,
    cache_dir: Path,
    seed: int = 0,
    batch_size: int = 128,
    primary: str | None = None,
    top_k: int = 10,
    reporter: Reporter | None = None,
    dist: DistContext = SINGLE,
) -> TransferResult:
    """Clean, 50% and 100% adversarial accuracy of every model on every adversarial test set.

    With `dist` (a torchrun run) the ranks predict disjoint shards (core.evaluation.sharded) and
    every rank gets the single-process result.

    Returns a TransferResult: the cache description, the adversarial sets (sorted by attack and
    eps), one TransferRow per model (clean accuracy on the whole test split, SetScores per set),
    the primary set, the headline model, its best/worst classes on the primary set (100%
    adversarial), the clean-vs-adversarial confusion matrix and the prediction cache's hits and
    misses. Accuracies are fractions in [0, 1]; one that cannot be computed is None.
    """
    if not models:
        raise InputError("no model to evaluate: give --model or --models")
    reporter = reporter or NullReporter()
    cache = PredictionCache(cache_dir)
    cache_info = read_cache_info(data_path)
    class_names = list(cache_info.class_names)

    with SplitReader(data_path, TEST_SPLIT) as clean_reader:
        clean_labels = np.asarray(clean_reader.labels, dtype=np.int64)
        probe = clean_reader.read(np.arange(1))
        for model in models:
            check_model_classes(model, cache_info, probe, runtime)
        infos = []
        for path in adv_paths:
            info = read_adv_info(path)
            with AdvSetReader(path) as adv_reader:
                check_adv_set(info, cache_info, np.asarray(adv_reader.labels, dtype=np.int64),
                              np.asarray(adv_reader.clean_indices, dtype=np.int64), clean_labels)
            infos.append((path, info))
        infos.sort(key=lambda pi: (pi[1].attack, eps_scalar(pi[1].eps), pi[1].steps or 0, pi[1].name))
        adv_sets = [describe_adv_set(info) for _, info in infos]
        clean_key = set_key_for_clean(cache_info)
        clean_preds: dict[str, Predictions] = {}
        for model in models:
            clean_preds[model.name] = cache.get_or_compute(model.cache_key(seed, batch_size), clean_key, lambda m=model: predict_sharded(
                m.module, clean_reader, runtime, dist, batch_size=batch_size, seed=seed,
                reporter=reporter, description=f"{m.name}: clean test"))

    adv_preds: dict[tuple[str, str], Predictions] = {}
    for path, info in infos:
        set_key = set_key_for_adv(path, info)
        with AdvSetReader(path) as adv_reader:
            for model in models:
                adv_preds[(model.name, info.name)] = cache.get_or_compute(model.cache_key(seed, batch_size), set_key, lambda m=model: predict_sharded(
                    m.module, adv_reader, runtime, dist, batch_size=batch_size, seed=seed,
                    reporter=reporter, description=f"{m.name}: {info.name}"))

    model_rows = []
    for model in models:
        clean = clean_preds[model.name]
        row = TransferRow(**model.describe(), clean=_number(metrics.accuracy(clean.preds, clean.labels)))
        for _, info in infos:
            adv = adv_preds[(model.name, info.name)]
            clean_rows = clean.on_rows(adv.indices)
            correct = clean_rows.preds == adv.labels
            row.sets[info.name] = SetScores(
                count=len(adv),
                clean=_number(metrics.accuracy(clean_rows.preds, adv.labels)),
                adv50=_number(metrics.mixed_accuracy(clean_rows.preds, adv.preds, adv.labels, seed)),
                adv100=_number(metrics.accuracy(adv.preds, adv.labels)),
                fooled=_number(float(np.mean(adv.preds[correct] != adv.labels[correct])) if correct.any()
                               else float("nan")),
            )
        model_rows.append(row)

    primary = primary or primary_set_name(adv_sets)
    if primary is not None and primary not in {s.name for s in adv_sets}:
        raise InputError(f"--primary '{primary}' is not one of the evaluated sets")
    headline = _headline_model(models, model_rows, primary)
    data = DataSummary(path=str(data_path), fingerprint=cache_info.fingerprint, num_classes=cache_info.num_classes,
                       class_names=class_names, test_count=int(len(clean_labels)), image_size=cache_info.image_size)
    result = TransferResult(seed=seed, data=data, adv_sets=adv_sets, models=model_rows, primary_set=primary,
                            headline_model=headline)
    if primary is not None and headline is not None:
        clean = clean_preds[headline]
        adv = adv_preds[(headline, primary)]
        clean_rows = clean.on_rows(adv.indices)
        best, worst = metrics.best_and_worst_classes(adv.preds, adv.labels, class_names, k=top_k)
        result.per_class = PerClass(
            model=headline, set=primary, best=[_class_row(c) for c in best], worst=[_class_row(c) for c in worst],
            clean_accuracy=jsonable(metrics.per_class_accuracy(clean.preds, clean.labels, len(class_names))),
            adv_accuracy=jsonable(metrics.per_class_accuracy(adv.preds, adv.labels, len(class_names))),
        )
        result.confusion = Confusion(model=headline, set=primary, matrix=metrics.confusion_matrix(
            clean_rows.preds, adv.preds, len(class_names)).tolist())
    result.cache_hits, result.cache_misses = cache.hits, cache.misses
    return result


def _number(value: float) -> float | None:
    """None for NaN (an accuracy over no image), else the float."""
    return None if value != value else float(value)


def _class_row(score: Any) -> ClassRow:
    fields = jsonable(score)
    return ClassRow(index=fields["index"], name=fields["name"], accuracy=fields["accuracy"], count=fields["count"])


def _headline_model(models: list[EvalModel], rows: list[TransferRow], primary: str | None) -> str | None:
    """The last ensemble (the paper's 'Defendr'), else the most robust model on the primary set."""
    ensembles = [m.name for m in models if m.is_ensemble]
    if ensembles:
        return ensembles[-1]
    if primary is None:
        return rows[0].name if rows else None
    return max(rows, key=lambda r: (_order(r.sets[primary].adv100), -rows.index(r))).name


def _order(value: float | None) -> float:
    return float("nan") if value is None else value
