"""The paper's transfer protocol: clean / 50% / 100% adversarial accuracy on cached test sets.

`run_transfer(models, data_path, adv_paths, ...)` runs every model over the clean test split and
over every adversarial test set once (predictions cached per (model key, set key)) and returns a
TransferResult; `core.evaluation.report.transfer_tables.transfer_tables(result)` lays it out like
the paper's Tables 1-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation import metrics
from defendr_cli.core.evaluation.jsonable import jsonable
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.predictions import PredictionCache, Predictions, safe_key
from defendr_cli.core.evaluation.sharded import predict_sharded
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.evaluation.transfer.inputs import (TEST_SPLIT, check_adv_set, check_model_classes,
                                                         describe_adv_set, set_key_for_clean)
from defendr_cli.core.evaluation.transfer.results import (AdvSetSummary, ClassRow, Confusion, DataSummary, PerClass,
                                                          SetScores, TransferResult, TransferRow)
from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime


@dataclass(frozen=True)
class _Predictor:
    """Predictions of a model on a reader's rows, through the on-disk cache (sharded under torchrun)."""

    cache: PredictionCache
    runtime: Runtime
    dist: DistContext
    seed: int
    batch_size: int
    reporter: Reporter

    def __call__(self, model: EvalModel, reader: Any, set_key: str, description: str) -> Predictions:
        return self.cache.get_or_compute(model.cache_key(self.seed, self.batch_size), set_key, lambda: predict_sharded(
            model.module, reader, self.runtime, self.dist, batch_size=self.batch_size, seed=self.seed,
            reporter=self.reporter, description=description))


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
    predictor = _Predictor(PredictionCache(cache_dir), runtime, dist, seed, batch_size, reporter or NullReporter())
    cache_info = read_cache_info(data_path)
    with SplitReader(data_path, TEST_SPLIT) as clean_reader:
        clean_labels = np.asarray(clean_reader.labels, dtype=np.int64)
        probe = clean_reader.read(np.arange(1))
        for model in models:
            check_model_classes(model, cache_info, probe, runtime)
        infos = _checked_sets(adv_paths, cache_info, clean_labels)
        clean_key = set_key_for_clean(cache_info)
        clean_preds = {m.name: predictor(m, clean_reader, clean_key, f"{m.name}: clean test") for m in models}
    adv_preds = _adv_predictions(models, infos, predictor)
    rows = [_transfer_row(m, clean_preds[m.name], adv_preds, [info for _, info in infos], seed) for m in models]
    adv_sets = [describe_adv_set(info) for _, info in infos]
    primary = primary or primary_set_name(adv_sets)
    if primary is not None and primary not in {s.name for s in adv_sets}:
        raise InputError(f"--primary '{primary}' is not one of the evaluated sets")
    headline = _headline_model(models, rows, primary)
    data = DataSummary(path=str(data_path), fingerprint=cache_info.fingerprint, num_classes=cache_info.num_classes,
                       class_names=list(cache_info.class_names), test_count=int(len(clean_labels)),
                       image_size=cache_info.image_size)
    result = TransferResult(seed=seed, data=data, adv_sets=adv_sets, models=rows, primary_set=primary,
                            headline_model=headline)
    if primary is not None and headline is not None:
        _add_headline_classes(result, clean_preds[headline], adv_preds[(headline, primary)], top_k)
    result.cache_hits, result.cache_misses = predictor.cache.hits, predictor.cache.misses
    return result


def _checked_sets(adv_paths: list[Path], cache_info: Any, clean_labels: np.ndarray) -> list[tuple[Path, Any]]:
    """(path, AdvSetInfo) of every set, each checked against the clean test split, sorted by
    attack, eps, steps and name."""
    infos = []
    for path in adv_paths:
        with AdvSetReader(path) as adv_reader:  # schema, layout, pixels and fingerprint checked
            info = adv_reader.info
            check_adv_set(info, cache_info, np.asarray(adv_reader.labels, dtype=np.int64),
                          np.asarray(adv_reader.clean_indices, dtype=np.int64), clean_labels)
            size = int(cache_info.image_size)
            adv_reader.check_aligned(cache_info.fingerprint, (3, size, size), clean_labels)
        infos.append((path, info))
    infos.sort(key=lambda pi: (pi[1].attack, eps_scalar(pi[1].eps), pi[1].steps or 0, pi[1].name))
    return infos


def _adv_predictions(models: list[EvalModel], infos: list[tuple[Path, Any]],
                     predictor: _Predictor) -> dict[tuple[str, str], Predictions]:
    """{(model name, set name): predictions}, set by set (each file opened once)."""
    adv_preds = {}
    for path, info in infos:
        with AdvSetReader(path) as adv_reader:
            set_key = safe_key("adv", info.name, adv_reader.fingerprint)  # hashed through the handle read
            for model in models:
                adv_preds[(model.name, info.name)] = predictor(model, adv_reader, set_key, f"{model.name}: {info.name}")
    return adv_preds


def _transfer_row(model: EvalModel, clean: Predictions, adv_preds: dict[tuple[str, str], Predictions],
                  infos: list[Any], seed: int) -> TransferRow:
    """One model's clean accuracy and its scores on every set."""
    row = TransferRow(**model.describe(), clean=_number(metrics.accuracy(clean.preds, clean.labels)))
    for info in infos:
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
    return row


def _add_headline_classes(result: TransferResult, clean: Predictions, adv: Predictions, top_k: int) -> None:
    """The headline model's best/worst classes and confusion matrix on the primary set."""
    class_names = result.data.class_names
    clean_rows = clean.on_rows(adv.indices)
    best, worst = metrics.best_and_worst_classes(adv.preds, adv.labels, class_names, k=top_k)
    result.per_class = PerClass(
        model=result.headline_model, set=result.primary_set, best=[_class_row(c) for c in best],
        worst=[_class_row(c) for c in worst],
        clean_accuracy=jsonable(metrics.per_class_accuracy(clean.preds, clean.labels, len(class_names))),
        adv_accuracy=jsonable(metrics.per_class_accuracy(adv.preds, adv.labels, len(class_names))),
    )
    result.confusion = Confusion(model=result.headline_model, set=result.primary_set, matrix=metrics.confusion_matrix(
        clean_rows.preds, adv.preds, len(class_names)).tolist())


def primary_set_name(adv_sets: list[AdvSetSummary]) -> str | None:
    """The set Tables 1 and 5-6 and the confusion matrix use: the median eps of the first attack."""
    if not adv_sets:
        return None
    first = adv_sets[0].attack
    same = [s for s in adv_sets if s.attack == first]
    return same[(len(same) - 1) // 2].name


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
